"""The Inception depthwise token mixer as one fused op: ``torch.ops.mmext.inception_dwconv``.

``inception_dwconv(x, w_hw, b_hw, w_w, b_w, w_h, b_h)`` equals splitting ``x`` into ``(identity, square, band-w,
band-h)`` channel groups of sizes ``(C - 3g, g, g, g)`` (``g = w_hw.shape[0]``), applying the ``k x k``, ``1 x b``
and ``b x 1`` depthwise convs (padding ``k // 2``) and concatenating, which is :func:`inception_dwconv_reference`.

It is a ``torch.library`` custom op with a fake (meta) implementation and a registered autograd formula, so
``torch.compile`` traces through it as one node. On CUDA (and on CPU under ``TRITON_INTERPRET=1``) it runs the
fused Triton kernels of :mod:`mmext.ops._token_mixer_triton` or the reference, whichever
:mod:`mmext.ops.autotune` measured fastest on this device for this shape (forward and backward chosen apart; see
:func:`mmext.ops.autotune_table`); elsewhere it runs the reference. Weight and bias gradients are returned in the
parameters' dtype; the kernels accumulate in fp32.
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .autotune import REFERENCE, get_autotuner
from .mixer_configs import TileConfig, interpreter_config, tuning_space

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


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _layout(t: torch.Tensor) -> str:
    if t.is_contiguous():
        return 'contiguous'
    if t.is_contiguous(memory_format=torch.channels_last):
        return 'channels_last'
    return 'strided' + 'x'.join(map(str, t.stride()))


def _tune_key(x: torch.Tensor, w_hw: torch.Tensor, w_w: torch.Tensor, grad: torch.Tensor | None = None) -> str:
    """What a choice depends on: device, dtypes, memory formats, shape, branch width and kernel sizes."""
    name = torch.cuda.get_device_name(x.device) if x.is_cuda else x.device.type
    dtypes = f'{x.dtype}/{w_hw.dtype}'.replace('torch.', '')
    layout = _layout(x) if grad is None else f'{_layout(x)}/grad:{_layout(grad)}'
    return (f"{name}|{dtypes}|{layout}|{'x'.join(map(str, x.shape))}|g{w_hw.shape[0]}|"
            f"k{w_hw.shape[-1]}b{w_w.shape[-1]}")


def _configs(x: torch.Tensor, gc: int) -> dict[str, TileConfig]:
    return {cfg.name: cfg for cfg in tuning_space(x.stride(1) == 1, gc)}


def _branches(c_id: int, gc: int, w_hw: torch.Tensor, w_w: torch.Tensor, w_h: torch.Tensor):
    """``(first channel, weight, (KH, KW))`` of the square, band-w and band-h branches."""
    return [(c_id + i * gc, w, tuple(w.shape[-2:])) for i, w in enumerate((w_hw, w_w, w_h))]


def _fused_forward(x: torch.Tensor, params: Sequence[torch.Tensor], cfg: TileConfig) -> torch.Tensor:
    from ._token_mixer_triton import get_kernels
    w_hw, b_hw, w_w, b_w, w_h, b_h = params
    c_id, gc = _split_sizes(x, w_hw)
    n, _, h, w = x.shape
    y = torch.empty_like(x, memory_format=torch.preserve_format)
    if c_id:
        y[:, :c_id].copy_(x[:, :c_id])
    conv, _ = get_kernels()
    grid = (_cdiv(h * w, cfg.block_s), _cdiv(gc, cfg.block_c), n)
    for (c0, weight, (kh, kw)), bias in zip(_branches(c_id, gc, w_hw, w_w, w_h), (b_hw, b_w, b_h)):
        xs, ys = x[:, c0:c0 + gc], y[:, c0:c0 + gc]
        conv[grid](xs, weight.contiguous(), bias.contiguous(), ys, h, w, *xs.stride(), *ys.stride(), gc,
                   KH=kh, KW=kw, FLIP=0, HAS_BIAS=1, BLOCK_S=cfg.block_s, BLOCK_C=cfg.block_c,
                   num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    return y


def _fused_backward(grad: torch.Tensor, x: torch.Tensor, w_hw: torch.Tensor, w_w: torch.Tensor, w_h: torch.Tensor,
                    cfg: TileConfig) -> tuple[torch.Tensor, ...]:
    from ._token_mixer_triton import get_kernels
    c_id, gc = _split_sizes(x, w_hw)
    n, _, h, w = x.shape
    grad = grad.to(x.dtype)
    dx = torch.empty_like(x, memory_format=torch.preserve_format)
    if c_id:
        dx[:, :c_id].copy_(grad[:, :c_id])
    conv, grad_weight = get_kernels()
    grid = (_cdiv(h * w, cfg.block_s), _cdiv(gc, cfg.block_c), n)
    tiles = min(cfg.tiles, _cdiv(h * w, cfg.block_s))
    while n * _cdiv(_cdiv(h * w, cfg.block_s), tiles) > 65535:  # CUDA's limit on the grid's third axis
        tiles *= 2
    chunks = _cdiv(_cdiv(h * w, cfg.block_s), tiles)
    launch = dict(BLOCK_S=cfg.block_s, BLOCK_C=cfg.block_c, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
    param_grads = []
    for c0, weight, (kh, kw) in _branches(c_id, gc, w_hw, w_w, w_h):
        gs, xs, dxs = grad[:, c0:c0 + gc], x[:, c0:c0 + gc], dx[:, c0:c0 + gc]
        wc = weight.contiguous()
        conv[grid](gs, wc, wc, dxs, h, w, *gs.stride(), *dxs.stride(), gc, KH=kh, KW=kw, FLIP=1, HAS_BIAS=0,
                   **launch)
        part = torch.empty(n * chunks, kh * kw + 1, gc, dtype=torch.float32, device=x.device)
        grad_weight[(kh * kw + 1, _cdiv(gc, cfg.block_c), n * chunks)](
            gs, xs, part, h, w, *gs.stride(), *xs.stride(), gc, chunks, tiles, KH=kh, KW=kw, **launch)
        total = part.sum(0)  # [taps + 1, gc]: weight taps, then bias; the outputs must not alias it or each other
        param_grads += [total[:-1].t().to(weight.dtype, memory_format=torch.contiguous_format, copy=True)
                        .view(weight.shape), total[-1].to(weight.dtype, copy=True)]
    return (dx, *param_grads)


def _agree(out: torch.Tensor | Sequence[torch.Tensor], ref: torch.Tensor | Sequence[torch.Tensor]) -> bool:
    """Whether a fused result matches the reference up to rounding (the autotuner's guard for untested GPUs)."""
    outs = [out] if isinstance(out, torch.Tensor) else list(out)
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    for a, b in zip(outs, refs, strict=True):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        tol = 1e-3 if b.dtype in (torch.float32, torch.float64) else 3e-2
        a, b = a.float().nan_to_num(0., 0., 0.), b.float().nan_to_num(0., 0., 0.)
        if (a - b).abs().max().item() > tol * (b.abs().max().item() + 1e-6):
            return False
    return True


def _choose(x: torch.Tensor, gc: int, key: str, direction: str,
            run: Callable[[TileConfig | None], object]) -> TileConfig | None:
    """The measured choice for ``key`` (``None`` = reference); see :mod:`mmext.ops.autotune`."""
    configs = _configs(x, gc)
    if not x.is_cuda:  # the interpreter: its own small default, and it is what the tuner falls back to
        configs = {(cfg := interpreter_config(gc)).name: cfg, **configs}
    candidates = {REFERENCE: lambda: run(None)}
    candidates.update({name: (lambda cfg=cfg: run(cfg)) for name, cfg in configs.items()})
    choice = get_autotuner().select(key, direction, candidates, x.device, default=next(iter(configs)),
                                    check=_agree)
    return configs.get(choice)


@torch.library.custom_op('mmext::inception_dwconv', mutates_args=())
def inception_dwconv(x: torch.Tensor, w_hw: torch.Tensor, b_hw: torch.Tensor, w_w: torch.Tensor,
                     b_w: torch.Tensor, w_h: torch.Tensor, b_h: torch.Tensor) -> torch.Tensor:
    """Fused Inception depthwise token mixer; see the module docstring."""
    params = (w_hw, b_hw, w_w, b_w, w_h, b_h)
    _, gc = _split_sizes(x, w_hw)

    def run(cfg: TileConfig | None) -> torch.Tensor:
        if cfg is None:
            return _in_format_of(x, inception_dwconv_reference(x, *[t.to(x.dtype) for t in params]))
        return _fused_forward(x, params, cfg)

    if not _use_triton(x) or x.numel() == 0:
        return run(None)
    return run(_choose(x, gc, _tune_key(x, w_hw, w_w), 'fwd', run))


@inception_dwconv.register_fake
def _(x, w_hw, b_hw, w_w, b_w, w_h, b_h):
    _split_sizes(x, w_hw)
    return torch.empty_like(x, memory_format=torch.preserve_format)


@torch.library.custom_op('mmext::inception_dwconv_backward', mutates_args=())
def inception_dwconv_backward(grad: torch.Tensor, x: torch.Tensor, w_hw: torch.Tensor, w_w: torch.Tensor,
                              w_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                          torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients ``(dx, dw_hw, db_hw, dw_w, db_w, dw_h, db_h)`` of :func:`inception_dwconv`."""
    _, gc = _split_sizes(x, w_hw)

    def run(cfg: TileConfig | None) -> tuple[torch.Tensor, ...]:
        if cfg is None:
            return _reference_backward(grad, x, w_hw, w_w, w_h)
        return _fused_backward(grad, x, w_hw, w_w, w_h, cfg)

    if not _use_triton(x) or x.numel() == 0:
        return run(None)
    return run(_choose(x, gc, _tune_key(x, w_hw, w_w, grad), 'bwd', run))


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
