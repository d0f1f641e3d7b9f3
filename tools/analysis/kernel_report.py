"""Registers, spills and shared memory of the fused token mixer's Triton kernels, compiled on CPU (no GPU needed).

    python tools/analysis/kernel_report.py --arch 80 90 --json work_dirs/kernel_report.json

Compiles every kernel x every config of the tuning space x dtype for each arch with Triton's compiler and the
ptxas inside the Triton wheel, prints a markdown table and exits with status 1 if any kernel spills.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmext.ops import kernel_report as kr
from mmext.ops.mixer_configs import tuning_space


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', type=int, nargs='+', default=[80, 90], help='compute capabilities (80 = sm_80)')
    parser.add_argument('--dtype', nargs='+', choices=sorted(kr.DTYPES), default=list(kr.DTYPES))
    parser.add_argument('--kernels', nargs='+', choices=[k.name for k in kr.KERNELS], default=None,
                        metavar='KERNEL', help='default: all of ' + ', '.join(k.name for k in kr.KERNELS))
    parser.add_argument('--layout', nargs='+', choices=['channels_last', 'contiguous'],
                        default=['channels_last', 'contiguous'], help="whose tuning space to compile")
    parser.add_argument('--max-configs', type=int, default=None, help='only the first N configs of each space')
    parser.add_argument('--workers', type=int, default=None, help='compile processes (default: all CPUs)')
    parser.add_argument('--json', help='write the rows here')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kernels = [k for k in kr.KERNELS if args.kernels is None or k.name in args.kernels]
    configs = [(layout == 'channels_last', cfg) for layout in args.layout
               for cfg in tuning_space(layout == 'channels_last')[:args.max_configs]]
    rows = kr.kernel_report(kr.report_jobs(kernels, args.dtype, args.arch, configs), workers=args.workers)
    print(kr.format_report(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if any(r['spill_bytes'] for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
