"""Reading InceptionNeXt weights: finding the backbone in any checkpoint, telling its arch from the tensor shapes,
and loading it strictly with one report. Writing converted weights is :mod:`.inceptionnext_convert`."""
from __future__ import annotations

import inspect
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmext.checkpoint import (
    HF_HUB_PREFIX,
    TRUSTED_PREFIX,
    CheckpointError,
    LoadReport,
    check_finite_state_dict,
    diff_state_dict,
    read_checkpoint,
    unwrap_state_dict,
)
from mmext.checkpoint.report import group_counts

from .token_mixers import InceptionDWConv2d

_HEAD_PREFIX = 'head.'
_NEW_MODULE_PREFIXES = ('out_norms.',)  # modules the released checkpoints lack; loaded when present
_BN_COUNTER = 'num_batches_tracked'


@dataclass
class BackboneStateDict:
    """A backbone's tensors, under the backbone's own names, and what was set aside to get them."""

    state_dict: dict[str, torch.Tensor]
    source_format: str
    prefix: str = ''
    head_keys: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)


_ANCHOR = re.compile(r'^(.*?)(?:stem\.0\.weight$|stages\.\d+\.(?:blocks|downsample)\.)')


def extract_backbone_state_dict(checkpoint: Any, prefix: str | None = None, source: str = '<checkpoint>',
                                key: str | None = None) -> BackboneStateDict:
    """Find the InceptionNeXt backbone's tensors in a loaded checkpoint.

    Unwraps ``{'state_dict': ...}`` (mmengine) and ``{'model': ...}``, strips DDP's ``module.``, selects the keys
    under ``prefix`` (auto-detected when ``None``: the one prefix in front of ``stem.0.weight`` /
    ``stages.N.blocks``, e.g. ``'backbone.'`` in a segmentor checkpoint whose ``decode_head.*`` keys are then set
    aside), and drops the classification ``head.*``. ``prefix=''`` means the keys are already the backbone's.
    ``key`` picks the wrapper entry, e.g. ``'state_dict_ema'`` (see :func:`mmext.checkpoint.unwrap_state_dict`).
    """
    tensors, source_format = unwrap_state_dict(checkpoint, source, key)
    if prefix is None:
        prefix = _detect_prefix(tensors, source)
    elif prefix and not prefix.endswith('.'):
        prefix += '.'
    selected = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not selected:
        raise CheckpointError(f"no key of {source} starts with prefix {prefix!r}; its key groups are "
                              f'{group_counts(tensors)}')
    ignored = sorted(k for k in tensors if not k.startswith(prefix))
    head = sorted(k for k in selected if k.startswith(_HEAD_PREFIX))
    state_dict = {k: v for k, v in selected.items() if not k.startswith(_HEAD_PREFIX)}
    if not state_dict:
        raise CheckpointError(f'{source} holds only classification-head tensors under prefix {prefix!r}')
    return BackboneStateDict(state_dict, source_format, prefix, head, ignored)


def _detect_prefix(tensors: Mapping[str, torch.Tensor], source: str) -> str:
    counts: Counter[str] = Counter()
    for key in tensors:
        match = _ANCHOR.match(key)
        if match and (match.group(1) == '' or match.group(1).endswith('.')):
            counts[match.group(1)] += 1
    if len(counts) == 1:
        return next(iter(counts))
    if not counts:
        raise CheckpointError(f'{source} does not look like an InceptionNeXt checkpoint: no key ends in '
                              f'stem.0.weight or contains stages.N.blocks; its key groups are '
                              f'{group_counts(tensors)}. Pass prefix=... if the backbone is stored under other names')
    raise CheckpointError(f'{source} holds several InceptionNeXt-like key sets under prefixes '
                          f'{dict(counts.most_common())}; pass prefix=... to choose one')


def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """The ``arch`` dict (depths, dims, mlp_ratios, token_mixer) a backbone state dict was built with, read from
    its shapes; ``None`` if the keys are too incomplete to tell."""
    try:
        stage_ids = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r'stages\.(\d+)\.blocks\.', k))})
        if not stage_ids or stage_ids != list(range(len(stage_ids))):
            return None
        depths, dims, ratios = [], [], []
        for s in stage_ids:
            blocks = {int(m.group(1)) for k in state_dict if (m := re.match(rf'stages\.{s}\.blocks\.(\d+)\.', k))}
            depths.append(max(blocks) + 1)
            dim = state_dict[f'stages.{s}.blocks.0.mlp.fc2.weight'].shape[0]
            hidden = state_dict[f'stages.{s}.blocks.0.mlp.fc1.weight'].shape[0]
            dims.append(int(dim))
            ratios.append(hidden // dim if hidden % dim == 0 else hidden / dim)
        hw = state_dict['stages.0.blocks.0.token_mixer.dwconv_hw.weight'].shape
        band = state_dict['stages.0.blocks.0.token_mixer.dwconv_w.weight'].shape[-1]
    except KeyError:
        return None
    token_mixer = dict(square_kernel_size=int(hw[-1]), band_kernel_size=int(band), branch_ratio=hw[0] / dims[0])
    return dict(depths=tuple(depths), dims=tuple(dims), mlp_ratios=tuple(ratios), token_mixer=token_mixer)


def _token_mixer_defaults() -> dict:
    params = inspect.signature(InceptionDWConv2d.__init__).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def _signature(arch: Mapping) -> tuple:
    tm = {**_token_mixer_defaults(), **(arch.get('token_mixer') or {})}
    dims = tuple(arch['dims'])
    return (tuple(arch['depths']), dims, tuple(int(r * d) for r, d in zip(arch['mlp_ratios'], dims)),
            tm['square_kernel_size'], tm['band_kernel_size'], tuple(int(d * tm['branch_ratio']) for d in dims),
            tm.get('type', 'InceptionDWConv2d'), tuple(tm['branches']), tm['bands'])


def arch_name(arch: Mapping, arch_settings: Mapping[str, Mapping]) -> str | None:
    """The name in ``arch_settings`` (``InceptionNeXt.arch_settings``) whose weights have the shapes of ``arch``."""
    sig = _signature(arch)
    return next((name for name, ref in arch_settings.items() if _signature(ref) == sig), None)


def describe_arch(arch: Mapping, arch_settings: Mapping[str, Mapping]) -> str:
    """E.g. ``'InceptionNeXt-tiny (depths 3-3-9-3, dims 96..768)'``; ``arch_settings`` names the known arches."""
    name = arch_name(arch, arch_settings)
    shape = f"depths {'-'.join(map(str, arch['depths']))}, dims {arch['dims'][0]}..{arch['dims'][-1]}"
    return f'InceptionNeXt-{name} ({shape})' if name else f'a custom InceptionNeXt ({shape})'


def match_backbone_state_dict(module: nn.Module, backbone: BackboneStateDict, filename: str = '<checkpoint>',
                              ) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    """Compare a backbone state dict with ``module``; returns the report and the tensors that fit."""
    ckpt = backbone.state_dict
    settings = getattr(module, 'arch_settings', {})
    model_arch = getattr(module, 'arch', None)
    inferred = infer_arch(ckpt)
    diff = diff_state_dict(module.state_dict(), ckpt)
    report = LoadReport(
        filename=filename, source_format=backbone.source_format, title='InceptionNeXt weights',
        prefix=backbone.prefix, checkpoint_arch=describe_arch(inferred, settings) if inferred else None,
        model_arch=(describe_arch(model_arch, settings) if isinstance(model_arch, Mapping) and 'dims' in model_arch
                    else type(module).__name__),
        head_keys=list(backbone.head_keys), ignored_keys=list(backbone.ignored_keys),
        unexpected=diff.unexpected, mismatched=diff.mismatched,
        new_note='the released weights have no per-output norms')
    new_prefixes = _NEW_MODULE_PREFIXES + tuple(getattr(module, 'new_module_prefixes', ()))
    for key in diff.missing:
        if key.startswith(new_prefixes):
            report.new_keys.append(key)
        elif key.rsplit('.', 1)[-1] == _BN_COUNTER:
            report.bn_counters.append(key)
        else:
            report.missing.append(key)
    skipped = {k for k, _, _ in diff.mismatched}
    report.loaded = [k for k in module.state_dict() if k in ckpt and k not in skipped]
    return report, {k: ckpt[k] for k in report.loaded}


def load_backbone_state_dict(module: nn.Module, backbone: BackboneStateDict, filename: str = '<checkpoint>',
                             strict: bool = True, logger: str | logging.Logger = 'current') -> LoadReport:
    """Load a :class:`BackboneStateDict` into ``module`` and log one summary.

    With ``strict=True`` any missing backbone tensor (other than new ``out_norms.*`` modules and BatchNorm
    counters), unexpected tensor or shape mismatch raises :class:`CheckpointError` before anything is loaded.
    ``strict=False`` loads the tensors that fit and logs the rest as a warning; loading nothing always raises.
    """
    report, fitting = match_backbone_state_dict(module, backbone, filename)
    if not fitting or (strict and not report.ok):
        lines = report.problems() or ['no tensor of the checkpoint fits the model']
        hint = ('Build the model with the checkpoint\'s arch or pick the matching file; pass strict=False only to '
                'load the fitting tensors on purpose.' if fitting else 'Check the file, arch and prefix.')
        raise CheckpointError(f'Checkpoint {filename} does not fit {report.model_arch}:\n  ' + '\n  '.join(lines)
                              + f'\n{hint}')
    result = module.load_state_dict(fitting, strict=False)
    if result.unexpected_keys:  # cannot happen: every key came from module.state_dict()
        raise CheckpointError(f'internal error loading {filename}: {result.unexpected_keys}')
    print_log(report.summary(), logger=logger, level=logging.INFO if report.ok else logging.WARNING)
    return report


def load_backbone_checkpoint(module: nn.Module, filename: str | os.PathLike, prefix: str | None = None,
                             strict: bool = True, map_location: str | torch.device | None = 'cpu',
                             logger: str | logging.Logger = 'current', key: str | None = None,
                             allow_non_finite: bool = False) -> LoadReport:
    """Load an InceptionNeXt checkpoint of any supported format into a backbone, strictly by default.

    Args:
        module: The backbone (its ``state_dict()`` names are the target).
        filename: Anything :func:`read_checkpoint` accepts.
        prefix: Where the backbone's keys live in the checkpoint (``'backbone.'`` in a segmentor's); ``None``
            detects it, ``''`` means no prefix.
        strict: Raise on missing, unexpected or mis-shaped tensors (see :func:`load_backbone_state_dict`).
        map_location: As in :func:`torch.load`.
        logger: Where the summary goes (mmengine's current logger by default).
        key: The checkpoint's top-level entry to read, e.g. ``'state_dict_ema'``; ``None`` tries the usual ones.
        allow_non_finite: Load tensors holding NaN/Inf; by default they are refused, naming the tensors.

    Returns:
        The :class:`LoadReport` that was logged.
    """
    filename = str(filename)
    checkpoint = read_checkpoint(filename, map_location)
    backbone = extract_backbone_state_dict(checkpoint, prefix, source=filename, key=key)
    if not allow_non_finite:
        check_finite_state_dict(backbone.state_dict, filename)
    return load_backbone_state_dict(module, backbone, filename, strict=strict, logger=logger)


# Model-zoo names that always mean another network's weights (mmengine's OpenMMLab / torchvision / mmcls tables).
_OTHER_MODEL_ZOOS = ('open-mmlab://', 'openmmlab://', 'torchvision://', 'modelzoo://', 'mmcls://', 'mmpretrain://')


def _foreign_weights(pretrained: str) -> str | None:
    """Why ``pretrained`` is not InceptionNeXt weights, or ``None`` when it is (read from the name, or from the
    keys of a local file)."""
    if pretrained.startswith(_OTHER_MODEL_ZOOS):
        return "names another network's weights in a model zoo"
    if pretrained.startswith(HF_HUB_PREFIX) or ('://' in pretrained and not pretrained.startswith(TRUSTED_PREFIX)):
        name = re.sub(r'[^a-z]', '', pretrained.lower())
        return None if 'inceptionnext' in name else 'is remote and its name does not say InceptionNeXt'
    try:
        extract_backbone_state_dict(read_checkpoint(pretrained), source=pretrained)
    except (CheckpointError, OSError) as e:
        return f'cannot be read as InceptionNeXt weights ({str(e).splitlines()[0]})'
    return None


def pretrained_init_cfg(pretrained: str | os.PathLike | None, init_cfg: Any, default_init_cfg: Mapping,
                        owner: str) -> Any:
    """The ``init_cfg`` a backbone uses given mmseg's ``model.pretrained`` (EncoderDecoder passes it on).

    InceptionNeXt weights (a local file with InceptionNeXt keys, or a URL / ``hf-hub:`` name that says
    InceptionNeXt) become ``dict(type='Pretrained', checkpoint=pretrained)``, loaded strictly by ``init_weights``.
    Anything else (``open-mmlab://resnet50_v1c`` from one of mmseg's model bases, ``torchvision://...``, a file
    without InceptionNeXt keys) and ``pretrained`` beside a non-default ``init_cfg`` raise a ``ValueError``
    naming the value and the fix, at build time.
    """
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(f'{owner}: model.pretrained must be a checkpoint path, URL or None, got {pretrained!r}')
    pretrained = str(pretrained)
    reason = _foreign_weights(pretrained)
    if reason is not None:
        raise ValueError(f'{owner}: model.pretrained={pretrained!r} {reason}; set model.pretrained=None (mmseg model '
                         "bases set it for their own backbone) and load InceptionNeXt weights with backbone.init_cfg="
                         "dict(type='Pretrained', checkpoint=...)")
    if init_cfg is not None and init_cfg != default_init_cfg:
        raise ValueError(f'{owner}: both model.pretrained={pretrained!r} and backbone.init_cfg={init_cfg} are set; '
                         "keep one: set model.pretrained=None, or drop init_cfg")
    return dict(type='Pretrained', checkpoint=pretrained)
