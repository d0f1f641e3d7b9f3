"""Register, spill and shared-memory report of the token mixer's Triton kernels, compiled on CPU.

Triton's compiler needs no GPU: :func:`compile_kernel` builds one kernel for a target
(``triton.compile(ASTSource(...), target=GPUTarget('cuda', arch, 32))``) and runs the ``ptxas`` inside the Triton
wheel with ``-v`` on the PTX, which reports registers per thread, spill stores/loads and static shared memory.
:func:`kernel_report` does that for every kernel of the op x every config of the tuning space x dtype x arch.

Kernels are compiled the way the op launches them: activations in the given dtype, weights and bias in fp32 (the
autocast case; the fp32 rows are all-fp32), the unit stride of the memory format the config belongs to
specialised to 1, and 16-byte aligned pointers.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from .mixer_configs import TileConfig, tuning_space

__all__ = ['KERNELS', 'KernelSpec', 'compile_kernel', 'format_report', 'kernel_report', 'report_jobs']

DTYPES = {'fp32': 'fp32', 'bf16': 'bf16', 'fp16': 'fp16'}


@dataclass(frozen=True)
class KernelSpec:
    """One kernel of the op: a body of :mod:`._token_mixer_triton` with the constexprs of one branch kind."""
    name: str
    body: str  # 'conv' or 'grad_weight'
    kh: int
    kw: int
    flip: int = 0
    bias: int = 1


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
)

# argument names of each body, in order, with their kinds ('act', 'param', 'f32' pointers; 'i32' scalars)
_CONV_ARGS = (('x_ptr', 'act'), ('w_ptr', 'param'), ('b_ptr', 'param'), ('y_ptr', 'act'), ('H', 'i32'),
              ('W', 'i32'), ('sxn', 'i32'), ('sxc', 'i32'), ('sxh', 'i32'), ('sxw', 'i32'), ('syn', 'i32'),
              ('syc', 'i32'), ('syh', 'i32'), ('syw', 'i32'), ('GC', 'i32'))
_GRAD_ARGS = (('dy_ptr', 'act'), ('x_ptr', 'act'), ('part_ptr', 'f32'), ('H', 'i32'), ('W', 'i32'),
              ('sdn', 'i32'), ('sdc', 'i32'), ('sdh', 'i32'), ('sdw', 'i32'), ('sxn', 'i32'), ('sxc', 'i32'),
              ('sxh', 'i32'), ('sxw', 'i32'), ('GC', 'i32'), ('CHUNKS', 'i32'), ('TILES', 'i32'))

_PTXAS_RE = {
    'registers': re.compile(r'Used (\d+) registers'),
    'spill_stores': re.compile(r'(\d+) bytes spill stores'),
    'spill_loads': re.compile(r'(\d+) bytes spill loads'),
    'stack_bytes': re.compile(r'(\d+) bytes stack frame'),
    'shared_bytes': re.compile(r'(\d+) bytes smem'),
}


def _source(spec: KernelSpec, cfg: TileConfig, channels_last: bool, dtype: str):
    import triton
    from triton.compiler import ASTSource

    from . import _token_mixer_triton as kernels

    fn = triton.jit(kernels._dwconv if spec.body == 'conv' else kernels._dwconv_grad_weight)
    args = _CONV_ARGS if spec.body == 'conv' else _GRAD_ARGS
    # the stride Triton specialises to 1 at launch: channels for channels_last, width for contiguous tensors
    unit = {'sxc', 'syc', 'sdc'} if channels_last else {'sxw', 'syw', 'sdw'}
    types = dict(act=f'*{DTYPES[dtype]}', param='*fp32', f32='*fp32', i32='i32')
    signature, constexprs, attrs = {}, {}, {}
    for i, (name, kind) in enumerate(args):
        if name in unit:
            signature[name], constexprs[name] = 'constexpr', 1
            continue
        signature[name] = types[kind]
        if kind != 'i32':
            attrs[(i,)] = [['tt.divisibility', 16]]
    meta = dict(KH=spec.kh, KW=spec.kw, BLOCK_S=cfg.block_s, BLOCK_C=cfg.block_c)
    if spec.body == 'conv':
        meta.update(FLIP=spec.flip, HAS_BIAS=spec.bias)
    for name, value in meta.items():
        signature[name], constexprs[name] = 'constexpr', value
    return ASTSource(fn, signature, constexprs, attrs)


def compile_kernel(spec: KernelSpec, cfg: TileConfig, channels_last: bool, dtype: str, arch: int) -> dict:
    """Compile one kernel for ``sm_<arch>`` and return its report row (ptxas's resource usage)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    compiled = triton.compile(_source(spec, cfg, channels_last, dtype), target=GPUTarget('cuda', arch, 32),
                              options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
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


def report_jobs(kernels: Iterable[KernelSpec] = KERNELS, dtypes: Iterable[str] = tuple(DTYPES),
                archs: Iterable[int] = (80, 90), configs: Sequence[tuple[bool, TileConfig]] | None = None
                ) -> list[tuple]:
    """Every ``(spec, config, channels_last, dtype, arch)`` to compile; ``configs`` defaults to both memory
    formats' full tuning spaces."""
    if configs is None:
        configs = [(cl, cfg) for cl in (True, False) for cfg in tuning_space(cl)]
    return [(spec, cfg, cl, dtype, arch) for arch in archs for spec in kernels for cl, cfg in configs
            for dtype in dtypes]


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
