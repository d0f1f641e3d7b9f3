"""Kill a training run again and again and check that every restart resumes from a complete, newer checkpoint.

    python tools/analysis/kill_resume_probe.py CONFIG --work-dir DIR [--rounds 10] [--signal KILL|TERM|mixed]
        [--min-delay 2] [--max-delay 8] [--seed 0] [--cfg-options k=v ...]

Each round starts ``tools/train.py CONFIG --work-dir DIR --auto-resume`` (as a preemptible job's command would),
waits for its first logged training iteration plus a random delay, sends the signal and waits for the process to
end; then the checks:

- there is a checkpoint to resume from, complete (CRC of every entry) and finite, whenever one had been written
  (:func:`mmext.checkpoint.find_resumable_checkpoint`, the rule ``--resume`` uses);
- the resumable iteration never goes back;
- after SIGTERM the run exited with status 143, saying ``Preempted``, and saved the iteration it was at (or had
  already ended, status 0);
- no ``*.tmp-*`` file of a finished round is mistaken for a checkpoint, and the work dir lock never blocks the
  next round.

A last round (unless ``--no-final``) runs to the end of the schedule unkilled and must reach
``train_cfg.max_iters``. One line per round
and a summary are printed; the exit status is 1 if any check failed.
"""
from __future__ import annotations

import argparse
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mmengine.config import Config

from mmext.checkpoint import checkpoint_folders, find_resumable_checkpoint, read_checkpoint
from mmext.quiet import quiet_upstream_warnings

TRAIN = Path(__file__).resolve().parents[1] / 'train.py'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--rounds', type=int, default=10, help='killed rounds before the final unkilled one')
    parser.add_argument('--signal', choices=['KILL', 'TERM', 'mixed'], default='mixed')
    parser.add_argument('--min-delay', type=float, default=2.0,
                        help='seconds from the first logged training iteration to the signal, at least')
    parser.add_argument('--max-delay', type=float, default=8.0, help='... and at most')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--timeout', type=float, default=600, help='seconds a round may take after the signal')
    parser.add_argument('--no-final', action='store_true', help='skip the final unkilled round')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='passed on to tools/train.py')
    return parser.parse_args(argv)


def resumable_iteration(work_dir: str, out_dir: str | None) -> tuple[str | None, int]:
    """The checkpoint ``--resume`` would pick and its iteration (0 if none)."""
    choice = find_resumable_checkpoint(checkpoint_folders(work_dir, out_dir))
    if choice.path is None:
        return None, 0
    return choice.path, int(read_checkpoint(choice.path)['meta']['iter'])


def run_round(args: argparse.Namespace, signum: int | None, delay: float) -> tuple[int, str]:
    """One ``tools/train.py --auto-resume`` run, signalled ``delay`` s after its first logged training iteration
    (``signum=None``: not signalled); returns its exit status and output."""
    command = [sys.executable, str(TRAIN), args.config, '--work-dir', args.work_dir, '--auto-resume']
    if args.cfg_options:
        command += ['--cfg-options', *args.cfg_options]
    lines: list[str] = []
    training = threading.Event()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        def pump() -> None:
            for line in process.stdout:
                lines.append(line)
                if 'Iter(train)' in line:
                    training.set()
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = time.monotonic() + args.timeout
        while signum is not None and not training.wait(0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                break  # ended before training (e.g. nothing left to train): nothing to signal
        if signum is not None and training.is_set():
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(signum)
        process.wait(args.timeout)
        reader.join(10)
    return process.returncode, ''.join(lines)


def main(argv: list[str] | None = None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    rng = random.Random(args.seed)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        from mmengine.config import DictAction
        options = argparse.ArgumentParser()
        options.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(options.parse_args(['--o', *args.cfg_options]).o)
    out_dir = (cfg.get('default_hooks') or {}).get('checkpoint', {}).get('out_dir')
    max_iters = cfg.train_cfg.max_iters
    failures: list[str] = []
    previous = 0
    signals = {'KILL': [signal.SIGKILL], 'TERM': [signal.SIGTERM], 'mixed': [signal.SIGKILL, signal.SIGTERM]}
    for round_index in range(args.rounds + (0 if args.no_final else 1)):
        final = round_index == args.rounds
        signum = None if final else rng.choice(signals[args.signal])
        delay = rng.uniform(args.min_delay, args.max_delay)
        start = time.perf_counter()
        code, output = run_round(args, signum, delay)
        path, iteration = resumable_iteration(args.work_dir, out_dir)
        problems = []
        if iteration < previous:
            problems.append(f'resumable iteration went back from {previous} to {iteration}')
        if previous and path is None:
            problems.append('no complete checkpoint left although one had been written')
        if 'in use by another training run' in output:
            problems.append('the work dir lock blocked the restart')
        if signum == signal.SIGTERM and code not in (128 + signal.SIGTERM, 0):
            problems.append(f'SIGTERM: exit status {code}, expected 143 (or 0 if the run had already ended)')
        if signum == signal.SIGTERM and code == 128 + signal.SIGTERM:
            match = re.search(r'Preempted \(SIGTERM\) after iteration (\d+): saved', output)
            if match is None:
                problems.append('SIGTERM: no "Preempted ... saved" line')
            elif int(match.group(1)) != iteration:
                problems.append(f'SIGTERM: saved iteration {match.group(1)}, resumable is {iteration}')
        if final and (code != 0 or iteration != max_iters):
            problems.append(f'final round: exit status {code}, resumable iteration {iteration} of {max_iters}')
        if signum is None and code != 0:
            problems.append(f'exit status {code}:\n{output[-3000:]}')
        name = 'final' if final else signal.Signals(signum).name
        seconds = time.perf_counter() - start
        print(f'round {round_index + 1}: {name:<7} after {delay:4.1f} s, exit {code:4d}, {seconds:5.1f} s, resumable '
              f'iteration {iteration}' + (f'  FAILED: {"; ".join(problems)}' if problems else ''), flush=True)
        failures += [f'round {round_index + 1}: {p}' for p in problems]
        previous = max(previous, iteration)
    final = '' if args.no_final else ' and a final one'
    print(f'{args.rounds} killed rounds{final}: {"all checks passed" if not failures else "FAILED"}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
