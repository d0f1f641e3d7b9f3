"""Time ``import mmext`` against the imports it cannot avoid, each in a fresh interpreter.

    python tools/analysis/import_time.py [--repeats 3]

Runs the statements below in turn (interleaved, so a busy machine slows all of them alike), ``--repeats`` rounds,
and prints the best time of each and its ratio to ``import torch, mmengine.model, mmengine.registry`` (what mmext's
registration needs at least). A time is that of the ``import`` statement inside the child, without the
interpreter's own start. For where the time goes, use ``python -X importtime -c 'import mmext'``.
"""
import argparse
import subprocess
import sys

STATEMENTS = ('import torch', 'import torch, mmengine.model, mmengine.registry', 'import mmext')
BASELINE = STATEMENTS[1]
CHILD = 'import time; t = time.perf_counter(); exec({!r}); print(time.perf_counter() - t)'


def time_import(statement: str) -> float:
    """Seconds ``statement`` takes in a new interpreter."""
    out = subprocess.run([sys.executable, '-c', CHILD.format(statement)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def best_times(repeats: int) -> dict[str, float]:
    """Best of ``repeats`` for each of :data:`STATEMENTS`, measured round by round."""
    best = dict.fromkeys(STATEMENTS, float('inf'))
    for _ in range(repeats):
        for statement in STATEMENTS:
            best[statement] = min(best[statement], time_import(statement))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description='Best-of-N import times of mmext and its base in fresh interpreters')
    parser.add_argument('--repeats', type=int, default=3, help='rounds; the best time of each statement counts')
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f'--repeats must be at least 1, got {args.repeats}')
    best = best_times(args.repeats)
    for statement, seconds in best.items():
        print(f'{statement:<50} {seconds:6.2f} s  {seconds / best[BASELINE]:5.2f}x')
    print(f'best of {args.repeats}, interleaved; ratio to `{BASELINE}`')


if __name__ == '__main__':
    main()
