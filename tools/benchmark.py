"""Side-by-side throughput: mmext InceptionNeXt vs timm ConvNeXt / ResNet-50 / InceptionNeXt, in one process.

    python tools/benchmark.py --preset cpu-deploy --json work_dirs/bench_cpu.json
    python tools/benchmark.py --preset gpu --json $OUT/bench_gpu.json          # full GPU matrix, ~8 min
    python tools/benchmark.py --device cpu --protocol paper --mode infer --batch-size 8 \
        --models convnext_t inceptionnext_t --dtype bf16 --channels-last

Prints a markdown table (median images/s with min-max over repeats, ms per step, ratio to ConvNeXt-T under the
same settings, peak memory) and optionally writes every number with the environment to --json.
See docs/benchmarks.md for the protocols and measured figures.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import mmext  # noqa: F401  (installs the mmcv-lite stand-in before mmseg is imported)
from mmext.analysis import benchmark as bench

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--preset', choices=['gpu', 'gpu-variants', 'cpu-deploy'],
                        help='a ready matrix (gpu-variants: the paper variants of Tables 1/5/8); other switches '
                        'then only override --json/--budget-s')
    parser.add_argument('--models', nargs='+', default=['convnext_t', 'timm_inception_next_t', 'inceptionnext_t'],
                        choices=sorted(bench.MODELS), metavar='MODEL',
                        help=f'any of {", ".join(sorted(bench.MODELS))}')
    parser.add_argument('--protocol', choices=['paper', 'dense'], default='paper',
                        help='paper: classifier at --img-size; dense: 4-stage features (and upernet_t)')
    parser.add_argument('--mode', nargs='+', choices=['train', 'infer'], default=['train', 'infer'])
    parser.add_argument('--device', default='cuda', help='cpu or cuda (default: cuda)')
    parser.add_argument('--batch-size', type=int, default=None, help='default 128 (paper) / 16 (dense)')
    parser.add_argument('--img-size', type=int, default=None, help='default 224 (paper) / 512 (dense)')
    parser.add_argument('--dtype', choices=['fp32', 'bf16'], default='fp32', help='bf16 = autocast')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true', help='torch.compile each model')
    parser.add_argument('--deploy', action='store_true', help='fold BNs of mmext models (inference cases only)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--steps', type=int, default=5, help='steps per timed repeat')
    parser.add_argument('--interleave', action=argparse.BooleanOptionalAction, default=None,
                        help='time the cases round robin (default: on for CPU, off for CUDA)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (CPU); default: torch\'s')
    parser.add_argument('--budget-s', type=float, default=None, help='skip cases not started within this time')
    parser.add_argument('--mixer', action='store_true', help='also run the token-mixer micro-benchmark '
                        '(always on in the gpu preset)')
    parser.add_argument('--mixer-shape', type=int, nargs=4, default=[128, 96, 56, 56], metavar=('N', 'C', 'H', 'W'),
                        help='token-mixer input shape (default: InceptionNeXt-T stage 1 at batch 128, 224)')
    parser.add_argument('--json', help='write all results and the environment here')
    return parser.parse_args(argv)


def cases_from_args(args: argparse.Namespace) -> tuple[list[bench.Case], dict]:
    if args.preset:
        cases, kwargs = bench.preset_cases(args.preset)
        if args.budget_s is not None:
            kwargs['budget_s'] = args.budget_s
        return cases, kwargs
    dense = args.protocol == 'dense'
    batch = args.batch_size or (16 if dense else 128)
    size = args.img_size or (512 if dense else 224)
    cases = [bench.Case(m, args.protocol, mode, batch, size, args.dtype, args.channels_last, args.compile,
                        args.deploy and mode == 'infer' and bench.MODELS[m][0] != 'timm')
             for mode in args.mode for m in args.models]
    return cases, dict(device=args.device, warmup=args.warmup, repeats=args.repeats, steps=args.steps,
                       interleave=args.interleave, budget_s=args.budget_s)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cases, kwargs = cases_from_args(args)
        env = bench.environment()
        print(' '.join(f'{k}={v}' for k, v in env.items()), flush=True)
        results = bench.run_cases(cases, repo_root=REPO_ROOT, log=lambda m: print(m, file=sys.stderr, flush=True),
                                  **kwargs)
        mixer = []
        if args.mixer or args.preset == 'gpu':
            mixer = bench.mixer_benchmark(kwargs['device'], tuple(args.mixer_shape))
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(bench.format_table(results))
    for row in mixer:
        print(f"mixer {row['shape']} {row['dtype']} cl={row['channels_last']} {row['path']}: {row['ms']:.3f} ms "
              f"fwd+bwd, memory floor {row['floor_ms']:.3f} ms ({row['x_floor']:.1f}x floor)")
    if args.json:
        bench.save_json(args.json, results, mixer, command=' '.join(['tools/benchmark.py', *(argv or sys.argv[1:])]))
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
