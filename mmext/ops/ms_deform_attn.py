"""Multi-scale deformable attention (Deformable DETR, DINO, Mask2Former's pixel decoder) without compiled mmcv.

:func:`ms_deform_attn_forward` and :func:`ms_deform_attn_backward` compute what mmcv's ``ext_module`` ops of the
same names compute; mmext's ``mmcv._ext`` stand-in calls them, so mmcv's ``MultiScaleDeformableAttnFunction`` and
``MultiScaleDeformableAttention`` run unchanged on any device and in fp32, fp16 and bf16.

Two implementations:

* the reference, :func:`ms_deform_attn_reference` (``grid_sample`` per level, mmcv's
  ``multi_scale_deformable_attn_pytorch`` formulation) and its autograd backward; half-precision inputs are computed
  in fp32 and the results rounded once, so it is correct on every device;
* the fused Triton kernels of :mod:`mmext.ops._ms_deform_attn_triton` (CUDA, or CPU under ``TRITON_INTERPRET=1``).

On CUDA the autotuner of :mod:`mmext.ops.autotune` times the reference and every config of :func:`tuning_space` on
the first call with a new shape and keeps the fastest correct one (forward and backward apart), so the kernels are
never chosen where they are slower. ``im2col_step`` (mmcv's CUDA batching knob) does not change the result and is
ignored.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .autotune import REFERENCE, get_autotuner
from .token_mixer import _agree as outputs_agree
from .token_mixer import _cdiv, _use_triton

__all__ = ['AttnConfig', 'ms_deform_attn_backward', 'ms_deform_attn_forward', 'ms_deform_attn_reference',
           'tuning_space']


@dataclass(frozen=True)
class AttnConfig:
    """One launch configuration of both kernels: ``block_q`` queries per program, Triton's ``num_warps``."""
    block_q: int
    num_warps: int

    @property
    def name(self) -> str:
        return f'q{self.block_q}_w{self.num_warps}'


# Small on purpose: the autotuner times each entry once per new shape, the kernel report compiles each. At 32
# channels per head, two or four (query, channel) elements per thread; the backward holds four such tiles, and
# ptxas spills it at four elements on some dtype/arch pairs (tools/analysis/kernel_report.py), so it keeps to two.
_SPACE = {
    'fwd': (AttnConfig(8, 4), AttnConfig(16, 8), AttnConfig(32, 8), AttnConfig(64, 16)),
    'bwd': (AttnConfig(8, 4), AttnConfig(16, 8)),
}


def tuning_space(direction: str = 'fwd') -> list[AttnConfig]:
    """The configs the autotuner times on a GPU for ``direction`` ('fwd' or 'bwd'), which the kernel report
    compiles."""
    if direction not in _SPACE:
        raise ValueError(f"direction must be 'fwd' or 'bwd', got {direction!r}")
    return list(_SPACE[direction])


def interpreter_config(num_queries: int) -> AttnConfig:
    """The config for Triton's CPU interpreter: it pays per operation, not per lane, so one wide program per
    ``(image, head)`` is fastest there."""
    return AttnConfig(min(4096, triton_next_pow2(num_queries)), 1)


def _check_inputs(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, sampling_locations: Tensor,
                  attention_weights: Tensor) -> None:
    if value.dim() != 4:
        raise ValueError(f'ms_deform_attn: value must be (batch, num_keys, num_heads, head_dims), got shape '
                         f'{tuple(value.shape)}')
    batch, num_keys, num_heads, _ = value.shape
    if (spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2
            or level_start_index.shape != spatial_shapes[:, 0].shape):
        raise ValueError(f'ms_deform_attn: spatial_shapes must be (num_levels, 2) and level_start_index '
                         f'(num_levels,), got {tuple(spatial_shapes.shape)} and {tuple(level_start_index.shape)}')
    levels = spatial_shapes.shape[0]
    if (sampling_locations.dim() != 6 or sampling_locations.shape[-1] != 2
            or sampling_locations.shape[0] != batch or sampling_locations.shape[2] != num_heads
            or sampling_locations.shape[3] != levels or attention_weights.shape != sampling_locations.shape[:-1]):
        raise ValueError(
            f'ms_deform_attn: sampling_locations must be (batch, num_queries, num_heads, num_levels, num_points, 2) '
            f'and attention_weights the same without the last dim, for batch {batch}, {num_heads} heads and '
            f'{levels} levels; got {tuple(sampling_locations.shape)} and {tuple(attention_weights.shape)}')
    total = int((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum())
    if total != num_keys:
        raise ValueError(f'ms_deform_attn: value has {num_keys} keys but spatial_shapes '
                         f'{spatial_shapes.tolist()} cover {total}')


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def ms_deform_attn_reference(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                             sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """``(batch, num_queries, num_heads * head_dims)`` output, by ``grid_sample`` (differentiable).

    ``value`` is ``(batch, num_keys, num_heads, head_dims)`` with the levels' ``H_l * W_l`` keys concatenated in
    ``spatial_shapes`` order (rows ``(H_l, W_l)``); ``sampling_locations`` ``(batch, num_queries, num_heads,
    num_levels, num_points, 2)`` are ``(x, y)`` in ``[0, 1]`` (outside reads zeros); ``attention_weights`` the same
    without the last dim. Half-precision inputs are computed in fp32; the output has ``value``'s dtype.
    """
    dtype = _compute_dtype(value.dtype)
    batch, _, num_heads, head_dims = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    starts = level_start_index.tolist()
    grids = 2 * sampling_locations.to(dtype) - 1
    samples = []
    for level, ((height, width), start) in enumerate(zip(spatial_shapes.tolist(), starts)):
        # (B, H*W, NH, D) -> (B*NH, D, H, W)
        v = value[:, start:start + sizes[level]].to(dtype).permute(0, 2, 3, 1)
        v = v.reshape(batch * num_heads, head_dims, int(height), int(width))
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # (B*NH, Q, P, 2)
        samples.append(F.grid_sample(v, grid, mode='bilinear', padding_mode='zeros', align_corners=False))
    weights = attention_weights.to(dtype).transpose(1, 2).reshape(batch * num_heads, 1, num_queries,
                                                                  num_levels * num_points)
    out = (torch.stack(samples, dim=-2).flatten(-2) * weights).sum(-1)  # (B*NH, D, Q)
    return out.view(batch, num_heads * head_dims, num_queries).transpose(1, 2).contiguous().to(value.dtype)


def _reference_backward(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                        sampling_locations: Tensor, attention_weights: Tensor,
                        grad_output: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    inputs = [t.detach().requires_grad_() for t in (value, sampling_locations, attention_weights)]
    with torch.enable_grad():
        out = ms_deform_attn_reference(inputs[0], spatial_shapes, level_start_index, *inputs[1:])
        grads = torch.autograd.grad(out, inputs, grad_output.to(out.dtype), allow_unused=True)
    return tuple(torch.zeros_like(t) if g is None else g for g, t in zip(grads, inputs))


def _launch_args(value: Tensor, sampling_locations: Tensor) -> tuple[int, ...]:
    batch, num_keys, num_heads, head_dims = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    return batch, num_keys, num_queries, num_heads, head_dims, num_levels, num_points


def _launch(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, sampling_locations: Tensor,
            attention_weights: Tensor, out: Tensor, grads: tuple[Tensor, Tensor, Tensor], cfg: AttnConfig,
            backward: bool) -> None:
    """One launch of the kernel: forward writes ``out``; backward reads the output's gradient from ``out`` and
    writes ``grads`` (value in fp32, locations, weights)."""
    from ._ms_deform_attn_triton import get_kernel
    batch, num_keys, num_queries, num_heads, head_dims, levels, points = _launch_args(value, sampling_locations)
    grid = (_cdiv(num_queries, cfg.block_q), batch * num_heads)
    get_kernel()[grid](value.contiguous(), spatial_shapes.contiguous(), level_start_index.contiguous(),
                       sampling_locations.contiguous(), attention_weights.contiguous(), out, *grads, num_keys,
                       num_queries, num_heads, head_dims, levels, points, BLOCK_Q=cfg.block_q,
                       BLOCK_D=triton_next_pow2(head_dims), BACKWARD=backward, num_warps=cfg.num_warps)


def _fused_forward(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, sampling_locations: Tensor,
                   attention_weights: Tensor, cfg: AttnConfig) -> Tensor:
    batch, num_keys, num_queries, num_heads, head_dims, levels, points = _launch_args(value, sampling_locations)
    out = value.new_empty(batch, num_queries, num_heads * head_dims)
    _launch(value, spatial_shapes, level_start_index, sampling_locations, attention_weights, out, (out, out, out),
            cfg, backward=False)
    return out


def _fused_backward(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, sampling_locations: Tensor,
                    attention_weights: Tensor, grad_output: Tensor,
                    cfg: AttnConfig) -> tuple[Tensor, Tensor, Tensor]:
    grad_value = torch.zeros(value.shape, dtype=torch.float32, device=value.device)
    grad_loc = torch.empty_like(sampling_locations, memory_format=torch.contiguous_format)
    grad_attn = torch.empty_like(attention_weights, memory_format=torch.contiguous_format)
    _launch(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
            grad_output.to(value.dtype).contiguous(), (grad_value, grad_loc, grad_attn), cfg, backward=True)
    return grad_value.to(value.dtype), grad_loc, grad_attn


def triton_next_pow2(n: int) -> int:
    """The channel block: Triton tiles are powers of two."""
    return 1 << max(0, (n - 1).bit_length())


def _tune_key(value: Tensor, spatial_shapes: Tensor, sampling_locations: Tensor) -> str:
    """What a choice depends on: device, dtype, sizes and the levels' shapes."""
    name = torch.cuda.get_device_name(value.device) if value.is_cuda else value.device.type
    levels = ','.join(f'{h}x{w}' for h, w in spatial_shapes.tolist())
    batch, _, num_queries, num_heads, head_dims, _, points = _launch_args(value, sampling_locations)
    return (f"ms_deform_attn|{name}|{str(value.dtype).removeprefix('torch.')}|b{batch}q{num_queries}h{num_heads}"
            f"d{head_dims}p{points}|{levels}")


def _choose(value: Tensor, sampling_locations: Tensor, key: str, direction: str,
            run: Callable[[AttnConfig | None], object]) -> AttnConfig | None:
    """The measured choice for ``key`` (``None`` = reference); see :mod:`mmext.ops.autotune`."""
    configs = {cfg.name: cfg for cfg in tuning_space(direction)}
    if not value.is_cuda:  # the interpreter: its own config, which is also what the tuner returns off CUDA
        cfg = interpreter_config(sampling_locations.shape[1])
        configs = {cfg.name: cfg, **configs}
    candidates = {REFERENCE: lambda: run(None)}
    candidates.update({name: (lambda cfg=cfg: run(cfg)) for name, cfg in configs.items()})
    choice = get_autotuner().select(key, direction, candidates, value.device, default=next(iter(configs)),
                                    check=outputs_agree, op='ms_deform_attn')
    return configs.get(choice)


def ms_deform_attn_forward(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                           sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """The attention output ``(batch, num_queries, num_heads * head_dims)`` in ``value``'s dtype (see
    :func:`ms_deform_attn_reference` for the shapes); the fastest correct implementation for this shape."""
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    args = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights)

    def run(cfg: AttnConfig | None) -> Tensor:
        return ms_deform_attn_reference(*args) if cfg is None else _fused_forward(*args, cfg)

    if not _use_triton(value) or sampling_locations.numel() == 0 or value.numel() == 0:
        return run(None)
    return run(_choose(value, sampling_locations, _tune_key(value, spatial_shapes, sampling_locations), 'fwd', run))


def ms_deform_attn_backward(value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                            sampling_locations: Tensor, attention_weights: Tensor,
                            grad_output: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients ``(grad_value, grad_sampling_locations, grad_attention_weights)`` of :func:`ms_deform_attn_forward`
    for the output gradient ``grad_output``, each in its input's dtype."""
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    args = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights, grad_output)

    def run(cfg: AttnConfig | None) -> tuple[Tensor, Tensor, Tensor]:
        return _reference_backward(*args) if cfg is None else _fused_backward(*args, cfg)

    if not _use_triton(value) or sampling_locations.numel() == 0 or value.numel() == 0:
        return run(None)
    return run(_choose(value, sampling_locations, _tune_key(value, spatial_shapes, sampling_locations), 'bwd', run))
