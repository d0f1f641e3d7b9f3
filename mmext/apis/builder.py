"""Build the model an OpenMMLab config describes, ready for inference, analysis or timing: written once.

Every caller outside a training Runner (:func:`mmext.apis.init_segmentor`, the ONNX export, the complexity count,
the benchmark) builds through :func:`build_segmentor`, which

* never downloads or reads weights: every ``Pretrained`` init and ``model.pretrained`` is dropped (the caller loads
  a checkpoint afterwards, or keeps the random weights that speed and complexity do not depend on);
* reverts SyncBN to BatchNorm, so the model runs on CPU and in one process (mmseg's ``init_model`` does not);
* builds under the config's ``default_scope`` (``mmseg``, or ``mmdet`` for a detector config).
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from mmext.registry import MODELS

# The parts of a model config that may carry an ``init_cfg`` (mmseg segmentors, mmdet detectors).
_MODEL_PARTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head', 'rpn_head', 'roi_head', 'bbox_head')


def load_model_config(config: str | Path | Config, cfg_options: dict | None = None) -> Config:
    """A config file read, or a :class:`Config` copied (the caller's stays as it was), with ``cfg_options`` merged
    (dotted keys, as ``--cfg-options`` gives them)."""
    if isinstance(config, (str, Path)):
        if not Path(config).is_file():
            raise FileNotFoundError(f'config not found: {config}')
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a file path or an mmengine Config, got {type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def drop_pretrained(cfg: Config, log: bool = True) -> list[str]:
    """Remove every ``Pretrained`` init and ``model.pretrained`` from ``cfg.model``, in place.

    Returns one line per weight source dropped (``model.backbone: init_cfg Pretrained 'x.pth'``); with ``log``
    they are logged as "not loaded".
    """
    dropped = []
    for name in _MODEL_PARTS:
        part = cfg.model.get(name)
        init_cfg = part.get('init_cfg') if isinstance(part, dict) else None
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            dropped.append(f'model.{name}: init_cfg Pretrained {init_cfg.get("checkpoint")!r}')
            part.init_cfg = None
    if cfg.model.get('pretrained'):
        dropped.append(f'model.pretrained={cfg.model.pretrained!r}')
    if 'pretrained' in cfg.model:  # mmdet's detectors take no such argument: never add the key
        cfg.model.pretrained = None
    if log and dropped:
        print_log('No checkpoint given: the model keeps random weights; not loaded: ' + '; '.join(dropped),
                  logger='current')
    return dropped


def build_segmentor(config: str | Path | Config, cfg_options: dict | None = None,
                    log_dropped: bool = True) -> nn.Module:
    """The model of ``config`` on the CPU in eval mode, SyncBN reverted, without any pretrained weights.

    Args:
        config: A config file or a :class:`Config` (not modified).
        cfg_options: Overrides merged into the config first.
        log_dropped: Log the pretrained weights that were not loaded (say ``False`` when a checkpoint follows or
            the weights do not matter).

    Returns:
        The model (an mmseg segmentor, or whatever ``cfg.model`` builds under its ``default_scope``), with ``cfg``
        set to the config it was built from.
    """
    cfg = load_model_config(config, cfg_options)
    drop_pretrained(cfg, log=log_dropped)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.cfg = cfg
    return model.eval()
