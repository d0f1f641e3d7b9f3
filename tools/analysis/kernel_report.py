"""Registers, spills and shared memory of mmext's Triton kernels, compiled on CPU (no GPU needed).

    python tools/analysis/kernel_report.py --arch 80 90 --json work_dirs/kernel_report.json

Triton's compiler needs no GPU: :func:`compile_kernel` builds one kernel for a target
(``triton.compile(ASTSource(...), target=GPUTarget('cuda', arch, 32))``) and runs the ``ptxas`` inside the Triton
wheel with ``-v`` on the PTX, which reports registers per thread, spill stores/loads and static shared memory.
The report covers every kernel x every config of its op's tuning space x dtype x arch, prints a markdown table and
exits with status 1 if any kernel spills. The kernels:

* the fused token mixer (:mod:`mmext.ops._token_mixer_triton`): forward, input- and weight-gradient bodies per
  branch kind (3x3 square, 11-tap bands), both memory formats' tuning spaces; activations in the dtype, weights and
  bias in fp32 (the autocast case), the format's unit stride specialised to 1;
* multi-scale deformable attention (:mod:`mmext.ops._ms_deform_attn_triton`): forward and backward at Deformable
  DETR's 32 channels per head (256 / 8 heads), value, locations and weights in the dtype, as mmcv casts them.

Pointers are compiled 16-byte aligned.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

DTYPES = {'fp32': 'fp32', 'bf16': 'bf16', 'fp16': 'fp16'}
MSDA_HEAD_DIMS = 32  # Deformable DETR / DINO / Mask2Former: 256 channels over 8 heads


@dataclass(frozen=True)
class KernelSpec:
    """One kernel: a body (``conv``/``grad_weight`` of the mixer, ``msda`` in either direction) and its constexprs."""
    name: str
    body: str
    kh: int = 0
    kw: int = 0
    flip: int = 0
    bias: int = 1
    backward: int = 0  # msda: the BACKWARD constexpr

    @property
    def op(self) -> str:
        return 'ms_deform_attn' if self.body.startswith('msda') else 'inception_dwconv'


# The released models' kernel sizes: 3x3 square, 11-tap bands.
KERNELS = (
    KernelSpec('fwd_square', 'conv', 3, 3),
    KernelSpec('fwd_band_w', 'conv', 1, 11),
    KernelSpec('fwd_band_h', 'conv', 11, 1),
    KernelSpec('grad_input_square', 'conv', 3, 3, flip=1, bias=0),
    KernelSpec('grad_input_band_w', 'conv', 1, 11, flip=1, bias=0),
    KernelSpec('grad_input_band_h', 'conv', 11, 1, flip=1, bias=0),
    KernelSpec('grad_weight_square', 'grad_weight', 3, 3),
    KernelSpec('grad_weight_band_w', 'grad_weight', 1, 11),
    KernelSpec('grad_weight_band_h', 'grad_weight', 11, 1),
    KernelSpec('msda_fwd', 'msda'),
    KernelSpec('msda_bwd', 'msda', backward=1),
)

# argument names of each body, in order, with their kinds ('act' activation, 'param' fp32 weight, 'f32' fp32 and
# 'i64' int64 pointers; 'i32' scalars)
_ARGS = {
    'conv': (('x_ptr', 'act'), ('w_ptr', 'param'), ('b_ptr', 'param'), ('y_ptr', 'act'), ('H', 'i32'),
             ('W', 'i32'), ('sxn', 'i32'), ('sxc', 'i32'), ('sxh', 'i32'), ('sxw', 'i32'), ('syn', 'i32'),
             ('syc', 'i32'), ('syh', 'i32'), ('syw', 'i32'), ('GC', 'i32')),
    'grad_weight': (('dy_ptr', 'act'), ('x_ptr', 'act'), ('part_ptr', 'f32'), ('H', 'i32'), ('W', 'i32'),
                    ('sdn', 'i32'), ('sdc', 'i32'), ('sdh', 'i32'), ('sdw', 'i32'), ('sxn', 'i32'), ('sxc', 'i32'),
                    ('sxh', 'i32'), ('sxw', 'i32'), ('GC', 'i32'), ('CHUNKS', 'i32'), ('TILES', 'i32')),
    'msda': (('value_ptr', 'act'), ('shapes_ptr', 'i64'), ('starts_ptr', 'i64'), ('loc_ptr', 'act'),
             ('attn_ptr', 'act'), ('out_ptr', 'act'), ('grad_value_ptr', 'f32'), ('grad_loc_ptr', 'act'),
             ('grad_attn_ptr', 'act'), ('S', 'i32'), ('Q', 'i32'), ('NH', 'i32'), ('D', 'i32'), ('L', 'i32'),
             ('P', 'i32')),
}

_PTXAS_RE = {
    'registers': re.compile(r'Used (\d+) registers'),
    'spill_stores': re.compile(r'(\d+) bytes spill stores'),
    'spill_loads': re.compile(r'(\d+) bytes spill loads'),
    'stack_bytes': re.compile(r'(\d+) bytes stack frame'),
    'shared_bytes': re.compile(r'(\d+) bytes smem'),
}


def _body(spec: KernelSpec):
    from mmext.ops import _ms_deform_attn_triton as msda
    from mmext.ops import _token_mixer_triton as mixer

    return {'conv': mixer._dwconv, 'grad_weight': mixer._dwconv_grad_weight, 'msda': msda._ms_deform_attn}[spec.body]


def _source(spec: KernelSpec, cfg, channels_last: bool, dtype: str):
    import triton
    from triton.compiler import ASTSource

    # the stride Triton specialises to 1 at launch: channels for channels_last, width for contiguous tensors
    unit = ({'sxc', 'syc', 'sdc'} if channels_last else {'sxw', 'syw', 'sdw'}) if spec.op == 'inception_dwconv' else ()
    types = dict(act=f'*{DTYPES[dtype]}', param='*fp32', f32='*fp32', i64='*i64', i32='i32')
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, kind) in enumerate(_ARGS[spec.body]):
        if name in unit:
            signature[name], constexprs[name] = 'constexpr', 1
            continue
        signature[name] = types[kind]
        if kind != 'i32':
            attrs[(i,)] = [['tt.divisibility', 16]]
    if spec.op == 'ms_deform_attn':
        meta = dict(BLOCK_Q=cfg.block_q, BLOCK_D=MSDA_HEAD_DIMS, BACKWARD=spec.backward)
    else:
        meta = dict(KH=spec.kh, KW=spec.kw, BLOCK_S=cfg.block_s, BLOCK_C=cfg.block_c)
        if spec.body == 'conv':
            meta.update(FLIP=spec.flip, HAS_BIAS=spec.bias)
    for name, value in meta.items():
        signature[name], constexprs[name] = 'constexpr', value
    return ASTSource(triton.jit(_body(spec)), signature, constexprs, attrs)


def compile_kernel(spec: KernelSpec, cfg, channels_last: bool, dtype: str, arch: int) -> dict:
    """Compile one kernel for ``sm_<arch>`` with launch config ``cfg`` and return its report row (ptxas's usage)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    compiled = triton.compile(_source(spec, cfg, channels_last, dtype), target=GPUTarget('cuda', arch, 32),
                              options=dict(num_warps=cfg.num_warps, num_stages=getattr(cfg, 'num_stages', 1)))
    with tempfile.TemporaryDirectory() as tmp:
        ptx = os.path.join(tmp, 'kernel.ptx')
        with open(ptx, 'w') as f:
            f.write(compiled.asm['ptx'])
        log = subprocess.run([get_ptxas(arch).path, '-v', f'--gpu-name={sm_arch_from_capability(arch)}', ptx,
                              '-o', os.path.join(tmp, 'kernel.cubin')], check=True, capture_output=True,
                             text=True).stderr
    usage = {key: int(m.group(1)) if (m := pattern.search(log)) else 0 for key, pattern in _PTXAS_RE.items()}
    return dict(kernel=spec.name, config=cfg.name, layout='channels_last' if channels_last else 'contiguous',
                dtype=dtype, arch=f'sm_{arch}', registers=usage['registers'],
                spill_bytes=usage['spill_stores'] + usage['spill_loads'], shared_bytes=usage['shared_bytes'],
                stack_bytes=usage['stack_bytes'])


def tuning_configs(spec: KernelSpec, layouts: Iterable[str] = ('channels_last', 'contiguous'),
                   max_configs: int | None = None) -> list[tuple[bool, object]]:
    """``(channels_last, config)`` of every config the kernel's autotuner may pick: the mixer's per memory format,
    the deformable attention's per direction."""
    if spec.op == 'ms_deform_attn':
        from mmext.ops.ms_deform_attn import tuning_space
        return [(False, cfg) for cfg in tuning_space('bwd' if spec.backward else 'fwd')[:max_configs]]
    from mmext.ops.mixer_configs import tuning_space
    return [(layout == 'channels_last', cfg) for layout in layouts
            for cfg in tuning_space(layout == 'channels_last')[:max_configs]]


def report_jobs(kernels: Iterable[KernelSpec] = KERNELS, dtypes: Iterable[str] = tuple(DTYPES),
                archs: Iterable[int] = (80, 90), layouts: Iterable[str] = ('channels_last', 'contiguous'),
                max_configs: int | None = None) -> list[tuple]:
    """Every ``(spec, config, channels_last, dtype, arch)`` to compile."""
    kernels, dtypes, layouts = list(kernels), list(dtypes), list(layouts)
    return [(spec, cfg, cl, dtype, arch) for arch in archs for spec in kernels
            for cl, cfg in tuning_configs(spec, layouts, max_configs) for dtype in dtypes]


def _run(job: tuple) -> dict:
    return compile_kernel(*job)


def kernel_report(jobs: Sequence[tuple] | None = None, workers: int | None = None) -> list[dict]:
    """Compile ``jobs`` (default: :func:`report_jobs`) in ``workers`` processes (default: all CPUs)."""
    jobs = report_jobs() if jobs is None else list(jobs)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) == 1:
        return [_run(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_run, jobs))


def format_report(rows: Sequence[dict]) -> str:
    """A markdown table of :func:`kernel_report` rows plus a one-line summary."""
    lines = ['| kernel | layout | config | dtype | arch | registers | spill bytes | shared bytes |',
             '|---|---|---|---|---|---|---|---|']
    lines += [f"| {r['kernel']} | {r['layout']} | {r['config']} | {r['dtype']} | {r['arch']} | {r['registers']} | "
              f"{r['spill_bytes']} | {r['shared_bytes']} |" for r in rows]
    spills = sum(r['spill_bytes'] > 0 for r in rows)
    top = max(rows, key=lambda r: r['registers'])
    lines.append(f"\n{len(rows)} kernels compiled, {spills} with spills; most registers: {top['registers']} "
                 f"({top['kernel']} {top['config']} {top['dtype']} {top['arch']})")
    return '\n'.join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', type=int, nargs='+', default=[80, 90], help='compute capabilities (80 = sm_80)')
    parser.add_argument('--dtype', nargs='+', choices=sorted(DTYPES), default=list(DTYPES))
    parser.add_argument('--kernels', nargs='+', choices=[k.name for k in KERNELS], default=None,
                        metavar='KERNEL', help='default: all of ' + ', '.join(k.name for k in KERNELS))
    parser.add_argument('--layout', nargs='+', choices=['channels_last', 'contiguous'],
                        default=['channels_last', 'contiguous'], help="whose tuning space to compile (the mixer's)")
    parser.add_argument('--max-configs', type=int, default=None, help='only the first N configs of each space')
    parser.add_argument('--workers', type=int, default=None, help='compile processes (default: all CPUs)')
    parser.add_argument('--json', help='write the rows here')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from mmext.quiet import quiet_upstream_warnings

    quiet_upstream_warnings()
    args = parse_args(argv)
    kernels = [k for k in KERNELS if args.kernels is None or k.name in args.kernels]
    rows = kernel_report(report_jobs(kernels, args.dtype, args.arch, args.layout, args.max_configs),
                         workers=args.workers)
    print(format_report(rows))
    if args.json:
        from mmext.fileio import atomic_write

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.json, 'w') as f:  # a report of an earlier run is replaced whole or not at all
            f.write(json.dumps(rows, indent=1))
    return 1 if any(r['spill_bytes'] for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
