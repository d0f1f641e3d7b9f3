"""Token mixers of MetaNeXt blocks: the spatial operators ``x -> token_mixer(x)`` a block wraps."""
from __future__ import annotations

import torch
import torch.nn as nn

from mmext.ops import HAS_TRITON, fast_mixer_enabled, inception_dwconv


class InceptionDWConv2d(nn.Module):
    """Inception depthwise convolution, the token mixer of InceptionNeXt.

    Channels are split into ``(identity, square, band-w, band-h)`` parts of sizes ``(C - 3g, g, g, g)`` with
    ``g = int(C * branch_ratio)`` (the order of the released weights; the paper's Algorithm 1 puts identity
    last). The square part gets a ``k x k`` depthwise conv, the band parts ``1 x b`` and ``b x 1`` ones.

    On CUDA tensors (with Triton installed) the forward runs the fused op :func:`mmext.ops.inception_dwconv`,
    which reads the input once and writes the output once instead of split + three convs + cat; the parameters
    are the same. ``fast_mixer`` chooses: ``None`` (default) follows :func:`mmext.ops.fast_mixer_enabled`
    (``MMEXT_FAST_MIXER``, :func:`mmext.ops.set_fast_mixer`) at each forward, ``True``/``False`` wins over both.
    CPU tensors always take the reference formulation.
    """

    def __init__(self, in_channels: int, square_kernel_size: int = 3, band_kernel_size: int = 11,
                 branch_ratio: float = 0.125, fast_mixer: bool | None = None) -> None:
        super().__init__()
        gc = int(in_channels * branch_ratio)
        if gc < 1 or 3 * gc > in_channels:
            raise ValueError(f'branch_ratio={branch_ratio} gives {gc} channels per branch for '
                             f'{in_channels} input channels; need 1 <= gc <= in_channels / 3')
        self.dwconv_hw = nn.Conv2d(gc, gc, square_kernel_size, padding=square_kernel_size // 2, groups=gc)
        self.dwconv_w = nn.Conv2d(gc, gc, (1, band_kernel_size), padding=(0, band_kernel_size // 2), groups=gc)
        self.dwconv_h = nn.Conv2d(gc, gc, (band_kernel_size, 1), padding=(band_kernel_size // 2, 0), groups=gc)
        self.split_indexes = (in_channels - 3 * gc, gc, gc, gc)
        self.fast_mixer = fast_mixer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = fast_mixer_enabled() if self.fast_mixer is None else self.fast_mixer
        if fast and HAS_TRITON and x.is_cuda:
            if torch.is_autocast_enabled('cuda'):
                # the op is outside autocast's lists; run it in the autocast dtype like the convs it replaces
                x = x.to(torch.get_autocast_dtype('cuda'))
            return inception_dwconv(x, self.dwconv_hw.weight, self.dwconv_hw.bias, self.dwconv_w.weight,
                                    self.dwconv_w.bias, self.dwconv_h.weight, self.dwconv_h.bias)
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_indexes, dim=1)
        return torch.cat((x_id, self.dwconv_hw(x_hw), self.dwconv_w(x_w), self.dwconv_h(x_h)), dim=1)
