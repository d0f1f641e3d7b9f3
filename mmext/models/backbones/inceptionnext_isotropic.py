"""Isotropic InceptionNeXt (paper Table 5) as a dense-prediction backbone.

One stride-16 patch embedding, then ``depth`` MetaNeXt blocks at constant width, like DeiT-S / ConvNeXt-S (iso.);
not in the released code. A simple feature pyramid (ViTDet; mmseg's ViT + MultiLevelNeck) turns the single
stride-16 map into strides 4, 8, 16, 32, so UperNet and Semantic FPN heads take it with only their channels changed.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer

from mmext.registry import MODELS

from .inceptionnext import (
    MetaNeXtBackbone,
    MetaNeXtBlock,
    check_arch_options,
    check_drop_path_rate,
    check_frozen_stages,
    check_input_size,
    parse_out_indices,
)

PYRAMID_STRIDES = (4, 8, 16, 32)


def _pyramid_level(stride: int, patch_size: int, dim: int, norm_cfg: dict) -> nn.Module:
    """The ViTDet simple-pyramid branch from the ``patch_size`` map to ``stride``: 2x2 deconvs up, max-pool down."""
    if stride == patch_size:
        return nn.Identity()
    if stride > patch_size:
        factor = stride // patch_size
        return nn.MaxPool2d(kernel_size=factor, stride=factor)
    layers: list[nn.Module] = []
    up = patch_size // stride
    while up > 1:
        if layers:
            layers += [build_norm_layer(norm_cfg, dim)[1], nn.GELU()]
        layers.append(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2))
        up //= 2
    return nn.Sequential(*layers)


@MODELS.register_module()
class InceptionNeXtIsotropic(MetaNeXtBackbone):
    """Isotropic MetaNeXt backbone (InceptionNeXt-S (iso.), MetaNeXt-Attn) returning a stride-4/8/16/32 pyramid.

    Args:
        arch: A name in :attr:`arch_settings` or a dict with ``depth``, ``dim``, ``mlp_ratio`` and optionally
            ``patch_size`` (16), ``token_mixer`` (``dict(type=...)`` as in :class:`InceptionNeXt`; default the
            Inception mixer with band 11, ratio 1/8) and ``block_norm`` (``'BN'`` or ``'LN'``).
            ``'small'`` is the paper's InceptionNeXt-S (iso.); ``'attn_small'`` its MetaNeXt-Attn, which has
            DeiT-S's 12 blocks of 6 heads (the paper gives it DeiT-S's 22M params and 4.6G MACs; 18 attention
            blocks would be 32M).
        in_channels: Input image channels.
        out_indices: Pyramid levels returned, indices into strides ``(4, 8, 16, 32)``; level 2 is the blocks'
            own output.
        norm_cfg: Norm between the two deconvolutions of the stride-4 level (ViTDet uses a LayerNorm; BN here, like
            the rest of the network; SyncBN in the configs).
        frozen_stages: ``-1`` freezes nothing, ``0`` the stem, ``k > 0`` the stem and blocks ``0..k-1``.
        norm_eval: Keep every BatchNorm in eval mode during training.
        drop_path_rate: Stochastic depth rate in ``[0, 1)``, increasing linearly over the blocks from 0.
        layer_scale_init_value: Initial value of each block's ``gamma``.
        with_cp: Gradient checkpointing on each block.
        fast_mixer: As in :class:`InceptionNeXt`.
        init_cfg: Initialisation; ``dict(type='Pretrained', checkpoint=...)`` loads strictly (the pyramid may be
            absent from the checkpoint, e.g. an ImageNet-trained classifier's; its ``head.*`` is dropped).

    Inputs must be at least :attr:`min_input_size` pixels high and wide (32 when level 3 is returned, else 16).
    """

    arch_settings = {
        'small': dict(depth=18, dim=384, mlp_ratio=4, token_mixer=dict(band_kernel_size=11, branch_ratio=0.125)),
        'attn_small': dict(depth=12, dim=384, mlp_ratio=4, token_mixer=dict(type='Attention', num_heads=6)),
    }
    # modules a classification checkpoint lacks; a strict load reports them as new instead of missing
    new_module_prefixes = ('pyramid.',)

    def __init__(self,
                 arch: str | dict = 'small',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 norm_cfg: dict = dict(type='BN'),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 with_cp: bool = False,
                 fast_mixer: bool | None = None,
                 init_cfg: dict | list[dict] | None = dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02,
                                                           bias=0.)):
        super().__init__(init_cfg=init_cfg)
        self.arch = self._parse_arch(arch)
        depth, dim, patch = self.arch['depth'], self.arch['dim'], self.arch.get('patch_size', 16)
        self.num_layers = depth
        self.out_indices = parse_out_indices(out_indices, len(PYRAMID_STRIDES), 'pyramid levels')
        self.frozen_stages = check_frozen_stages(frozen_stages, depth)
        check_drop_path_rate(drop_path_rate)
        self.norm_eval = norm_eval
        self.with_cp = with_cp

        self.stem = nn.Sequential(nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch), nn.BatchNorm2d(dim))
        dpr = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()  # also under a meta device
        self.blocks = nn.Sequential(*[
            MetaNeXtBlock(dim, self.arch['mlp_ratio'], self.arch.get('token_mixer'), layer_scale_init_value, dpr[i],
                          self.arch.get('block_norm', 'BN'))
            for i in range(depth)
        ])
        self.pyramid = nn.ModuleDict(
            {str(i): _pyramid_level(PYRAMID_STRIDES[i], patch, dim, norm_cfg) for i in self.out_indices})
        self.feature_info = [dict(num_chs=dim, reduction=s, module=f'pyramid.{i}')
                             for i, s in enumerate(PYRAMID_STRIDES)]
        self._use_fast_mixer(fast_mixer)
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: str | dict) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'Unknown InceptionNeXtIsotropic arch {arch!r}; choose from '
                                 f'{sorted(cls.arch_settings)} or pass a dict with depth, dim and mlp_ratio')
            return copy.deepcopy(cls.arch_settings[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        missing = {'depth', 'dim', 'mlp_ratio'} - set(arch)
        if missing:
            raise ValueError(f'Custom isotropic arch is missing keys {sorted(missing)}: {arch}')
        unknown = set(arch) - {'depth', 'dim', 'mlp_ratio', 'patch_size', 'token_mixer', 'block_norm'}
        if unknown:
            raise ValueError(f'Custom isotropic arch has unknown keys {sorted(unknown)}: {arch}')
        patch = arch.get('patch_size', 16)
        if not isinstance(patch, int) or patch < 4 or patch & (patch - 1) or patch > 32:
            raise ValueError(f'patch_size must be a power of two in [4, 32] (the pyramid has strides 4..32), '
                             f'got {patch!r}')
        arch = copy.deepcopy(dict(arch))
        check_arch_options(arch)
        return arch

    @property
    def min_input_size(self) -> int:
        """Smallest input height and width: the largest of the patch size and the deepest returned stride."""
        return max(self.arch.get('patch_size', 16), self.strides[-1])

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        for module in [self.stem, *self.blocks[:self.frozen_stages]]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_input_size(x, self.min_input_size, type(self).__name__)
        x = self.stem(x)
        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return tuple(self.pyramid[str(i)](x) for i in self.out_indices)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """Layer id of a parameter for layer-wise learning-rate decay (ViT / BEiT style).

        The stem is layer 0, block ``i`` layer ``i + 1``; the pyramid and every parameter outside the backbone are
        the last layer ``depth + 1``.

        Returns:
            ``(layer_id, num_layers)`` with ``num_layers = depth + 2``.
        """
        num_layers = self.num_layers + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        if name.startswith('stem.'):
            return 0, num_layers
        if name.startswith('blocks.'):
            return int(name.split('.')[1]) + 1, num_layers
        return num_layers - 1, num_layers
