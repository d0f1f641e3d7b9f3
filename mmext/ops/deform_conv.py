"""Deformable convolution (DCNv1) and modulated deformable convolution (DCNv2) on torchvision's kernel.

mmcv's ``DeformConv2d`` / ``ModulatedDeformConv2d`` split their work into ext ops that fill preallocated tensors:
a forward, and for the backward the input/offset gradients apart from the weight gradient. These functions return
the same quantities from :func:`torchvision.ops.deform_conv2d` (CPU and CUDA), the backward pieces by autograd
through it. The offset layout is the same in both libraries (per deformable group and kernel tap, ``(dy, dx)``
interleaved), and torchvision's ``mask`` is DCNv2's modulation, so the results are mmcv's.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import deform_conv2d

__all__ = ['deform_conv_backward', 'deform_conv_forward']


def _check_groups(input: Tensor, weight: Tensor, offset: Tensor, group: int, deformable_group: int) -> None:
    kernel_taps = weight.shape[2] * weight.shape[3]
    if input.shape[1] != weight.shape[1] * group:
        raise ValueError(f'deform_conv: input has {input.shape[1]} channels but weight {tuple(weight.shape)} with '
                         f'group={group} expects {weight.shape[1] * group}')
    expected = 2 * kernel_taps * deformable_group
    if offset.shape[1] != expected:
        raise ValueError(f'deform_conv: offset has {offset.shape[1]} channels; {deformable_group} deformable '
                         f'group(s) of a {weight.shape[2]}x{weight.shape[3]} kernel need {expected}')


def deform_conv_forward(input: Tensor, weight: Tensor, offset: Tensor, mask: Tensor | None = None,
                        bias: Tensor | None = None, stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                        dilation: tuple[int, int] = (1, 1), group: int = 1, deformable_group: int = 1) -> Tensor:
    """The deformable conv's output ``(N, C_out, H_out, W_out)``; ``mask`` (DCNv2) multiplies each sample.

    ``offset`` is ``(N, 2 * deformable_group * kh * kw, H_out, W_out)``, ``mask`` ``(N, deformable_group * kh * kw,
    H_out, W_out)``; ``stride``, ``padding``, ``dilation`` are ``(h, w)``. torchvision infers ``group`` and
    ``deformable_group`` from the shapes; they are checked here so a mismatch names mmcv's arguments.
    """
    _check_groups(input, weight, offset, group, deformable_group)
    return deform_conv2d(input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)


def deform_conv_backward(input: Tensor, weight: Tensor, offset: Tensor, grad_output: Tensor,
                         mask: Tensor | None = None, bias: Tensor | None = None, *, needs: tuple[str, ...],
                         stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                         dilation: tuple[int, int] = (1, 1), group: int = 1,
                         deformable_group: int = 1) -> dict[str, Tensor]:
    """Gradients of :func:`deform_conv_forward` for ``grad_output``, for the inputs named in ``needs`` (of
    ``input``, ``weight``, ``offset``, ``mask``, ``bias``), by autograd through torchvision's op."""
    tensors = dict(input=input, weight=weight, offset=offset, mask=mask, bias=bias)
    unknown = set(needs) - {k for k, v in tensors.items() if v is not None}
    if unknown:
        raise ValueError(f'deform_conv_backward: cannot differentiate w.r.t. {sorted(unknown)} (not given)')
    leaves = {k: (v.detach().requires_grad_(k in needs) if v is not None else None) for k, v in tensors.items()}
    with torch.enable_grad():
        out = deform_conv_forward(leaves['input'], leaves['weight'], leaves['offset'], leaves['mask'],
                                  leaves['bias'], stride, padding, dilation, group, deformable_group)
        grads = torch.autograd.grad(out, [leaves[k] for k in needs], grad_output.to(out.dtype))
    return dict(zip(needs, grads))
