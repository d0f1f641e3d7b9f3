"""The token mixer on a GPU, per InceptionNeXt-T stage shape: what the autotuner chose, fused vs reference time
(forward + backward) and the memory floor. Run by ``tools/gpu_check.sh``; needs CUDA.

    python -m mmext.ops.gpu_check --out $OUT

The floor is the bytes the op must move (forward: read x, write y; backward: read dy and x, write dx: five
tensors of the input's size) over the bandwidth of a large device copy measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from .autotune import autotune_table, cuda_event_timer
from .token_mixer import inception_dwconv, inception_dwconv_reference

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


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a 256 MiB device-to-device copy (read + write counted)."""
    src = torch.empty(2 ** 26, device=device)
    dst = torch.empty_like(src)
    ms = cuda_event_timer('copy', lambda: dst.copy_(src), device, warmup=3, repeats=10)
    return 2 * src.numel() * src.element_size() / (ms * 1e-3)


def _mixer_inputs(shape, dtype, channels_last, device):
    n, c, h, w = shape
    gc = c // 8
    x = torch.randn(shape, device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    params = [torch.randn(s, device=device) * 0.1 for s in
              [(gc, 1, 3, 3), (gc,), (gc, 1, 1, 11), (gc,), (gc, 1, 11, 1), (gc,)]]
    return x.requires_grad_(), [p.requires_grad_() for p in params]


def measure(shape: tuple[int, int, int, int], dtype: torch.dtype, channels_last: bool, bandwidth: float,
            device: torch.device) -> dict:
    """Fused op (its autotuned choices) vs reference, forward + backward, against the memory floor."""
    x, params = _mixer_inputs(shape, dtype, channels_last, device)
    grad = torch.randn_like(x)

    def step(fn):
        y = fn(x, *[p.to(dtype) if fn is inception_dwconv_reference else p for p in params])
        torch.autograd.grad(y, [x, *params], grad)

    step(inception_dwconv)  # first meeting: the autotuner times its candidates here
    fused = cuda_event_timer('fused', lambda: step(inception_dwconv), device, warmup=2, repeats=10)
    ref = cuda_event_timer('reference', lambda: step(inception_dwconv_reference), device, warmup=2, repeats=10)
    floor = 5 * x.numel() * x.element_size() / bandwidth * 1e3
    return dict(shape=list(shape), dtype=str(dtype).removeprefix('torch.'), channels_last=channels_last,
                fused_ms=fused, reference_ms=ref, floor_ms=floor, fused_x_floor=fused / floor,
                speedup=ref / fused)


def format_table(rows: list[dict], table: list[dict]) -> str:
    """Markdown: one row per stage shape with the tuner's forward/backward choices."""
    choices: dict[tuple, dict] = {}
    for entry in table:  # key: device|x dtype/param dtype|layout[/grad:layout]|shape|g..|k..b..
        fields = entry['key'].split('|')
        ident = (fields[1].split('/')[0], fields[2].split('/')[0], fields[3])
        choices.setdefault(ident, {})[entry['direction']] = entry['choice']
    lines = ['| setting | stage | shape | dtype | layout | fwd choice | bwd choice | fused ms | reference ms | '
             'floor ms | fused / floor | reference / fused |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        shape = 'x'.join(map(str, r['shape']))
        picked = choices.get((r['dtype'], 'channels_last' if r['channels_last'] else 'contiguous', shape), {})
        lines.append(f"| {r['setting']} | {r['stage'] + 1} | {shape} | {r['dtype']} | "
                     f"{'channels_last' if r['channels_last'] else 'contiguous'} | {picked.get('fwd', '')} | "
                     f"{picked.get('bwd', '')} | {r['fused_ms']:.3f} | {r['reference_ms']:.3f} | "
                     f"{r['floor_ms']:.3f} | {r['fused_x_floor']:.1f}x | {r['speedup']:.2f}x |")
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, help='directory for mixer_stages.json and mixer_stages.md')
    parser.add_argument('--settings', nargs='+', choices=sorted(SETTINGS), default=['paper', 'dense'])
    parser.add_argument('--fp32-stages', type=int, default=1, help='also check fp32 NCHW on the first N stages')
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print('gpu_check: CUDA is not available; this check needs a GPU', file=sys.stderr)
        return 2
    device = torch.device('cuda')
    bandwidth = copy_bandwidth(device)
    rows = []
    for setting, stage, shape in stage_shapes(tuple(args.settings)):
        cases = [(torch.bfloat16, True)] + ([(torch.float32, False)] if stage < args.fp32_stages else [])
        for dtype, channels_last in cases:
            row = dict(setting=setting, stage=stage, **measure(shape, dtype, channels_last, bandwidth, device))
            rows.append(row)
            print(json.dumps(row), flush=True)
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
    slowest = min(r['speedup'] for r in rows)
    print(f'median fused / floor: {statistics.median(r["fused_x_floor"] for r in rows):.1f}x; '
          f'worst reference / fused: {slowest:.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
