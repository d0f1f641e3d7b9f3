"""Isotropic InceptionNeXt (paper Table 5) as a dense-prediction backbone.

One stride-16 patch embedding, then ``depth`` MetaNeXt blocks at constant width, like DeiT-S / ConvNeXt-S (iso.);
not in the released code. A simple feature pyramid (ViTDet; mmseg's ViT + MultiLevelNeck) turns the single
stride-16 map into strides 4, 8, 16, 32, so UperNet and Semantic FPN heads take it with only their channels changed.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer

from mmext.registry import MODELS

from .metanext import MetaNeXtBackbone, MetaNeXtBlock, drop_path_rates, parse_out_indices, run_blocks, warn_renamed

PYRAMID_STRIDES = (4, 8, 16, 32)


def _pyramid_level(stride: int, patch_size: int, dim: int, norm_cfg: dict, act_cfg: dict) -> nn.Module:
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
            layers += [build_norm_layer(norm_cfg, dim)[1], build_activation_layer(act_cfg)]
        layers.append(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2))
        up //= 2
    return nn.Sequential(*layers)


@MODELS.register_module()
class InceptionNeXtIsotropic(MetaNeXtBackbone):
    """Isotropic MetaNeXt backbone (InceptionNeXt-S (iso.), MetaNeXt-Attn) returning a stride-4/8/16/32 pyramid.

    Args:
        arch: A name in :attr:`arch_settings` or a dict with ``depth``, ``dim``, ``mlp_ratio`` and optionally
            ``patch_size`` (16) and ``token_mixer`` (``dict(type=...)`` as in :class:`InceptionNeXt`; default the
            Inception mixer with band 11, ratio 1/8).
            ``'small'`` is the paper's InceptionNeXt-S (iso.); ``'attn_small'`` its MetaNeXt-Attn, which has
            DeiT-S's 12 blocks of 6 heads (the paper gives it DeiT-S's 22M params and 4.6G MACs; 18 attention
            blocks would be 32M).
        in_channels: Input image channels.
        out_indices: Pyramid levels returned, indices into strides ``(4, 8, 16, 32)``; level 2 is the blocks'
            own output.
        norm_cfg: Norm of the stem and (unless ``block_norm_cfg``) the blocks; BatchNorm. Until the deprecated
            meaning is gone, ``norm_cfg`` given without ``pyramid_norm_cfg`` keeps its old meaning (the pyramid's
            norm only) with a FutureWarning.
        block_norm_cfg: The blocks' norm when it differs (``dict(type='LN2d', eps=1e-6)``: ConvNeXt-S (iso.)).
        act_cfg: Activation of the blocks' MLPs and of the pyramid; GELU.
        pyramid_norm_cfg: Norm between the two deconvolutions of the stride-4 level (ViTDet uses a LayerNorm; BN
            here, like the rest of the network; SyncBN in the configs).
        out_norm_cfg: If given, a new norm on each returned pyramid level.
        frozen_stages: ``-1`` freezes nothing, ``0`` the stem, ``k > 0`` the stem and blocks ``0..k-1``.
        norm_eval, drop_path_rate, layer_scale_init_value, with_cp, fast_mixer, pretrained, init_cfg, device,
            dtype: As in :class:`InceptionNeXt`. A Pretrained checkpoint may lack the pyramid (an ImageNet-trained
            classifier's; its ``head.*`` is dropped).

    Inputs must be at least :attr:`min_input_size` pixels high and wide (32 when level 3 is returned, else 16).
    """

    arch_settings = {
        'small': dict(depth=18, dim=384, mlp_ratio=4, token_mixer=dict(band_kernel_size=11, branch_ratio=0.125)),
        'attn_small': dict(depth=12, dim=384, mlp_ratio=4, token_mixer=dict(type='Attention', num_heads=6)),
    }
    arch_keys = ('depth', 'dim', 'mlp_ratio')
    arch_options = ('patch_size', 'token_mixer')
    layers_name = 'blocks'
    layer_decay_type = 'layer_wise'  # one layer per block, as ViT / BEiT
    # modules a classification checkpoint lacks; a strict load reports them as new instead of missing
    new_module_prefixes = ('pyramid.', 'out_norms.')

    def __init__(self, arch: str | dict = 'small', *, norm_cfg: dict | None = None,
                 pyramid_norm_cfg: dict | None = None, **kwargs) -> None:
        if norm_cfg is not None and pyramid_norm_cfg is None:
            warn_renamed(type(self).__name__, f'norm_cfg={norm_cfg} for the pyramid norm',
                         f'pyramid_norm_cfg={norm_cfg} (norm_cfg will set the stem and block norms)')
            norm_cfg, pyramid_norm_cfg = None, norm_cfg
        super().__init__(arch, norm_cfg=norm_cfg or dict(type='BN'),
                         body_args=dict(pyramid_norm_cfg=pyramid_norm_cfg or dict(type='BN')), **kwargs)

    @classmethod
    def _check_arch(cls, arch: dict) -> None:
        patch = arch.get('patch_size', 16)
        if not isinstance(patch, int) or patch < 4 or patch & (patch - 1) or patch > 32:
            raise ValueError(f'patch_size must be a power of two in [4, 32] (the pyramid has strides 4..32), '
                             f'got {patch!r}')

    @property
    def num_layers(self) -> int:
        return self.arch['depth']

    def _stem_shape(self) -> tuple[int, int]:
        return self.arch['dim'], self.arch.get('patch_size', 16)

    def _build_body(self, *, out_indices: int | Sequence[int], norm_cfg: dict, block_cfg: dict,
                    drop_path_rate: float, pyramid_norm_cfg: dict) -> None:
        depth, dim, patch = self.arch['depth'], self.arch['dim'], self.arch.get('patch_size', 16)
        self.out_indices = parse_out_indices(out_indices, len(PYRAMID_STRIDES), 'pyramid levels')
        self.blocks = nn.Sequential(*[MetaNeXtBlock(dim, self.arch['mlp_ratio'], drop_path=rate, **block_cfg)
                                      for rate in drop_path_rates(drop_path_rate, depth)])
        self.pyramid = nn.ModuleDict({str(i): _pyramid_level(PYRAMID_STRIDES[i], patch, dim, pyramid_norm_cfg,
                                                             block_cfg['act_cfg']) for i in self.out_indices})
        self.feature_info = [dict(num_chs=dim, reduction=s, module=f'pyramid.{i}')
                             for i, s in enumerate(PYRAMID_STRIDES)]

    def _forward_body(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = run_blocks(self.blocks, x, self.with_cp)
        return [self.pyramid[str(i)](x) for i in self.out_indices]
