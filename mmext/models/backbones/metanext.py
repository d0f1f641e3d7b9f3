"""MetaNeXt: the block and backbone skeleton that InceptionNeXt and its isotropic form share.

A MetaNeXt block is ``x + drop_path(gamma * mlp(norm(token_mixer(x))))`` (InceptionNeXt, Yu et al., CVPR 2024,
arXiv 2303.16900). :class:`MetaNeXtBackbone` owns what every MetaNeXt backbone does the same way: parsing ``arch``,
the stem, OpenMMLab's options (``out_indices``, ``frozen_stages``, ``norm_eval``, ``norm_cfg`` / ``act_cfg``,
``out_norm_cfg``, ``with_cp``, ``init_cfg`` / ``pretrained``), the per-output norms, ``get_layer_depth`` for
layer-wise learning-rate decay and ``device`` / ``dtype``. A subclass states its arch table, builds its body in
:meth:`~MetaNeXtBackbone._build_body` and runs it in :meth:`~MetaNeXtBackbone._forward_body`.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule

from mmext.compat.upstream import batch_norm_base
from mmext.registry import MODELS

from .inceptionnext_weights import load_backbone_checkpoint, pretrained_init_cfg
from .token_mixers import InceptionDWConv2d, build_token_mixer, check_token_mixer_cfg

_BatchNorm = batch_norm_base()
# timm's initialisation of MetaNeXt: truncated normal (std 0.02) conv and linear weights, zero biases.
DEFAULT_INIT_CFG = dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02, bias=0.)
# What the deprecated ``arch['block_norm']`` strings mean in ``block_norm_cfg``.
_BLOCK_NORM_STRINGS = {'BN': dict(type='BN'), 'LN': dict(type='LN2d', eps=1e-6)}


@MODELS.register_module('LN2d')
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an ``(N, C, H, W)`` tensor (channels-first), ConvNeXt's block norm.

    Registered as ``'LN2d'`` for ``norm_cfg``: ``dict(type='LN2d', eps=1e-6)`` (mmcv's ``build_norm_layer`` sets
    ``eps=1e-5`` unless the dict gives one).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(num_channels, eps=eps, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class ConvMlp(nn.Module):
    """Pointwise MLP: 1x1 conv, activation (GELU by default), 1x1 conv, both convs with bias."""

    def __init__(self, in_channels: int, hidden_channels: int, act_cfg: dict = dict(type='GELU')) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_channels, hidden_channels, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_channels, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MetaNeXtBlock(nn.Module):
    """``x + drop_path(gamma * mlp(norm(token_mixer(x))))``: one residual per block.

    ``token_mixer_cfg`` is ``dict(type=..., **kwargs)`` from :data:`mmext.registry.TOKEN_MIXERS` (the type defaults
    to :class:`InceptionDWConv2d`); ``norm_cfg`` / ``act_cfg`` are mmcv configs for the norm after the mixer and
    the MLP's activation. :meth:`switch_to_deploy` folds a BatchNorm ``norm`` into ``mlp.fc1`` and ``gamma`` into
    ``mlp.fc2``, leaving ``x + drop_path(mlp(token_mixer(x)))`` with ``norm`` an identity and ``gamma`` ``None``
    (another norm, e.g. a LayerNorm, stays).
    """

    def __init__(self, dim: int, mlp_ratio: float = 4., token_mixer_cfg: dict | None = None,
                 layer_scale_init_value: float = 1e-6, drop_path: float = 0., norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='GELU')) -> None:
        super().__init__()
        self.token_mixer = build_token_mixer(token_mixer_cfg, dim)
        self.norm = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim), act_cfg)
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
            scale, shift = bn_scale_shift(self.norm)
            w1 = fc1.weight.double()
            fc1.bias.copy_(fc1.bias.double() + (w1 * shift.reshape(1, -1, 1, 1)).sum((1, 2, 3)))
            fc1.weight.copy_(w1 * scale.reshape(1, -1, 1, 1))
            self.norm = nn.Identity()
        gamma = self.gamma.double()
        fc2.weight.copy_(fc2.weight.double() * gamma.reshape(-1, 1, 1, 1))
        fc2.bias.copy_(fc2.bias.double() * gamma)
        self.register_parameter('gamma', None)


def bn_scale_shift(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
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


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, with_cp: bool) -> torch.Tensor:
    """``blocks(x)``, with gradient checkpointing per block when ``with_cp`` and gradients are needed."""
    for block in blocks:
        x = cp.checkpoint(block, x, use_reentrant=False) if with_cp and x.requires_grad else block(x)
    return x


def dilate_convs(module: nn.Module, dilation: int) -> None:
    """Dilate every odd-kernel ``nn.Conv2d`` under ``module`` by ``dilation`` (padding grows to keep the size).

    How MetaNeXt blocks (any registered token mixer made of same-padded convs) run at a reduced output stride;
    the weights stay as they are. A ``1 x k`` kernel is dilated along its ``k`` side only.
    """
    if dilation == 1:
        return
    for m in module.modules():
        if not isinstance(m, nn.Conv2d) or all(k == 1 for k in m.kernel_size):
            continue
        if any(k % 2 == 0 for k in m.kernel_size) or m.padding != tuple(k // 2 for k in m.kernel_size) \
                or m.dilation != (1, 1):
            raise ValueError(f'cannot dilate {m}: only odd kernels with same padding (k // 2) and no dilation are '
                             'dilated for output_stride < 32')
        m.dilation = tuple(dilation if k > 1 else 1 for k in m.kernel_size)
        m.padding = tuple(d * (k // 2) for d, k in zip(m.dilation, m.kernel_size))


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


def drop_path_rates(drop_path_rate: float, num_blocks: int) -> list[float]:
    """Stochastic depth rates rising linearly from 0 to ``drop_path_rate`` (in ``[0, 1)``; 1 drops every residual
    branch: NaN outputs) over ``num_blocks`` blocks."""
    if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float)) \
            or not 0 <= drop_path_rate < 1:
        raise ValueError(f'drop_path_rate must be a number in [0, 1), got {drop_path_rate!r}')
    return torch.linspace(0, drop_path_rate, num_blocks, device='cpu').tolist()  # also under a meta device


def check_input_size(x: torch.Tensor, min_size: int, name: str) -> None:
    """Raise a ``ValueError`` stating ``min_size`` when ``x`` (NCHW) is smaller in height or width."""
    if x.dim() != 4:
        raise ValueError(f'{name} expects an (N, C, H, W) input, got shape {tuple(x.shape)}')
    height, width = x.shape[-2:]
    if not torch.jit.is_tracing() and (height < min_size or width < min_size):
        raise ValueError(f'{name} needs inputs of at least {min_size}x{min_size} pixels (the stride of its '
                         f'deepest output), got {height}x{width}')


def warn_renamed(owner: str, old: str, new: str) -> None:
    """One FutureWarning for an old spelling that is still accepted."""
    warnings.warn(f'{owner}: {old} is deprecated; write {new}', FutureWarning, stacklevel=4)


class MetaNeXtBackbone(BaseModule):
    """The skeleton of a MetaNeXt backbone: ``stem -> body -> per-output norms``.

    A subclass sets :attr:`arch_settings`, :attr:`arch_keys` (required keys of a custom arch dict),
    :attr:`layers_name` (the attribute holding the units that ``frozen_stages`` and :meth:`get_layer_depth`
    count: stages or blocks) and :attr:`layer_decay_type`, and implements :meth:`_build_body`,
    :meth:`_forward_body` and :meth:`_stem_shape`. The stem is ``Conv2d(k=s=patch)`` then a norm; ``feature_info``
    (timm-style ``num_chs`` / ``reduction`` / ``module`` per output) is filled by :meth:`_build_body`.

    A subclass's ``__init__`` takes its own arguments and passes the rest on; those it adds to the body (e.g.
    ``output_stride``) go to :meth:`_build_body` through ``body_args``.

    Args (shared by the subclasses; see :class:`~.inceptionnext.InceptionNeXt` for the full list):
        norm_cfg: Norm of the stem and every other norm of the network (the blocks' too unless
            ``block_norm_cfg``); ``dict(type='SyncBN')`` for multi-GPU dense prediction.
        block_norm_cfg: The blocks' norm when it differs from ``norm_cfg`` (paper Table 8 "BN -> LN":
            ``dict(type='LN2d', eps=1e-6)``).
        act_cfg: Activation of the blocks' MLPs (GELU).
        out_norm_cfg: If given, a new norm (``out_norms.<i>``) on each returned output; ``None`` returns them raw.
        pretrained: mmseg's ``model.pretrained`` (EncoderDecoder passes it to the backbone): InceptionNeXt weights
            load like ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``; another network's weights stop
            the build (see :func:`~.inceptionnext_weights.pretrained_init_cfg`).
        device, dtype: Where and in which floating type the parameters are created (``device='meta'`` builds a
            full-size network without memory, e.g. to count parameters).
    """

    arch_settings: dict[str, dict] = {}
    arch_keys: tuple[str, ...] = ()
    arch_options: tuple[str, ...] = ('token_mixer',)
    layers_name: str = 'stages'
    layer_decay_type: str = 'stage_wise'
    new_module_prefixes: tuple[str, ...] = ('out_norms.',)  # modules the released checkpoints lack
    feature_info: list[dict]

    def __init__(self,
                 arch: str | dict,
                 in_channels: int = 3,
                 out_indices: int | Sequence[int] = (0, 1, 2, 3),
                 norm_cfg: dict = dict(type='BN'),
                 block_norm_cfg: dict | None = None,
                 act_cfg: dict = dict(type='GELU'),
                 out_norm_cfg: dict | None = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 1e-6,
                 with_cp: bool = False,
                 fast_mixer: bool | None = None,
                 pretrained: str | None = None,
                 init_cfg: dict | list[dict] | None = DEFAULT_INIT_CFG,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None,
                 body_args: dict | None = None) -> None:
        owner = type(self).__name__
        super().__init__(init_cfg=pretrained_init_cfg(pretrained, init_cfg, DEFAULT_INIT_CFG, owner))
        self.arch = self._parse_arch(arch)
        old_block_norm = self.arch.pop('block_norm', None)
        if old_block_norm is not None:
            if block_norm_cfg is not None:
                raise ValueError(f"{owner}: arch['block_norm'] and block_norm_cfg both set; keep block_norm_cfg")
            block_norm_cfg = _BLOCK_NORM_STRINGS[old_block_norm]
            warn_renamed(owner, f"arch['block_norm']={old_block_norm!r}", f'block_norm_cfg={block_norm_cfg}')
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        block_cfg = dict(token_mixer_cfg=self.arch.get('token_mixer'), layer_scale_init_value=layer_scale_init_value,
                         norm_cfg=block_norm_cfg or norm_cfg, act_cfg=act_cfg)
        stem_dim, patch_size = self._stem_shape()
        factory = torch.device(device) if device is not None else contextlib.nullcontext()
        with factory:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_dim, kernel_size=patch_size, stride=patch_size),
                                      build_norm_layer(norm_cfg, stem_dim)[1])
            self._build_body(out_indices=out_indices, norm_cfg=norm_cfg, block_cfg=block_cfg,
                             drop_path_rate=drop_path_rate, **(body_args or {}))
            self.frozen_stages = check_frozen_stages(frozen_stages, len(self.layers))
            self.out_norms = nn.ModuleDict()
            if out_norm_cfg is not None:
                for i in self.out_indices:
                    self.out_norms[str(i)] = build_norm_layer(out_norm_cfg, self.feature_info[i]['num_chs'])[1]
        if dtype is not None:
            self.to(dtype=dtype)
        if fast_mixer is not None:  # None leaves each mixer on the process default
            for m in self.modules():
                if isinstance(m, InceptionDWConv2d):
                    m.fast_mixer = fast_mixer
        self._freeze_stages()

    # -- what a subclass states ------------------------------------------------------------------------------------
    @classmethod
    def _check_arch(cls, arch: dict) -> None:
        """Check a custom arch dict beyond its keys (e.g. one entry per stage)."""

    def _stem_shape(self) -> tuple[int, int]:
        """``(channels, patch size)`` of the stem."""
        raise NotImplementedError

    def _build_body(self, *, out_indices: int | Sequence[int], norm_cfg: dict, block_cfg: dict,
                    drop_path_rate: float, **body_args) -> None:
        """Build the modules after the stem and set ``out_indices`` and ``feature_info``."""
        raise NotImplementedError

    def _forward_body(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs named by ``out_indices``, from the stem's output."""
        raise NotImplementedError

    def _output_layer(self, index: int) -> int:
        """Index of the layer (unit of :attr:`layers`) that output ``index`` comes from; ``len(layers)`` for an output
        built after all of them. Its output norm is frozen and decayed with that layer."""
        return len(self.layers)

    # -- the shared skeleton ---------------------------------------------------------------------------------------
    @classmethod
    def _parse_arch(cls, arch: str | Mapping) -> dict:
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'Unknown {cls.__name__} arch {arch!r}; choose from {sorted(cls.arch_settings)} '
                                 f'or pass a dict with {", ".join(cls.arch_keys)}')
            return copy.deepcopy(cls.arch_settings[arch])
        if not isinstance(arch, Mapping):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        missing = set(cls.arch_keys) - set(arch)
        if missing:
            raise ValueError(f'Custom arch is missing keys {sorted(missing)}: {arch}')
        unknown = set(arch) - set(cls.arch_keys) - set(cls.arch_options) - {'block_norm'}
        if unknown:
            raise ValueError(f'Custom arch has unknown keys {sorted(unknown)}: {arch}')
        arch = copy.deepcopy(dict(arch))
        if arch.get('block_norm', 'BN') not in _BLOCK_NORM_STRINGS:
            raise ValueError(f"arch block_norm must be one of {tuple(_BLOCK_NORM_STRINGS)}, got {arch['block_norm']!r}"
                             " (deprecated: use block_norm_cfg)")
        if arch.get('token_mixer') is not None:
            arch['token_mixer'] = check_token_mixer_cfg(arch['token_mixer'])
        cls._check_arch(arch)
        return arch

    @property
    def layers(self) -> nn.Sequential:
        """The units ``frozen_stages`` and :meth:`get_layer_depth` count (stages, or blocks of an isotropic net)."""
        return getattr(self, self.layers_name)

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of each returned feature map, in ``out_indices`` order."""
        return tuple(self.feature_info[i]['num_chs'] for i in self.out_indices)

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride (relative to the input) of each returned feature map, in ``out_indices`` order."""
        return tuple(self.feature_info[i]['reduction'] for i in self.out_indices)

    @property
    def min_input_size(self) -> int:
        """Smallest input height and width: the largest of the stem's patch and the deepest returned stride."""
        return max(self._stem_shape()[1], self.strides[-1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_input_size(x, self.min_input_size, type(self).__name__)
        outs = self._forward_body(self.stem(x))
        return tuple(self.out_norms[str(i)](out) if str(i) in self.out_norms else out
                     for i, out in zip(self.out_indices, outs))

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
        """Freeze the stem, the first ``frozen_stages`` layers and their output norms (no gradient, eval mode)."""
        if self.frozen_stages < 0:
            return
        modules = [self.stem, *self.layers[:self.frozen_stages]]
        modules += [norm for i, norm in self.out_norms.items() if self._output_layer(int(i)) < self.frozen_stages]
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> MetaNeXtBackbone:
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> tuple[int, int]:
        """Layer id of a parameter for layer-wise learning-rate decay (``layer_decay_type`` says what a layer is).

        The stem is layer 0, unit ``i`` of :attr:`layers` (a stage with its output norm, or an isotropic block)
        layer ``i + 1``, and everything else (an isotropic pyramid, parameters outside the backbone, i.e. without
        ``prefix``) the last layer ``len(layers) + 1``.

        Returns:
            ``(layer_id, num_layers)`` with ``num_layers = len(layers) + 2``.
        """
        num_layers = len(self.layers) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        if name.startswith('stem.'):
            return 0, num_layers
        if name.startswith(self.layers_name + '.'):
            return int(name.split('.')[1]) + 1, num_layers
        if name.startswith('out_norms.'):
            return self._output_layer(int(name.split('.')[1])) + 1, num_layers
        return num_layers - 1, num_layers
