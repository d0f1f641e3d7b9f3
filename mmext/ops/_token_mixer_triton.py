"""Triton kernels of the fused Inception depthwise token mixer.

Every branch of the mixer is a depthwise conv with a ``KH x KW`` kernel and "same" padding (square ``k x k``,
band-w ``1 x b``, band-h ``b x 1``), so two kernel bodies cover the op, each specialised per branch kind by its
``constexpr`` kernel size (no runtime ``if branch``):

* :func:`_dwconv`: one branch's output tile, ``BLOCK_S`` pixels x ``BLOCK_C`` channels of one image. With
  ``FLIP=1`` and no bias it is the input gradient (the correlation with the flipped kernel).
* :func:`_dwconv_grad_weight`: one tap's (or, for the last program row, the bias') partial weight gradient of
  ``BLOCK_C`` channels over ``TILES`` pixel tiles of one image. Each program holds one tap's running products,
  never all taps' sums at once; the caller sums the per-program partials.

The identity channels are not touched by these kernels: the caller copies them with one strided tensor copy.
Tensors are addressed through their strides (Triton specialises unit strides, so channels_last and contiguous
inputs each get vectorised loads), accumulation is fp32. The bodies are plain functions jitted per mode by
:func:`get_kernels` (compiled, or interpreted on CPU under ``TRITON_INTERPRET=1``), and use only Triton builtins and
:func:`_add`, a combine function of :func:`triton.language.reduce` that both modes can call.
"""
from __future__ import annotations

from collections.abc import Callable

import triton
import triton.language as tl
from triton.runtime import JITFunction


def _add(a, b):
    return a + b


def _dwconv(x_ptr, w_ptr, b_ptr, y_ptr, H, W, sxn, sxc, sxh, sxw, syn, syc, syh, syw, GC,
            KH: tl.constexpr, KW: tl.constexpr, FLIP: tl.constexpr, HAS_BIAS: tl.constexpr,
            BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr):
    """``y[n, c, h, w] = b[c] + sum_ij w[c, i, j] * x[n, c, h + s * (i - KH // 2), w + s * (j - KW // 2)]`` with
    ``s = -1`` if ``FLIP`` else ``1``; grid ``(cdiv(H * W, BLOCK_S), cdiv(GC, BLOCK_C), N)``."""
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    offs_s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    s_mask = offs_s < H * W
    h = offs_s // W
    w = offs_s % W
    lc = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = lc < GC
    x_tile = x_ptr + n * sxn + (h * sxh + w * sxw)[:, None] + (lc * sxc)[None, :]
    acc = tl.full([BLOCK_S, BLOCK_C], 0., tl.float32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + lc, mask=c_mask, other=0.).to(tl.float32)[None, :]
    # a runtime loop over the taps: one tap's loads in flight at a time keeps registers low (an unrolled loop
    # hoists every tap's loads); neighbouring taps hit the same cache lines
    for t in range(KH * KW):
        di = (t // KW - KH // 2) * (1 - 2 * FLIP)
        dj = (t % KW - KW // 2) * (1 - 2 * FLIP)
        m = s_mask
        if KH > 1:
            m = m & (h + di >= 0) & (h + di < H)
        if KW > 1:
            m = m & (w + dj >= 0) & (w + dj < W)
        xv = tl.load(x_tile + (di * sxh + dj * sxw), mask=m[:, None] & c_mask[None, :], other=0.)
        wv = tl.load(w_ptr + lc * (KH * KW) + t, mask=c_mask, other=0.)
        acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
    y_tile = y_ptr + n * syn + (h * syh + w * syw)[:, None] + (lc * syc)[None, :]
    tl.store(y_tile, acc.to(y_ptr.dtype.element_ty), mask=s_mask[:, None] & c_mask[None, :])


def _dwconv_grad_weight(dy_ptr, x_ptr, part_ptr, H, W, sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw, GC, CHUNKS, TILES,
                        KH: tl.constexpr, KW: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr):
    """Partial weight and bias gradients: ``part[n * CHUNKS + chunk, tap, c]`` is ``sum dy * x[shifted by tap]``
    (``tap < KH * KW``) or ``sum dy`` (``tap == KH * KW``) over the chunk's ``TILES * BLOCK_S`` pixels; grid
    ``(KH * KW + 1, cdiv(GC, BLOCK_C), N * CHUNKS)``. Programs of one tile's taps are adjacent in launch order, so
    the tile is re-read from L2."""
    tap = tl.program_id(0)
    pid_c = tl.program_id(1)
    pid = tl.program_id(2)
    n = (pid // CHUNKS).to(tl.int64)
    first_tile = (pid % CHUNKS) * TILES
    is_tap = tap < KH * KW
    di = tap // KW - KH // 2
    dj = tap % KW - KW // 2
    lc = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = lc < GC
    dy_img = dy_ptr + n * sdn + (lc * sdc)[None, :]
    x_img = x_ptr + n * sxn + (lc * sxc)[None, :] + (di * sxh + dj * sxw)
    acc = tl.full([BLOCK_S, BLOCK_C], 0., tl.float32)
    for t in range(TILES):
        offs_s = (first_tile + t) * BLOCK_S + tl.arange(0, BLOCK_S)
        s_mask = offs_s < H * W
        h = offs_s // W
        w = offs_s % W
        g = tl.load(dy_img + (h * sdh + w * sdw)[:, None], mask=s_mask[:, None] & c_mask[None, :], other=0.)
        m = s_mask & is_tap
        if KH > 1:
            m = m & (h + di >= 0) & (h + di < H)
        if KW > 1:
            m = m & (w + dj >= 0) & (w + dj < W)
        xv = tl.load(x_img + (h * sxh + w * sxw)[:, None], mask=m[:, None] & c_mask[None, :], other=0.)
        acc += g.to(tl.float32) * tl.where(is_tap, xv.to(tl.float32), 1.)
    out = part_ptr + (pid.to(tl.int64) * (KH * KW + 1) + tap) * GC + lc
    tl.store(out, tl.reduce(acc, 0, _ADD), mask=c_mask)


# ``tl.reduce`` needs a jitted combine function: the compiler inlines it, the interpreter calls its Python body
# (``.fn``). A ``JITFunction`` serves both, whatever mode Triton was in when this module was imported.
_ADD = JITFunction(_add)

_KERNELS: dict[bool, tuple] = {}


def jit_for_mode(cache: dict[bool, tuple], *bodies: Callable) -> tuple:
    """``bodies`` jitted for the current mode (compiled, or interpreted under ``TRITON_INTERPRET=1``), cached per
    mode in ``cache``: Triton decides at ``triton.jit`` time which of the two a function becomes."""
    interpret = interpreter_active()
    if interpret not in cache:
        cache[interpret] = tuple(triton.jit(body) for body in bodies)
    return cache[interpret]


def get_kernels() -> tuple:
    """``(conv, grad_weight)`` for the current mode."""
    return jit_for_mode(_KERNELS, _dwconv, _dwconv_grad_weight)


def interpreter_active() -> bool:
    """Whether Triton kernels launched now run in the CPU interpreter."""
    return bool(triton.knobs.runtime.interpret)
