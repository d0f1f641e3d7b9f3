"""PSANet's point-wise spatial attention mask (mmcv's ``psamask_forward`` / ``_backward``) as index copies.

For a feature map of ``H x W`` and a mask window of ``h_mask x w_mask`` centred on each pixel, the input holds, per
pixel ``(h, w)``, one channel per window cell ``(i, j)``; the output ``(N, H * W, H, W)`` places that value where the
cell lands on the map, ``(y, x) = (h + i - half_h_mask, w + j - half_w_mask)``, if it is inside:

* ``collect`` (``psa_type`` 0): ``out[n, y * W + x, h, w] = in[n, i * w_mask + j, h, w]``;
* ``distribute`` (``psa_type`` 1): ``out[n, h * W + w, y, x] = in[n, i * w_mask + j, h, w]``.

Every other output is zero. Each input element goes to at most one output element, so the forward is a gather and
the backward the reverse gather; the index pairs are built once per shape.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

__all__ = ['psamask_backward', 'psamask_forward']

PSA_TYPES = {0: 'collect', 1: 'distribute'}


@lru_cache(maxsize=16)
def _indices(psa_type: int, h_feature: int, w_feature: int, h_mask: int, w_mask: int, half_h_mask: int,
             half_w_mask: int) -> tuple[Tensor, Tensor]:
    """Flat ``(input index, output index)`` pairs within one image (CPU ``int64``)."""
    if psa_type not in PSA_TYPES:
        raise ValueError(f'psamask: psa_type must be 0 (collect) or 1 (distribute), got {psa_type!r}')
    i, j, h, w = torch.meshgrid(torch.arange(h_mask), torch.arange(w_mask), torch.arange(h_feature),
                                torch.arange(w_feature), indexing='ij')
    y, x = h + i - half_h_mask, w + j - half_w_mask
    inside = (y >= 0) & (y < h_feature) & (x >= 0) & (x < w_feature)
    i, j, h, w, y, x = (t[inside] for t in (i, j, h, w, y, x))
    area = h_feature * w_feature
    src = ((i * w_mask + j) * h_feature + h) * w_feature + w
    if psa_type == 0:
        dst = (y * w_feature + x) * area + h * w_feature + w
    else:
        dst = (h * w_feature + w) * area + y * w_feature + x
    return src, dst


def _check(mask: Tensor, psa_type: int, h_feature: int, w_feature: int, h_mask: int, w_mask: int) -> None:
    if mask.dim() != 4 or mask.shape[1:] != (h_mask * w_mask, h_feature, w_feature):
        raise ValueError(f'psamask: expected a tensor of shape (N, {h_mask * w_mask}, {h_feature}, {w_feature}) for '
                         f'a {h_mask}x{w_mask} mask on a {h_feature}x{w_feature} map, got {tuple(mask.shape)}')


def psamask_forward(input: Tensor, psa_type: int, h_mask: int, w_mask: int, half_h_mask: int,
                    half_w_mask: int) -> Tensor:
    """The ``(N, H * W, H, W)`` attention map from the ``(N, h_mask * w_mask, H, W)`` input."""
    n, _, h_feature, w_feature = input.shape
    _check(input, psa_type, h_feature, w_feature, h_mask, w_mask)
    src, dst = (t.to(input.device) for t in _indices(psa_type, h_feature, w_feature, h_mask, w_mask, half_h_mask,
                                                      half_w_mask))
    out = input.new_zeros(n, (h_feature * w_feature) ** 2)
    out[:, dst] = input.reshape(n, -1)[:, src]
    return out.view(n, h_feature * w_feature, h_feature, w_feature)


def psamask_backward(grad_output: Tensor, psa_type: int, h_mask: int, w_mask: int, half_h_mask: int,
                     half_w_mask: int) -> Tensor:
    """The gradient w.r.t. the ``(N, h_mask * w_mask, H, W)`` input of :func:`psamask_forward`."""
    n, _, h_feature, w_feature = grad_output.shape
    src, dst = (t.to(grad_output.device) for t in _indices(psa_type, h_feature, w_feature, h_mask, w_mask,
                                                            half_h_mask, half_w_mask))
    grad_input = grad_output.new_zeros(n, h_mask * w_mask * h_feature * w_feature)
    grad_input[:, src] = grad_output.reshape(n, -1)[:, dst]
    return grad_input.view(n, h_mask * w_mask, h_feature, w_feature)
