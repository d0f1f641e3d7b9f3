"""The custom GPU kernels per InceptionNeXt-T stage shape: what the autotuner chose, fused vs reference time
(forward + backward) and the memory floor. Run by ``tools/gpu_check.sh``; needs CUDA.

    python tools/gpu_check.py --out $OUT [--kernels inception_dwconv]

The floor is the bytes the op must move (forward: read x, write y; backward: read dy and x, write dx: five
tensors of the input's size) over the bandwidth of a large device copy measured in the same run. Timing, the
bandwidth and the per-shape rows come from ``tools/benchmark.py`` (imported as the sibling script it is).

A new kernel gets its check by adding a function ``(device, bandwidth, args) -> rows`` to :data:`KERNEL_CHECKS`;
each row needs ``setting``, ``stage``, ``shape``, ``dtype``, ``channels_last``, ``fused_ms``, ``reference_ms`` and
``floor_ms`` to appear in the table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from benchmark import copy_bandwidth, mixer_rows  # the sibling tools/benchmark.py

# InceptionNeXt-T: stage widths at strides 4, 8, 16, 32; branch ratio 1/8, 3x3 square, 11-tap bands
STAGE_DIMS = (96, 192, 384, 768)
SETTINGS = {'paper': (128, 224), 'dense': (16, 512)}


def stage_shapes(settings: tuple[str, ...] = ('paper', 'dense')) -> list[tuple[str, int, tuple[int, int, int, int]]]:
    """``(setting, stage, (N, C, H, W))`` of every stage's mixer input."""
    out = []
    for name in settings:
        batch, size = SETTINGS[name]
        for i, dim in enumerate(STAGE_DIMS):
            side = size // 2 ** (i + 2)
            out.append((name, i, (batch, dim, side, side)))
    return out


def inception_dwconv_check(device: torch.device, bandwidth: float, args: argparse.Namespace) -> list[dict]:
    """The fused Inception depthwise mixer (``torch.ops.mmext.inception_dwconv``) at every stage shape: bf16
    channels_last, and fp32 NCHW on the first ``--fp32-stages`` stages."""
    rows = []
    for setting, stage, shape in stage_shapes(tuple(args.settings)):
        cases = [(torch.bfloat16, True)] + ([(torch.float32, False)] if stage < args.fp32_stages else [])
        for dtype, channels_last in cases:
            paths = {r['path']: r for r in mixer_rows(shape, dtype, channels_last, device, bandwidth, repeats=10)}
            fused, ref = paths['fused'], paths['reference']
            row = dict(kernel='inception_dwconv', setting=setting, stage=stage, shape=list(shape),
                       dtype=fused['dtype'], channels_last=channels_last, fused_ms=fused['ms'],
                       reference_ms=ref['ms'], floor_ms=fused['floor_ms'], fused_x_floor=fused['x_floor'],
                       speedup=ref['ms'] / fused['ms'])
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


# kernel name -> its check; the ms-deform-attn kernels' check goes here beside the mixer's
KERNEL_CHECKS: dict[str, Callable[[torch.device, float, argparse.Namespace], list[dict]]] = {
    'inception_dwconv': inception_dwconv_check,
}


def format_table(rows: list[dict], table: list[dict]) -> str:
    """Markdown: one row per kernel and shape, with the mixer tuner's forward/backward choices."""
    choices: dict[tuple, dict] = {}
    for entry in table:  # key: device|x dtype/param dtype|layout[/grad:layout]|shape|g..|k..b..
        fields = entry['key'].split('|')
        ident = (fields[1].split('/')[0], fields[2].split('/')[0], fields[3])
        choices.setdefault(ident, {})[entry['direction']] = entry['choice']
    lines = ['| kernel | setting | stage | shape | dtype | layout | fwd choice | bwd choice | fused ms | '
             'reference ms | floor ms | fused / floor | reference / fused |', '|---' * 13 + '|']
    for r in rows:
        shape = 'x'.join(map(str, r['shape']))
        layout = 'channels_last' if r['channels_last'] else 'contiguous'
        picked = choices.get((r['dtype'], layout, shape), {}) if r['kernel'] == 'inception_dwconv' else {}
        lines.append(f"| {r['kernel']} | {r['setting']} | {r['stage'] + 1} | {shape} | {r['dtype']} | {layout} | "
                     f"{picked.get('fwd', '')} | {picked.get('bwd', '')} | {r['fused_ms']:.3f} | "
                     f"{r['reference_ms']:.3f} | {r['floor_ms']:.3f} | {r['fused_x_floor']:.1f}x | "
                     f"{r['speedup']:.2f}x |")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, help='directory for mixer_stages.json and mixer_stages.md')
    parser.add_argument('--kernels', nargs='+', choices=sorted(KERNEL_CHECKS), default=sorted(KERNEL_CHECKS))
    parser.add_argument('--settings', nargs='+', choices=sorted(SETTINGS), default=['paper', 'dense'])
    parser.add_argument('--fp32-stages', type=int, default=1, help='also check fp32 NCHW on the first N stages')
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print('gpu_check: CUDA is not available; this check needs a GPU', file=sys.stderr)
        return 2
    from mmext.ops import autotune_table

    device = torch.device('cuda')
    bandwidth = copy_bandwidth(device)
    rows = [row for name in args.kernels for row in KERNEL_CHECKS[name](device, bandwidth, args)]
    table = autotune_table()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda,
               triton=__import__('triton').__version__, copy_bandwidth_gb_s=bandwidth / 1e9)
    (out / 'mixer_stages.json').write_text(json.dumps(dict(environment=env, rows=rows, autotune=table), indent=1,
                                                      default=str))
    md = format_table(rows, table)
    (out / 'mixer_stages.md').write_text(f"{env}\n\n{md}\n")
    print(md)
    print(f'median fused / floor: {statistics.median(r["fused_x_floor"] for r in rows):.1f}x; '
          f'worst reference / fused: {min(r["speedup"] for r in rows):.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
