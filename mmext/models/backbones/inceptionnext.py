"""InceptionNeXt as a dense-prediction backbone.

InceptionNeXt: When Inception Meets ConvNeXt (Yu et al., CVPR 2024, arXiv 2303.16900). Module names equal the
released ImageNet checkpoints (official and timm), so their weights load key for key once the classification
head is dropped. Modules the released checkpoints lack (the per-output norms) live under ``out_norms``. The
skeleton (stem, options, output norms, layer depths) is :class:`~.metanext.MetaNeXtBackbone`'s.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer

from mmext.registry import MODELS

from .inceptionnext_weights import describe_arch, infer_arch
from .metanext import (
    MetaNeXtBackbone,
    MetaNeXtBlock,
    _BatchNorm,
    bn_scale_shift,
    dilate_convs,
    drop_path_rates,
    parse_out_indices,
    run_blocks,
)

OUTPUT_STRIDES = (8, 16, 32)


class MetaNeXtStage(nn.Module):
    """An optional downsample (norm then 2x2 conv) followed by ``depth`` blocks.

    ``stride`` 2 is the released patchify downsample. Below the requested output stride the stage keeps the
    resolution instead (timm's ``output_stride``): the 2x2 conv runs at stride 1 with dilation
    ``first_dilation`` and same padding (one extra row/column at the bottom/right when the padding is odd), and
    the blocks' convs are dilated by ``dilation``. The weights are the same either way.
    """

    def __init__(self, in_channels: int, out_channels: int, depth: int, downsample: bool,
                 drop_path_rates: Sequence[float], mlp_ratio: float = 4., block_cfg: dict | None = None,
                 norm_cfg: dict = dict(type='BN'), with_cp: bool = False, stride: int = 2,
                 dilation: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        first_dilation, dilation = dilation
        if downsample:
            padding = 'same' if stride == 1 else 0
            self.downsample = nn.Sequential(
                build_norm_layer(norm_cfg, in_channels)[1],
                nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=stride, dilation=first_dilation,
                          padding=padding))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[
            MetaNeXtBlock(out_channels, mlp_ratio, drop_path=rate, **(block_cfg or {})) for rate in drop_path_rates])
        dilate_convs(self.blocks, dilation)
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_blocks(self.blocks, self.downsample(x), self.with_cp)


@MODELS.register_module()
class InceptionNeXt(MetaNeXtBackbone):
    """InceptionNeXt backbone returning multi-scale features (strides 4, 8, 16, 32).

    Args:
        arch: A name in :attr:`arch_settings` or a dict with ``depths``, ``dims``, ``mlp_ratios`` and optionally
            ``token_mixer`` (``dict(type=..., **kwargs)``, a type in :data:`mmext.registry.TOKEN_MIXERS`, default
            ``'InceptionDWConv2d'`` with e.g. ``band_kernel_size``, ``branch_ratio``, ``branches``, ``bands``).
            The paper's variants are in :data:`mmext.models.variants.PAPER_VARIANTS`.
        in_channels: Input image channels.
        out_indices: Stages whose outputs are returned, in increasing order; negative indices count from the end.
        output_stride: 32 (the released network), 16 or 8: the last one or two stages keep the resolution and
            dilate their convs instead (DeepLab / PSPNet heads run at 8); the state dict is unchanged.
        norm_cfg: Norm of the stem, the downsamples and (unless ``block_norm_cfg``) the blocks; BatchNorm.
        block_norm_cfg: The blocks' norm when it differs, e.g. ``dict(type='LN2d', eps=1e-6)`` (Table 8 BN -> LN).
            Replaces the deprecated ``arch['block_norm']='BN' / 'LN'``.
        act_cfg: Activation of the blocks' MLPs; GELU.
        out_norm_cfg: If given, a new norm layer built from it is applied to each returned stage output (the
            authors' dense-prediction recipe uses SyncBN). ``None`` returns the raw stage outputs.
        frozen_stages: ``-1`` freezes nothing, ``0`` the stem, ``k > 0`` the stem and stages ``0..k-1`` (with
            their output norms): parameters get no gradient and BN layers stay in eval mode.
        norm_eval: Keep every BatchNorm of the backbone in eval mode during training.
        drop_path_rate: Stochastic depth rate in ``[0, 1)``, increasing linearly over all blocks from 0.
        layer_scale_init_value: Initial value of the per-channel ``gamma``.
        with_cp: Use gradient checkpointing on each block to save memory.
        fast_mixer: Whether the token mixers use the fused op on CUDA (see :class:`InceptionDWConv2d`). ``None``
            follows the process-wide default (``MMEXT_FAST_MIXER``, :func:`mmext.ops.set_fast_mixer`); an
            explicit ``True``/``False`` wins over it.
        deploy: Build the inference form with every BatchNorm of the stem, downsamples and blocks folded into a
            neighbouring conv (see :meth:`switch_to_deploy`), e.g. to load a checkpoint written by
            ``tools/model_converters/inceptionnext_deploy.py``.
        pretrained: mmseg's ``model.pretrained``: InceptionNeXt weights load as ``init_cfg`` Pretrained would;
            another network's weights (``open-mmlab://resnet50_v1c``) stop the build naming the fix.
        init_cfg: Initialisation; ``dict(type='Pretrained', checkpoint=...)`` loads an official, timm or mmengine
            checkpoint strictly (see :func:`~mmext.models.backbones.inceptionnext_weights.load_backbone_checkpoint`).
        device, dtype: Where and in which floating type the parameters are created (``'meta'``: no memory).

    Inputs must be at least :attr:`min_input_size` pixels high and wide (32 for the default four stages: the
    stride of the deepest returned stage); smaller ones raise a ``ValueError`` stating the minimum.
    """

    arch_settings = {
        'atto': dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), mlp_ratios=(4, 4, 4, 3),
                     token_mixer=dict(band_kernel_size=9, branch_ratio=0.25)),
        'tiny': dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3)),
        'small': dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3)),
        'base': dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024), mlp_ratios=(4, 4, 4, 3)),
    }
    arch_keys = ('depths', 'dims', 'mlp_ratios')
    layers_name = 'stages'
    layer_decay_type = 'stage_wise'

    def __init__(self, arch: str | dict = 'tiny', *, output_stride: int = 32, deploy: bool = False,
                 **kwargs) -> None:
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f'output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}')
        super().__init__(arch, body_args=dict(output_stride=output_stride), **kwargs)
        self.deploy = False
        if deploy:
            self.switch_to_deploy()

    @classmethod
    def _check_arch(cls, arch: dict) -> None:
        if not len(arch['depths']) == len(arch['dims']) == len(arch['mlp_ratios']):
            raise ValueError(f'depths, dims and mlp_ratios must have one entry per stage: {arch}')

    @property
    def num_stages(self) -> int:
        return len(self.arch['depths'])

    def _stem_shape(self) -> tuple[int, int]:
        return self.arch['dims'][0], 4

    def _build_body(self, *, out_indices: int | Sequence[int], norm_cfg: dict, block_cfg: dict,
                    drop_path_rate: float, output_stride: int) -> None:
        depths, dims = self.arch['depths'], self.arch['dims']
        self.output_stride = output_stride
        self.out_indices = parse_out_indices(out_indices, len(depths), 'stages')
        dpr = drop_path_rates(drop_path_rate, sum(depths))
        self.stages = nn.Sequential()
        self.feature_info: list[dict] = []
        stride, dilation, first_block = 4, 1, 0
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            stage_stride = 2 if i > 0 else 1
            first_dilation = dilation
            if stage_stride > 1 and stride >= self.output_stride:  # keep the resolution, dilate instead
                dilation, stage_stride = dilation * 2, 1
            stride *= stage_stride
            self.stages.append(MetaNeXtStage(
                dims[i - 1] if i > 0 else dim, dim, depth, downsample=i > 0,
                drop_path_rates=dpr[first_block:first_block + depth], mlp_ratio=self.arch['mlp_ratios'][i],
                block_cfg=block_cfg, norm_cfg=norm_cfg, with_cp=self.with_cp, stride=stage_stride,
                dilation=(first_dilation, dilation)))
            self.feature_info.append(dict(num_chs=dim, reduction=stride, module=f'stages.{i}'))
            first_block += depth

    def _forward_body(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, stage in enumerate(self.stages[:self.out_indices[-1] + 1]):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return outs

    def _output_layer(self, index: int) -> int:
        return index  # stage i's output norm belongs to stage i

    @torch.no_grad()
    def switch_to_deploy(self) -> InceptionNeXt:
        """Fold BatchNorms into convs for inference; the eval-mode outputs stay the same.

        Uses each BN's running statistics: the stem BN folds into the stem conv before it, each downsample BN
        into the 2x2 stride-2 conv after it (no padding, so exactly; a same-padded downsample of a reduced
        ``output_stride`` keeps its BN, which padding would make inexact at the border), each block's BN into
        ``mlp.fc1`` and its ``gamma`` into ``mlp.fc2``. Folded BNs become ``nn.Identity`` and ``gamma`` ``None``,
        so the state dict keeps the training form's names minus the removed keys. Norms other than BatchNorm and
        ``out_norms`` stay as they are. Idempotent.
        """
        if self.deploy:
            return self
        conv, bn = self.stem[0], self.stem[1]
        if isinstance(bn, _BatchNorm):
            scale, shift = bn_scale_shift(bn)
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            conv.weight.copy_(conv.weight.double() * scale.reshape(-1, 1, 1, 1))
            self._set_bias(conv, bias * scale + shift)
            self.stem[1] = nn.Identity()
        for stage in self.stages:
            if isinstance(stage.downsample, nn.Sequential) and isinstance(stage.downsample[0], _BatchNorm) \
                    and stage.downsample[1].padding == (0, 0):
                bn, conv = stage.downsample[0], stage.downsample[1]
                scale, shift = bn_scale_shift(bn)
                weight = conv.weight.double()
                bias = conv.bias.double() if conv.bias is not None else weight.new_zeros(weight.shape[0])
                self._set_bias(conv, bias + (weight * shift.reshape(1, -1, 1, 1)).sum((1, 2, 3)))
                conv.weight.copy_(weight * scale.reshape(1, -1, 1, 1))
                stage.downsample[0] = nn.Identity()
            for block in stage.blocks:
                block.switch_to_deploy()
        self.deploy = True
        return self

    @staticmethod
    def _set_bias(conv: nn.Conv2d, bias: torch.Tensor) -> None:
        if conv.bias is None:
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
        else:
            conv.bias.copy_(bias)

    def describe_state_dict_mismatch(self, state_dict: Mapping[str, torch.Tensor]) -> str | None:
        """Which arch ``state_dict`` (this backbone's part of a checkpoint) looks like, when not this one's; used by
        :func:`mmext.checkpoint.check_model_state_dict` to head its message."""
        inferred = infer_arch(state_dict)
        if inferred is None:
            return None
        mine, theirs = describe_arch(self.arch, self.arch_settings), describe_arch(inferred, self.arch_settings)
        return f'the checkpoint looks like {theirs} but the config builds {mine}' if theirs != mine else None
