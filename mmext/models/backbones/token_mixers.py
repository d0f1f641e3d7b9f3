"""Token mixers of MetaNeXt blocks: the spatial operators ``x -> token_mixer(x)`` a block wraps.

A block's mixer is data: ``token_mixer=dict(type=..., **kwargs)`` in the backbone's ``arch`` dict, built by
:func:`build_token_mixer`. ``type`` is a name in :data:`mmext.registry.TOKEN_MIXERS` and defaults to
``'InceptionDWConv2d'`` (the released networks), so ``dict(band_kernel_size=9)`` keeps meaning what it always did.
A mixer is a module whose first argument is the channel count ``C`` and that maps ``(N, C, H, W)`` to the same
shape; add one with ``@TOKEN_MIXERS.register_module()``. Same-padded odd-kernel ``nn.Conv2d`` layers in it are
dilated when the backbone runs at a reduced ``output_stride``.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmext.ops import HAS_TRITON, fast_mixer_enabled, inception_dwconv
from mmext.registry import TOKEN_MIXERS

INCEPTION_BRANCHES = ('hw', 'w', 'h')


@TOKEN_MIXERS.register_module()
class InceptionDWConv2d(nn.Module):
    """Inception depthwise convolution, the token mixer of InceptionNeXt.

    Channels are split into ``(identity, square, band-w, band-h)`` parts of sizes ``(C - 3g, g, g, g)`` with
    ``g = int(C * branch_ratio)`` (the order of the released weights; the paper's Algorithm 1 puts identity
    last). The square part gets a ``k x k`` depthwise conv, the band parts ``1 x b`` and ``b x 1`` ones.

    Table 8's ablations are options: ``branches`` keeps a subset of ``('hw', 'w', 'h')`` (the removed branches'
    channels join the identity part, and their convs do not exist); ``bands='sequential'`` runs ``1 x b`` then
    ``b x 1`` on one ``g``-channel part instead of each on its own part (the freed ``g`` channels join the identity
    part; same parameters, our reading of the paper's one-line description).

    On CUDA tensors (with Triton installed) the default form runs the fused op :func:`mmext.ops.inception_dwconv`,
    which reads the input once and writes the output once instead of split + three convs + cat; the parameters
    are the same. The op needs the three parallel branches, so the ablated forms take the reference path.
    ``fast_mixer`` chooses: ``None`` (default) follows :func:`mmext.ops.fast_mixer_enabled`
    (``MMEXT_FAST_MIXER``, :func:`mmext.ops.set_fast_mixer`) at each forward, ``True``/``False`` wins over both.
    CPU tensors always take the reference formulation.
    """

    def __init__(self, in_channels: int, square_kernel_size: int = 3, band_kernel_size: int = 11,
                 branch_ratio: float = 0.125, branches: Sequence[str] = INCEPTION_BRANCHES,
                 bands: str = 'parallel', fast_mixer: bool | None = None) -> None:
        super().__init__()
        if isinstance(branches, str) or not set(branches) <= set(INCEPTION_BRANCHES) or not branches \
                or len(set(branches)) != len(branches):
            raise ValueError(f'branches must be a non-empty subset of {INCEPTION_BRANCHES}, got {branches!r}')
        if bands not in ('parallel', 'sequential'):
            raise ValueError(f"bands must be 'parallel' or 'sequential', got {bands!r}")
        if bands == 'sequential' and not {'w', 'h'} <= set(branches):
            raise ValueError(f"bands='sequential' chains the 'w' and 'h' branches; branches={tuple(branches)} "
                             'lacks one of them')
        gc = int(in_channels * branch_ratio)
        self.branches = tuple(b for b in INCEPTION_BRANCHES if b in branches)  # the released order
        self.bands = bands
        num_parts = len(self.branches) - (bands == 'sequential')
        if gc < 1 or num_parts * gc > in_channels:
            raise ValueError(f'branch_ratio={branch_ratio} gives {gc} channels per branch for '
                             f'{in_channels} input channels; need 1 <= gc <= in_channels / {num_parts}')
        if 'hw' in self.branches:
            self.dwconv_hw = nn.Conv2d(gc, gc, square_kernel_size, padding=square_kernel_size // 2, groups=gc)
        if 'w' in self.branches:
            self.dwconv_w = nn.Conv2d(gc, gc, (1, band_kernel_size), padding=(0, band_kernel_size // 2), groups=gc)
        if 'h' in self.branches:
            self.dwconv_h = nn.Conv2d(gc, gc, (band_kernel_size, 1), padding=(band_kernel_size // 2, 0), groups=gc)
        self.split_indexes = (in_channels - num_parts * gc, *([gc] * num_parts))
        self.fast_mixer = fast_mixer

    @property
    def fusable(self) -> bool:
        """Whether the fused op computes this mixer (the three parallel branches of the released form, undilated)."""
        return self.branches == INCEPTION_BRANCHES and self.bands == 'parallel' and self.dwconv_hw.dilation == (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = fast_mixer_enabled() if self.fast_mixer is None else self.fast_mixer
        if fast and HAS_TRITON and x.is_cuda and self.fusable:
            if torch.is_autocast_enabled('cuda'):
                # the op is outside autocast's lists; run it in the autocast dtype like the convs it replaces
                x = x.to(torch.get_autocast_dtype('cuda'))
            return inception_dwconv(x, self.dwconv_hw.weight, self.dwconv_hw.bias, self.dwconv_w.weight,
                                    self.dwconv_w.bias, self.dwconv_h.weight, self.dwconv_h.bias)
        x_id, *parts = torch.split(x, self.split_indexes, dim=1)
        if self.bands == 'sequential':
            convs = [self.dwconv_hw] if 'hw' in self.branches else []
            convs.append(lambda t: self.dwconv_h(self.dwconv_w(t)))
        else:
            convs = [getattr(self, f'dwconv_{b}') for b in self.branches]
        return torch.cat([x_id, *(conv(part) for conv, part in zip(convs, parts))], dim=1)


@TOKEN_MIXERS.register_module()
class DWConv2d(nn.Module):
    """A ``kernel_size x kernel_size`` depthwise conv (with bias) on ``int(C * ratio)`` channels, the rest identity.

    The mixer of the paper's Table 1 (ConvNeXt-T's 7x7 depthwise conv shrunk and applied to a part of the channels);
    ``ratio=1`` is ConvNeXt's mixer. The identity part comes first, as in :class:`InceptionDWConv2d`.
    """

    def __init__(self, in_channels: int, kernel_size: int = 7, ratio: float = 1.0) -> None:
        super().__init__()
        gc = int(in_channels * ratio)
        if not 1 <= gc <= in_channels:
            raise ValueError(f'ratio={ratio} gives {gc} conv channels for {in_channels} input channels; '
                             'need 1 <= int(in_channels * ratio) <= in_channels')
        self.dwconv = nn.Conv2d(gc, gc, kernel_size, padding=kernel_size // 2, groups=gc)
        self.split_indexes = (in_channels - gc, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split_indexes[0] == 0:
            return self.dwconv(x)
        x_id, x_conv = torch.split(x, self.split_indexes, dim=1)
        return torch.cat((x_id, self.dwconv(x_conv)), dim=1)


@TOKEN_MIXERS.register_module()
class Attention(nn.Module):
    """Multi-head self-attention over all ``H x W`` positions (DeiT's, the mixer of the paper's MetaNeXt-Attn).

    ``num_heads`` heads of ``C // num_heads`` channels; ``None`` gives heads of ``head_dim`` channels (DeiT's 64),
    at least one. Cost grows with ``(H W)^2``: meant for the stride-16 isotropic network.
    """

    def __init__(self, in_channels: int, num_heads: int | None = None, head_dim: int = 64,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        if num_heads is None:
            num_heads = max(1, in_channels // head_dim)
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1 \
                or in_channels % num_heads:
            raise ValueError(f'num_heads={num_heads!r} must be a positive integer dividing in_channels={in_channels}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(in_channels, 3 * in_channels, bias=qkv_bias)
        self.proj = nn.Linear(in_channels, in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, HW, C)
        q, k, v = self.qkv(tokens).reshape(n, h * w, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, HW, C / heads)
        out = self.proj(out.transpose(1, 2).reshape(n, h * w, c))
        return out.transpose(1, 2).reshape(n, c, h, w)


@TOKEN_MIXERS.register_module()
class Identity(nn.Identity):
    """No token mixing: the free-mixer bound of the speed benchmark (what a zero-cost mixer would allow)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()


DEFAULT_TOKEN_MIXER = 'InceptionDWConv2d'


def check_token_mixer_cfg(cfg: Mapping | None) -> dict:
    """``cfg`` with ``type`` filled in, after checking the type and its keyword names (before any module is built)."""
    cfg = dict(cfg or {})
    mixer_type = cfg.pop('type', DEFAULT_TOKEN_MIXER)
    mixer_cls = TOKEN_MIXERS.get(mixer_type) if isinstance(mixer_type, str) else mixer_type
    if not inspect.isclass(mixer_cls):
        raise ValueError(f'Unknown token_mixer type {mixer_type!r}; registered: {sorted(TOKEN_MIXERS.module_dict)} '
                         '(register yours with @mmext.registry.TOKEN_MIXERS.register_module())')
    params = inspect.signature(mixer_cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        allowed = [p for p in params if p != 'self'][1:]  # the first argument is the channel count
        unknown = sorted(set(cfg) - set(allowed))
        if unknown:
            raise ValueError(f'token_mixer {mixer_type} has no option(s) {unknown}; it takes {allowed}')
    return dict(type=mixer_type, **cfg)


def build_token_mixer(cfg: Mapping | None, in_channels: int) -> nn.Module:
    """Build the token mixer ``cfg`` (``dict(type=..., **kwargs)``, type defaulting to InceptionDWConv2d) for
    ``in_channels`` channels."""
    return TOKEN_MIXERS.build(check_token_mixer_cfg(cfg), in_channels=in_channels)
