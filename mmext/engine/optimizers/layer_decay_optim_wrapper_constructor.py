"""Layer-wise learning-rate decay for segmentors and detectors whose backbone reports its layer depths.

mmseg's ``LearningRateDecayOptimizerConstructor`` only accepts backbones whose class name contains "ConvNeXt" and
parses ConvNeXt's parameter names. This constructor asks the backbone instead: any backbone with
``get_layer_depth(param_name, prefix)`` (InceptionNeXt, its isotropic form, mmpretrain's ConvNeXt, ...) works.
"""
from __future__ import annotations

import json
import warnings

import torch.nn as nn
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmext.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Scale each parameter's learning rate by ``decay_rate ** (num_layers - 1 - layer_id)``.

    ``layer_id`` and ``num_layers`` come from ``model.backbone.get_layer_depth(name, prefix='backbone.')``; the
    backbone's ``layer_decay_type`` says what one layer is. InceptionNeXt is ``'stage_wise'``: the stem is layer 0,
    stage ``i`` layer ``i + 1`` and everything outside the backbone (neck, heads) the last layer,
    ``num_stages + 1``, which keeps the base learning rate. InceptionNeXtIsotropic is ``'layer_wise'``: one layer
    per block (ViT / BEiT style).

    One-dimensional parameters (norm weights and biases, conv biases, the layer scale ``gamma``) get weight decay
    ``weight_decay * flat_decay_mult``, no weight decay by default, as mmseg's ConvNeXt constructor does.

    ``paramwise_cfg`` keys:
        decay_rate (float): Learning-rate factor per layer, in ``(0, 1]``. Required.
        decay_type (str): ``'stage_wise'`` or ``'layer_wise'``; it must be the backbone's ``layer_decay_type``
            (checked when the optimizer is built). Defaults to the backbone's.
        flat_decay_mult (float): Weight-decay multiplier of 1-D parameters. Defaults to ``0.``.

    Each parameter group carries ``lr_scale``, ``group_name`` and ``param_names`` for inspection.
    """

    decay_types = ('stage_wise', 'layer_wise')
    allowed_keys = ('decay_rate', 'decay_type', 'flat_decay_mult')

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(paramwise_cfg) - set(self.allowed_keys))
        if unknown:
            raise ValueError(f'{type(self).__name__}: paramwise_cfg keys {unknown} are not supported '
                             f'(allowed: {list(self.allowed_keys)}); got paramwise_cfg={paramwise_cfg}')
        if 'decay_rate' not in paramwise_cfg:
            raise ValueError(f'{type(self).__name__}: paramwise_cfg needs decay_rate (e.g. 0.9), '
                             f'got paramwise_cfg={paramwise_cfg}')
        decay_rate = paramwise_cfg['decay_rate']
        if not isinstance(decay_rate, (int, float)) or not 0 < decay_rate <= 1:
            raise ValueError(f'{type(self).__name__}: paramwise_cfg.decay_rate must be in (0, 1], got {decay_rate!r}')
        decay_type = paramwise_cfg.get('decay_type')
        if decay_type is not None and decay_type not in self.decay_types:
            raise ValueError(f'{type(self).__name__}: paramwise_cfg.decay_type={decay_type!r} is not supported; '
                             f'choose from {list(self.decay_types)} (the depth the backbone reports)')
        paramwise_cfg.setdefault('flat_decay_mult', 0.)
        # The base class validates its own keys only; ours are handled in add_params.
        super().__init__(optim_wrapper_cfg, paramwise_cfg=None)
        self.paramwise_cfg = paramwise_cfg

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        """Append one parameter group per (layer, decay / no decay) of ``module`` (already unwrapped from DDP)."""
        backbone = getattr(module, 'backbone', None)
        backbone = getattr(backbone, 'module', backbone)  # a backbone wrapped on its own
        if backbone is None or not callable(getattr(backbone, 'get_layer_depth', None)):
            found = 'no backbone' if backbone is None else f'backbone {type(backbone).__name__}'
            raise TypeError(f'{type(self).__name__} needs model.backbone.get_layer_depth(name, prefix); '
                            f'{type(module).__name__} has {found} without it. Use a backbone that reports layer '
                            'depths (e.g. InceptionNeXt) or the default constructor.')
        reported = getattr(backbone, 'layer_decay_type', None)
        decay_type = self.paramwise_cfg.get('decay_type')
        if decay_type is not None and reported is not None and decay_type != reported:
            raise ValueError(f"{type(self).__name__}: paramwise_cfg.decay_type={decay_type!r}, but "
                             f"{type(backbone).__name__}.get_layer_depth reports {reported!r} depths; set "
                             f"decay_type={reported!r} or leave it out")
        decay_rate = self.paramwise_cfg['decay_rate']
        flat_decay = self.base_wd * self.paramwise_cfg['flat_decay_mult'] if self.base_wd is not None else None

        groups: dict[str, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue  # frozen stages
            layer_id, num_layers = backbone.get_layer_depth(name.replace('backbone.module.', 'backbone.'),
                                                            prefix='backbone.')
            flat = param.ndim <= 1
            group_name = f'layer_{layer_id}_{"no_decay" if flat else "decay"}'
            if group_name not in groups:
                scale = decay_rate ** (num_layers - 1 - layer_id)
                groups[group_name] = dict(params=[], param_names=[], group_name=group_name, lr_scale=scale,
                                          lr=self.base_lr * scale)
                if self.base_wd is not None:
                    groups[group_name]['weight_decay'] = flat_decay if flat else self.base_wd
            groups[group_name]['params'].append(param)
            groups[group_name]['param_names'].append(name)

        rank, _ = get_dist_info()
        if rank == 0:
            summary = {name: dict(lr_scale=g['lr_scale'], weight_decay=g.get('weight_decay'),
                                  num_params=len(g['params'])) for name, g in sorted(groups.items())}
            print_log(f'{type(self).__name__} ({self.paramwise_cfg}): {json.dumps(summary, indent=1)}',
                      logger='current')
        params.extend(groups.values())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class InceptionNeXtLayerDecayOptimizerConstructor(LayerDecayOptimWrapperConstructor):
    """Deprecated name of :class:`LayerDecayOptimWrapperConstructor` (it was never specific to InceptionNeXt)."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        warnings.warn("constructor='InceptionNeXtLayerDecayOptimizerConstructor' is deprecated; write "
                      "constructor='LayerDecayOptimWrapperConstructor'", FutureWarning, stacklevel=2)
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
