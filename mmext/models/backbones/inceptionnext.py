"""InceptionNeXt as a dense-prediction backbone.

InceptionNeXt: When Inception Meets ConvNeXt (Yu et al., CVPR 2024, arXiv 2303.16900). Module names equal the
released ImageNet checkpoints (official and timm), so their weights load key for key once the classification
head is dropped. Modules the released checkpoints lack (the per-output norms) live under ``out_norms``.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule

from mmext.compat.upstream import batch_norm_base
from mmext.registry import MODELS

from .inceptionnext_weights import describe_arch, infer_arch, load_backbone_checkpoint
from .token_mixers import InceptionDWConv2d, build_token_mixer, check_token_mixer_cfg

BLOCK_NORMS = ('BN', 'LN')


_BatchNorm = batch_norm_base()

class ConvMlp(nn.Module):
    """Pointwise MLP: 1x1 conv, GELU, 1x1 conv, both with bias."""

    def __init__(self, in_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_channels, hidden_channels, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_channels, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` tensor (channels-first), ConvNeXt's block norm."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


def build_block_norm(name: str, dim: int) -> nn.Module:
    """The norm after a block's token mixer: ``'BN'`` (InceptionNeXt) or ``'LN'`` (:class:`LayerNorm2d`, the paper's
    Table 8 "BN -> LN" and ConvNeXt)."""
    if name == 'BN':
        return nn.BatchNorm2d(dim)
    if name == 'LN':
        return LayerNorm2d(dim)
    raise ValueError(f'block_norm must be one of {BLOCK_NORMS}, got {name!r}')


class MetaNeXtBlock(nn.Module):
    """``x + drop_path(gamma * mlp(norm(token_mixer(x))))``: one residual per block.

    ``token_mixer_cfg`` is ``dict(type=..., **kwargs)`` (see :func:`~.token_mixers.build_token_mixer`; the type
    defaults to :class:`InceptionDWConv2d`), ``block_norm`` ``'BN'`` or ``'LN'``.
    :meth:`switch_to_deploy` folds a BatchNorm ``norm`` into ``mlp.fc1`` and ``gamma`` into ``mlp.fc2``, leaving
    ``x + drop_path(mlp(token_mixer(x)))`` with ``norm`` an identity and ``gamma`` ``None`` (a LayerNorm stays).
    """

    def __init__(self, dim: int, mlp_ratio: float = 4., token_mixer_cfg: dict | None = None,
                 layer_scale_init_value: float = 1e-6, drop_path: float = 0., block_norm: str = 'BN') -> None:
        super().__init__()
        self.token_mixer = build_token_mixer(token_mixer_cfg, dim)
        self.norm = build_block_norm(block_norm, dim)
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim))
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.token_mixer(x)))
        if self.gamma is not None:
            y = y * self.gamma.reshape(1, -1, 1, 1)
        return x + self.drop_path(y)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold the BN (its running statistics) into ``mlp.fc1`` and the layer scale into ``mlp.fc2``; a
        LayerNorm depends on each input's statistics and stays."""
        if self.gamma is None:
            return
        fc1, fc2 = self.mlp.fc1, self.mlp.fc2
        if isinstance(self.norm, _BatchNorm):
            scale, shift = _bn_scale_shift(self.norm)
            w1 = fc1.weight.double()
            fc1.bias.copy_(fc1.bias.double() + (w1 * shift.reshape(1, -1, 1, 1)).sum((1, 2, 3)))
            fc1.weight.copy_(w1 * scale.reshape(1, -1, 1, 1))
            self.norm = nn.Identity()
        gamma = self.gamma.double()
        fc2.weight.copy_(fc2.weight.double() * gamma.reshape(-1, 1, 1, 1))
        fc2.bias.copy_(fc2.bias.double() * gamma)
        self.register_parameter('gamma', None)


def _bn_scale_shift(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` in float64 with ``bn(x) == scale * x + shift`` in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f'Cannot fold {bn}: it keeps no running statistics (track_running_stats=False)')
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    return scale, shift


class MetaNeXtStage(nn.Module):
    """An optional 2x downsample (BN then 2x2 stride-2 conv) followed by ``depth`` blocks."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, downsample: bool,
                 drop_path_rates: Sequence[float], mlp_ratio: float = 4., token_mixer_cfg: dict | None = None,
                 layer_scale_init_value: float = 1e-6, with_cp: bool = False, block_norm: str = 'BN') -> None:
        super().__init__()
        if downsample:
            self.downsample = nn.Sequential(
                nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[
            MetaNeXtBlock(out_channels, mlp_ratio, token_mixer_cfg, layer_scale_init_value, drop_path_rates[i],
                          block_norm)
            for i in range(depth)
        ])
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def check_arch_options(arch: dict) -> None:
    """Check an arch dict's ``token_mixer`` and ``block_norm`` entries (filling in the mixer's ``type``)."""
    if arch.get('token_mixer') is not None:
        arch['token_mixer'] = check_token_mixer_cfg(arch['token_mixer'])
    if arch.get('block_norm', 'BN') not in BLOCK_NORMS:
        raise ValueError(f"arch block_norm must be one of {BLOCK_NORMS}, got {arch['block_norm']!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_out_indices(out_indices: int | Sequence[int], num_outputs: int, what: str) -> tuple[int, ...]:
    """``out_indices`` as non-negative, unique, increasing integers below ``num_outputs`` (negatives count from
    the end); ``what`` names the outputs in errors (``'stages'``)."""
    if _is_int(out_indices):
        out_indices = [out_indices]
    if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence):
        raise TypeError(f'out_indices must be an int or a sequence of ints, got {out_indices!r}')
    parsed = []
    for index in out_indices:
        if not _is_int(index):
            raise TypeError(f'out_indices entries must be integers, got {index!r} in {tuple(out_indices)}')
        if not -num_outputs <= index < num_outputs:
            raise ValueError(f'out_indices entry {index} is out of range for {num_outputs} {what} '
                             f'(valid: {-num_outputs}..{num_outputs - 1})')
        parsed.append(index % num_outputs)
    if not parsed or len(set(parsed)) != len(parsed) or parsed != sorted(parsed):
        raise ValueError(f'out_indices must be non-empty, unique and increasing, got {tuple(out_indices)}')
    return tuple(parsed)


def check_frozen_stages(frozen_stages: int, num_stages: int) -> int:
    """``frozen_stages`` if it is an integer in ``[-1, num_stages]`` (a bool is refused)."""
    if not _is_int(frozen_stages):
        raise TypeError(f'frozen_stages must be an integer in [-1, {num_stages}], got {frozen_stages!r}')
    if not -1 <= frozen_stages <= num_stages:
        raise ValueError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}')
    return frozen_stages


def check_drop_path_rate(drop_path_rate: float) -> None:
    """Refuse a stochastic depth rate outside ``[0, 1)`` (1 drops every residual branch: NaN outputs)."""
    if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float)) \
            or not 0 <= drop_path_rate < 1:
        raise ValueError(f'drop_path_rate must be a number in [0, 1), got {drop_path_rate!r}')


def check_input_size(x: torch.Tensor, min_size: int, name: str) -> None:
    """Raise a ``ValueError`` stating ``min_size`` when ``x`` (NCHW) is smaller in height or width."""
    if x.dim() != 4:
        raise ValueError(f'{name} expects an (N, C, H, W) input, got shape {tuple(x.shape)}')
    height, width = x.shape[-2:]
    if not torch.jit.is_tracing() and (height < min_size or width < min_size):
        raise ValueError(f'{name} needs inputs of at least {min_size}x{min_size} pixels (the stride of its '
                         f'deepest output), got {height}x{width}')


class MetaNeXtBackbone(BaseModule):
    """What :class:`InceptionNeXt` and :class:`~.inceptionnext_isotropic.InceptionNeXtIsotropic` share.

    Subclasses set ``feature_info`` (timm-style ``num_chs`` / ``reduction`` per output), ``out_indices``,
    ``norm_eval`` and ``_freeze_stages()``; this class gives ``channels`` / ``strides``, strict Pretrained loading
    through ``init_cfg`` and ``train()`` honouring ``frozen_stages`` and ``norm_eval``.
    """

    feature_info: list[dict]
    out_indices: tuple[int, ...]
    norm_eval: bool

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each returned feature map, in ``out_indices`` order."""
        return tuple(self.feature_info[i]['num_chs'] for i in self.out_indices)

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride (relative to the input) of each returned feature map, in ``out_indices`` order."""
        return tuple(self.feature_info[i]['reduction'] for i in self.out_indices)

    def init_weights(self) -> None:
        """Load ``init_cfg`` Pretrained weights strictly, or apply the default initialisation.

        Besides mmengine's ``checkpoint`` / ``prefix`` / ``map_location``, the Pretrained dict takes ``strict``,
        ``checkpoint_key`` (the wrapper entry, e.g. ``'state_dict_ema'``, ``'model_ema'``, ``'module'``) and
        ``allow_non_finite`` (load NaN/Inf tensors instead of refusing them).

        Marks the module initialised, so the second ``init_weights()`` mmengine's Runner makes in ``train()``
        leaves the loaded weights in place.
        """
        if self._is_init:
            return
        cfg = self.init_cfg
        if isinstance(cfg, list) and any(c.get('type') == 'Pretrained' for c in cfg):
            # mmengine would load it non-strictly (a checkpoint that fits nothing would train from scratch)
            raise ValueError(f'{type(self).__name__} takes Pretrained weights as the whole init_cfg, '
                             f"init_cfg=dict(type='Pretrained', checkpoint=...), not inside a list: {cfg}")
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            load_backbone_checkpoint(self, cfg['checkpoint'], prefix=cfg.get('prefix'),
                                     strict=cfg.get('strict', True), map_location=cfg.get('map_location', 'cpu'),
                                     key=cfg.get('checkpoint_key'),
                                     allow_non_finite=cfg.get('allow_non_finite', False))
            self._is_init = True
        else:
            super().init_weights()

    def _freeze_stages(self) -> None:
        raise NotImplementedError

    def _use_fast_mixer(self, fast_mixer: bool | None) -> None:
        """An explicit ``fast_mixer`` for every Inception token mixer; ``None`` leaves the process default."""
        if fast_mixer is not None:
            for m in self.modules():
                if isinstance(m, InceptionDWConv2d):
                    m.fast_mixer = fast_mixer

    def train(self, mode: bool = True) -> MetaNeXtBackbone:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


@MODELS.register_module()
class InceptionNeXt(MetaNeXtBackbone):
    """InceptionNeXt backbone returning multi-scale features (strides 4, 8, 16, 32).

    Args:
        arch: A name in :attr:`arch_settings` or a dict with ``depths``, ``dims``, ``mlp_ratios`` and optionally
            ``token_mixer`` (``dict(type=..., **kwargs)``, type one of
            :data:`~mmext.models.backbones.token_mixers.TOKEN_MIXERS`, default ``'InceptionDWConv2d'`` with e.g.
            ``band_kernel_size``, ``branch_ratio``, ``branches``, ``bands``) and ``block_norm`` (``'BN'``, default,
            or ``'LN'``, the norm after each block's mixer). The paper's variants are in
            :data:`mmext.models.variants.PAPER_VARIANTS`.
        in_channels: Input image channels.
        out_indices: Stages whose outputs are returned, in increasing order; negative indices count from the end.
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
        init_cfg: Initialisation; ``dict(type='Pretrained', checkpoint=...)`` loads an official, timm or mmengine
            checkpoint strictly (see :func:`~mmext.models.backbones.inceptionnext_weights.load_backbone_checkpoint`).

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

    def __init__(self,
                 arch: str | dict = 'tiny',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm_cfg: dict | None = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 with_cp: bool = False,
                 fast_mixer: bool | None = None,
                 deploy: bool = False,
                 init_cfg: dict | list[dict] | None = dict(type='TruncNormal', layer='Conv2d', std=.02, bias=0.)):
        super().__init__(init_cfg=init_cfg)
        self.arch = self._parse_arch(arch)
        depths, dims = self.arch['depths'], self.arch['dims']
        self.num_stages = len(depths)
        self.out_indices = parse_out_indices(out_indices, self.num_stages, 'stages')
        self.frozen_stages = check_frozen_stages(frozen_stages, self.num_stages)
        check_drop_path_rate(drop_path_rate)
        self.norm_eval = norm_eval

        self.stem = nn.Sequential(nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4), nn.BatchNorm2d(dims[0]))
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()  # also under a meta device
        self.stages = nn.Sequential()
        self.feature_info: list[dict] = []
        prev_dim, stride, block_idx = dims[0], 4, 0
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            self.stages.append(MetaNeXtStage(
                prev_dim, dim, depth, downsample=i > 0, drop_path_rates=dpr[block_idx:block_idx + depth],
                mlp_ratio=self.arch['mlp_ratios'][i], token_mixer_cfg=self.arch.get('token_mixer'),
                layer_scale_init_value=layer_scale_init_value, with_cp=with_cp,
                block_norm=self.arch.get('block_norm', 'BN')))
            stride *= 2 if i > 0 else 1
            self.feature_info.append(dict(num_chs=dim, reduction=stride, module=f'stages.{i}'))
            prev_dim, block_idx = dim, block_idx + depth

        self.out_norms = nn.ModuleDict()
        if out_norm_cfg is not None:
            for i in self.out_indices:
                self.out_norms[str(i)] = build_norm_layer(out_norm_cfg, dims[i])[1]
        self._use_fast_mixer(fast_mixer)
        self.deploy = False
        if deploy:
            self.switch_to_deploy()
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: str | dict) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'Unknown InceptionNeXt arch {arch!r}; choose from {sorted(cls.arch_settings)} '
                                 'or pass a dict with depths, dims and mlp_ratios')
            return copy.deepcopy(cls.arch_settings[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        missing = {'depths', 'dims', 'mlp_ratios'} - set(arch)
        if missing:
            raise ValueError(f'Custom arch is missing keys {sorted(missing)}: {arch}')
        unknown = set(arch) - {'depths', 'dims', 'mlp_ratios', 'token_mixer', 'block_norm'}
        if unknown:
            raise ValueError(f'Custom arch has unknown keys {sorted(unknown)}: {arch}')
        if not len(arch['depths']) == len(arch['dims']) == len(arch['mlp_ratios']):
            raise ValueError(f'depths, dims and mlp_ratios must have one entry per stage: {arch}')
        arch = copy.deepcopy(dict(arch))
        check_arch_options(arch)
        return arch

    @property
    def min_input_size(self) -> int:
        """Smallest input height and width the network takes: the stride of the deepest stage it runs."""
        return self.feature_info[self.out_indices[-1]]['reduction']

    @torch.no_grad()
    def switch_to_deploy(self) -> InceptionNeXt:
        """Fold BatchNorms into convs for inference; the eval-mode outputs stay the same.

        Uses each BN's running statistics: the stem BN folds into the stem conv before it, each downsample BN
        into the 2x2 stride-2 conv after it (no padding, so exactly), each block's BN into ``mlp.fc1`` and its
        ``gamma`` into ``mlp.fc2``. Folded BNs become ``nn.Identity`` and ``gamma`` ``None``, so the state dict
        keeps the training form's names minus the removed keys. ``out_norms`` stay as they are. Idempotent.
        """
        if self.deploy:
            return self
        conv, bn = self.stem[0], self.stem[1]
        scale, shift = _bn_scale_shift(bn)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        conv.weight.copy_(conv.weight.double() * scale.reshape(-1, 1, 1, 1))
        self._set_bias(conv, bias * scale + shift)
        self.stem[1] = nn.Identity()
        for stage in self.stages:
            if isinstance(stage.downsample, nn.Sequential):
                bn, conv = stage.downsample[0], stage.downsample[1]
                scale, shift = _bn_scale_shift(bn)
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

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.stem]
        for i in range(self.frozen_stages):
            modules.append(self.stages[i])
            if str(i) in self.out_norms:
                modules.append(self.out_norms[str(i)])
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_input_size(x, self.min_input_size, type(self).__name__)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                norm = self.out_norms[str(i)] if str(i) in self.out_norms else None
                outs.append(norm(x) if norm is not None else x)
            if i == self.out_indices[-1]:
                break
        return tuple(outs)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """Layer id of a parameter for stage-wise learning-rate decay.

        The stem is layer 0, stage ``i`` (its downsample, blocks and output norm) layer ``i + 1``, and every
        parameter outside the backbone (no ``prefix``) the last layer ``num_stages + 1``.

        Returns:
            ``(layer_id, num_layers)`` with ``num_layers = num_stages + 2``.
        """
        num_layers = self.num_stages + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        if name.startswith('stem.'):
            return 0, num_layers
        if name.startswith(('stages.', 'out_norms.')):
            return int(name.split('.')[1]) + 1, num_layers
        return num_layers - 1, num_layers

    def describe_state_dict_mismatch(self, state_dict: Mapping[str, torch.Tensor]) -> str | None:
        """Which arch ``state_dict`` (this backbone's part of a checkpoint) looks like, when not this one's; used by
        :func:`mmext.checkpoint.check_model_state_dict` to head its message."""
        inferred = infer_arch(state_dict)
        if inferred is None:
            return None
        mine, theirs = describe_arch(self.arch, self.arch_settings), describe_arch(inferred, self.arch_settings)
        return f'the checkpoint looks like {theirs} but the config builds {mine}' if theirs != mine else None
