"""The Inception depthwise token mixer as one fused op: ``torch.ops.mmext.inception_dwconv``.

``inception_dwconv(x, w_hw, b_hw, w_w, b_w, w_h, b_h)`` equals splitting ``x`` into ``(identity, square, band-w,
band-h)`` channel groups of sizes ``(C - 3g, g, g, g)`` (``g = w_hw.shape[0]``), applying the ``k x k``, ``1 x b``
and ``b x 1`` depthwise convs (padding ``k // 2``) and concatenating, which is :func:`inception_dwconv_reference`.

It is a ``torch.library`` custom op with a fake (meta) implementation and a registered autograd formula, so
``torch.compile`` traces through it as one node. On CUDA (and on CPU under ``TRITON_INTERPRET=1``) it runs the
fused Triton kernels of :mod:`mmext.ops._token_mixer_triton`; elsewhere it falls back to the reference.
Weight and bias gradients are returned in the parameters' dtype; the kernels accumulate in fp32.
"""
from __future__ import annotations

import importlib.util
import os

import torch
import torch.nn.functional as F

HAS_TRITON = importlib.util.find_spec('triton') is not None

__all__ = ['HAS_TRITON', 'fast_mixer_enabled', 'inception_dwconv', 'inception_dwconv_reference', 'set_fast_mixer']

# The process-wide default, read once at import (timm's ``TIMM_FUSED_ATTN`` pattern): ``MMEXT_FAST_MIXER=0``
# (or false/off/no) turns the fused op off. :func:`set_fast_mixer` changes it later; an explicit
# ``fast_mixer=`` on a module wins over both.
_FAST_MIXER = os.environ.get('MMEXT_FAST_MIXER', '1').strip().lower() not in ('0', 'false', 'off', 'no')


def fast_mixer_enabled() -> bool:
    """Whether Inception mixers built without an explicit ``fast_mixer=`` use the fused op on CUDA."""
    return _FAST_MIXER


def set_fast_mixer(enable: bool = True) -> None:
    """Set the process-wide default of :func:`fast_mixer_enabled` (overrides ``MMEXT_FAST_MIXER``)."""
    global _FAST_MIXER
    if not isinstance(enable, bool):
        raise TypeError(f'set_fast_mixer expects a bool, got {enable!r}')
    _FAST_MIXER = enable


def _split_sizes(x: torch.Tensor, w_hw: torch.Tensor) -> tuple[int, int]:
    channels, gc = x.shape[1], w_hw.shape[0]
    if x.dim() != 4 or 3 * gc > channels:
        raise ValueError(f'inception_dwconv expects an NCHW input with at least {3 * gc} channels for {gc} '
                         f'channels per branch, got shape {tuple(x.shape)}')
    return channels - 3 * gc, gc


def inception_dwconv_reference(x: torch.Tensor, w_hw: torch.Tensor, b_hw: torch.Tensor, w_w: torch.Tensor,
                               b_w: torch.Tensor, w_h: torch.Tensor, b_h: torch.Tensor) -> torch.Tensor:
    """Split + three depthwise convs + cat: the released model's formulation and the oracle for the kernels."""
    c_id, gc = _split_sizes(x, w_hw)
    x_id, x_hw, x_w, x_h = torch.split(x, (c_id, gc, gc, gc), dim=1)
    ks, kb = w_hw.shape[-1], w_w.shape[-1]
    return torch.cat((
        x_id,
        F.conv2d(x_hw, w_hw, b_hw, padding=ks // 2, groups=gc),
        F.conv2d(x_w, w_w, b_w, padding=(0, kb // 2), groups=gc),
        F.conv2d(x_h, w_h, b_h, padding=(kb // 2, 0), groups=gc),
    ), dim=1)


def _in_format_of(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``t`` with the strides the fake implementation promises (those of ``empty_like(x)``)."""
    like = torch.empty_like(x, memory_format=torch.preserve_format)
    return t if t.stride() == like.stride() else like.copy_(t)


def _reference_backward(grad: torch.Tensor, x: torch.Tensor, w_hw: torch.Tensor, w_w: torch.Tensor,
                        w_h: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Gradients of :func:`inception_dwconv_reference` with ATen's conv backward (custom-op impls run below
    autograd, so they cannot differentiate the reference themselves)."""
    c_id, gc = _split_sizes(x, w_hw)
    sizes = (c_id, gc, gc, gc)
    grads, inputs = torch.split(grad, sizes, dim=1), torch.split(x, sizes, dim=1)
    ks, kb = w_hw.shape[-1], w_w.shape[-1]
    dx_parts, param_grads = [grads[0]], []
    for g, inp, weight, padding in zip(grads[1:], inputs[1:], (w_hw, w_w, w_h),
                                       ([ks // 2, ks // 2], [0, kb // 2], [kb // 2, 0])):
        dx, dw, db = torch.ops.aten.convolution_backward(
            g.to(x.dtype), inp, weight.to(x.dtype), [gc], [1, 1], padding, [1, 1], False, [0, 0], gc,
            [True, True, True])
        dx_parts.append(dx)
        param_grads += [dw.to(weight.dtype), db.to(weight.dtype)]
    return (_in_format_of(x, torch.cat(dx_parts, dim=1)), *param_grads)


def _use_triton(x: torch.Tensor) -> bool:
    if not HAS_TRITON:
        return False
    if x.is_cuda:
        return True
    from ._token_mixer_triton import interpreter_active
    return x.device.type == 'cpu' and interpreter_active()


def _launch_config(x: torch.Tensor, gc: int) -> tuple[int, int]:
    """``(BLOCK_S, BLOCK_C)``: wide in channels for channels_last (contiguous C), wide in pixels otherwise."""
    block_c = min(32, _next_pow2(gc))
    if x.stride(1) == 1:
        return max(16, 1024 // block_c), block_c
    return 256, min(block_c, 4)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _grid(x: torch.Tensor, c_id: int, gc: int, block_s: int, block_c: int) -> tuple[tuple[int, int, int], int, int]:
    n, _, h, w = x.shape
    nb_id = -(-c_id // block_c)
    nb_g = -(-gc // block_c)
    return (-(-(h * w) // block_s), nb_id + 3 * nb_g, n), nb_id, nb_g


@torch.library.custom_op('mmext::inception_dwconv', mutates_args=())
def inception_dwconv(x: torch.Tensor, w_hw: torch.Tensor, b_hw: torch.Tensor, w_w: torch.Tensor,
                     b_w: torch.Tensor, w_h: torch.Tensor, b_h: torch.Tensor) -> torch.Tensor:
    """Fused Inception depthwise token mixer; see the module docstring."""
    if not _use_triton(x):
        params = [t.to(x.dtype) for t in (w_hw, b_hw, w_w, b_w, w_h, b_h)]
        return _in_format_of(x, inception_dwconv_reference(x, *params))
    from ._token_mixer_triton import get_kernels
    c_id, gc = _split_sizes(x, w_hw)
    y = torch.empty_like(x, memory_format=torch.preserve_format)
    if x.numel() == 0:
        return y
    block_s, block_c = _launch_config(x, gc)
    grid, nb_id, nb_g = _grid(x, c_id, gc, block_s, block_c)
    fwd, _ = get_kernels()
    fwd[grid](x, y, w_hw.contiguous(), b_hw.contiguous(), w_w.contiguous(), b_w.contiguous(), w_h.contiguous(),
              b_h.contiguous(), x.shape[2], x.shape[3], *x.stride(), *y.stride(), c_id, gc, nb_id, nb_g,
              KS=w_hw.shape[-1], KB=w_w.shape[-1], BLOCK_S=block_s, BLOCK_C=block_c)
    return y


@inception_dwconv.register_fake
def _(x, w_hw, b_hw, w_w, b_w, w_h, b_h):
    _split_sizes(x, w_hw)
    return torch.empty_like(x, memory_format=torch.preserve_format)


@torch.library.custom_op('mmext::inception_dwconv_backward', mutates_args=())
def inception_dwconv_backward(grad: torch.Tensor, x: torch.Tensor, w_hw: torch.Tensor, w_w: torch.Tensor,
                              w_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                          torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dx, dw_hw, db_hw, dw_w, db_w, dw_h, db_h)`` of :func:`inception_dwconv`."""
    c_id, gc = _split_sizes(x, w_hw)
    if not _use_triton(x):
        return _reference_backward(grad, x, w_hw, w_w, w_h)
    from ._token_mixer_triton import get_kernels
    n, _, h, w = x.shape
    block_s, block_c = _launch_config(x, gc)
    grid, nb_id, nb_g = _grid(x, c_id, gc, block_s, block_c)
    ks, kb = w_hw.shape[-1], w_w.shape[-1]
    parts = grid[0] * n
    f32 = dict(dtype=torch.float32, device=x.device)
    dw_hw = torch.empty(parts, gc, ks * ks, **f32)
    dw_w = torch.empty(parts, gc, kb, **f32)
    dw_h = torch.empty(parts, gc, kb, **f32)
    db = torch.empty(parts, 3, gc, **f32)
    dx = torch.empty_like(x, memory_format=torch.preserve_format)
    if x.numel() == 0:
        zeros = [torch.zeros_like(t) for t in (w_hw, w_w, w_h)]
        bias_zero = torch.zeros(gc, dtype=w_hw.dtype, device=x.device)
        return dx, zeros[0], bias_zero, zeros[1], bias_zero.clone(), zeros[2], bias_zero.clone()
    _, bwd = get_kernels()
    bwd[grid](grad, x, dx, w_hw.contiguous(), w_w.contiguous(), w_h.contiguous(), dw_hw, dw_w, dw_h, db, h, w,
              *grad.stride(), *x.stride(), *dx.stride(), c_id, gc, nb_id, nb_g,
              KS=ks, KB=kb, BLOCK_S=block_s, BLOCK_C=block_c)
    db_hw, db_w, db_h = (db[:, i].sum(0).to(w_hw.dtype) for i in range(3))
    return (dx, dw_hw.sum(0).view_as(w_hw).to(w_hw.dtype), db_hw, dw_w.sum(0).view_as(w_w).to(w_w.dtype), db_w,
            dw_h.sum(0).view_as(w_h).to(w_h.dtype), db_h)


@inception_dwconv_backward.register_fake
def _(grad, x, w_hw, w_w, w_h):
    gc = w_hw.shape[0]
    bias = grad.new_empty(gc, dtype=w_hw.dtype)
    return (torch.empty_like(x, memory_format=torch.preserve_format), torch.empty_like(w_hw), bias,
            torch.empty_like(w_w), bias.clone(), torch.empty_like(w_h), bias.clone())


def _setup_context(ctx, inputs, output):
    x, w_hw, _, w_w, _, w_h, _ = inputs
    ctx.save_for_backward(x, w_hw, w_w, w_h)


def _backward(ctx, grad):
    x, w_hw, w_w, w_h = ctx.saved_tensors
    dx, dw_hw, db_hw, dw_w, db_w, dw_h, db_h = inception_dwconv_backward(grad, x, w_hw, w_w, w_h)
    return dx, dw_hw, db_hw, dw_w, db_w, dw_h, db_h


inception_dwconv.register_autograd(_backward, setup_context=_setup_context)
