"""Finding the tensors in a loaded checkpoint and comparing them with a model, key by key.

:func:`unwrap_state_dict` looks through the wrappers checkpoints come in, :func:`diff_state_dict` is the one
comparison every strict check here and in the backbone uses, and :func:`check_checkpoint_fits` refuses a
whole-model checkpoint that does not fit a model exactly (mmengine's ``load_from`` would load it non-strictly).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .io import CheckpointError, read_checkpoint
from .report import preview

#: Top-level keys that wrap a state dict, tried in this order when no ``checkpoint_key`` is given: mmengine and timm
#: (``state_dict``), the official training scripts and torchvision's references (``model``), DeepSpeed
#: (``module``).
WRAPPER_KEYS = ('state_dict', 'model', 'module')
# Name prefixes added by wrappers around a model: DDP / DeepSpeed, torch.compile (OptimizedModule).
_MODEL_WRAPPER_PREFIXES = ('module.', '_orig_mod.')


def _deprecated_key(checkpoint_key: str | None, key: str | None, where: str) -> str | None:
    if key is not None:
        warnings.warn(f'{where}(key=...) is deprecated; the argument is called checkpoint_key now',
                      DeprecationWarning, stacklevel=3)
        if checkpoint_key is not None and checkpoint_key != key:
            raise TypeError(f'{where}: pass checkpoint_key only (got checkpoint_key={checkpoint_key!r}, '
                            f'key={key!r})')
        return key
    return checkpoint_key


def unwrap_state_dict(checkpoint: Any, source: str = '<checkpoint>', checkpoint_key: str | None = None, *,
                      key: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a loaded checkpoint under the model's own names, and a description of the wrapping found.

    Args:
        checkpoint: What :func:`~mmext.checkpoint.read_checkpoint` returned.
        source: The file, for messages.
        checkpoint_key: The top-level entry holding the state dict, e.g. ``'state_dict_ema'`` or ``'model_ema'``
            for EMA weights; ``None`` tries :data:`WRAPPER_KEYS` and then the checkpoint itself.
        key: Deprecated spelling of ``checkpoint_key``.

    ``module.`` (DDP) and ``_orig_mod.`` (a ``torch.compile``d model) prefixes are stripped; non-tensor entries
    are left out. Raises :class:`CheckpointError` naming ``source`` when there are no tensors.
    """
    key = _deprecated_key(checkpoint_key, key, 'unwrap_state_dict')
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{source} holds a {type(checkpoint).__name__}, not a state dict or a dict wrapping '
                              'one')
    source_format = 'plain state dict'
    if key is not None:
        if not isinstance(checkpoint.get(key), Mapping):
            raise CheckpointError(f'{source} has no state dict under checkpoint_key={key!r}; its top-level keys: '
                                  f'{preview(list(checkpoint))}')
        checkpoint, source_format = checkpoint[key], f"{{'{key}': ...}} checkpoint"
    else:
        for wrapper in WRAPPER_KEYS:
            if isinstance(checkpoint.get(wrapper), Mapping):
                checkpoint, source_format = checkpoint[wrapper], f"{{'{wrapper}': ...}} checkpoint"
                break
    tensors = {k: v for k, v in checkpoint.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        wrapped = [k for k, v in checkpoint.items()
                   if isinstance(v, Mapping) and any(isinstance(t, torch.Tensor) for t in v.values())]
        hint = (f'; to read one of its entries pass checkpoint_key=<entry> (one of {preview(wrapped)}), e.g. '
                f"init_cfg=dict(type='Pretrained', checkpoint='{source}', checkpoint_key='{wrapped[0]}') or "
                f'--checkpoint-key {wrapped[0]}' if wrapped else '')
        raise CheckpointError(f'{source} contains no tensors; top-level keys: {preview(list(checkpoint))}{hint}')
    for prefix in _MODEL_WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k.removeprefix(prefix): v for k, v in tensors.items()}
            source_format += f', {prefix} prefix stripped'
    return tensors, source_format


def check_finite_state_dict(state: Mapping[str, torch.Tensor], source: str = '<checkpoint>') -> None:
    """Raise :class:`CheckpointError` naming ``source`` and the tensors holding NaN or Inf values.

    A checkpoint saved from a diverged run loads without complaint and then trains on ``loss: nan`` or predicts
    class 0 everywhere; callers refuse it by default and offer ``allow_non_finite=True`` as the explicit way out.
    """
    bad = []
    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                bad.append(f'{name} ({int((~finite).sum())} of {tensor.numel()})')
    if bad:
        raise CheckpointError(f'{source} holds NaN/Inf values in {len(bad)} tensor(s): {preview(bad, 6)}. It was '
                              'probably saved from a diverged run. Pass allow_non_finite=True (init_cfg / '
                              'ResumeCheckHook option) only if you mean to load it anyway.')


@dataclass
class StateDictDiff:
    """How a state dict differs from the one a model expects."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)


def diff_state_dict(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> StateDictDiff:
    """Keys of ``expected`` absent from ``given``, keys of ``given`` that ``expected`` lacks, and shared keys whose
    shapes differ as ``(key, given shape, expected shape)``; each list in ``expected``'s or ``given``'s order."""
    return StateDictDiff(
        missing=[k for k in expected if k not in given],
        unexpected=[k for k in given if k not in expected],
        mismatched=[(k, tuple(given[k].shape), tuple(v.shape)) for k, v in expected.items()
                    if k in given and given[k].shape != v.shape])


def check_model_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], filename: str = '<checkpoint>',
                           allow_missing: tuple[str, ...] = ()) -> None:
    """Raise :class:`CheckpointError` naming the file and the keys that differ unless ``state`` fits ``model``
    exactly (same keys, same shapes).

    A submodule may explain a mismatch in its own terms: one with a ``describe_state_dict_mismatch(state)`` method
    (the InceptionNeXt backbone says which arch the checkpoint's tensors look like) is asked with the part of
    ``state`` under its name, and a line it returns heads the message. Missing keys starting with one of
    ``allow_missing`` are accepted.
    """
    diff = diff_state_dict(model.state_dict(), state)
    if allow_missing:
        diff.missing = [k for k in diff.missing if not k.startswith(allow_missing)]
    if not diff:
        return
    lines = []
    for name, module in model.named_modules():
        describe = getattr(module, 'describe_state_dict_mismatch', None)
        if callable(describe):
            prefix = f'{name}.' if name else ''
            line = describe({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
            if line:
                lines.append(f'{name}: {line}' if name else line)
    mismatched = [f'{k} {c} in checkpoint vs {m} in model' for k, c, m in diff.mismatched]
    for what, keys in (('shape mismatches', mismatched), ('missing from checkpoint', diff.missing),
                       ('unexpected in checkpoint', diff.unexpected)):
        if keys:
            lines.append(f'{what} ({len(keys)}): {preview(keys, 6)}')
    raise CheckpointError(f'Checkpoint {filename} does not fit the model of this config:\n  ' + '\n  '.join(lines)
                          + '\nUse the config the checkpoint was trained with.')


def check_checkpoint_fits(model: nn.Module, filename: str | os.PathLike, checkpoint_key: str | None = None,
                          allow_non_finite: bool = False, *, resume: bool = True, key: str | None = None) -> str:
    """Check, before a run, that a checkpoint fits ``model``; the one fit rule for whole-model checkpoints.

    mmengine's Runner loads ``load_from`` with ``strict=False`` and only logs what did not fit, so a checkpoint of
    another arch or config would still be evaluated, partly random. The rule:

    - a whole-model checkpoint must fit exactly (same keys, same shapes);
    - with ``resume=False`` (``load_from`` for fine-tuning) a checkpoint holding only ``backbone.*`` tensors
      (``tools/model_converters/inceptionnext2mmseg.py --prefix backbone.``) is accepted when the backbone
      fits exactly: mmengine loads it into the backbone and the other modules keep their fresh initialisation,
      which the returned line says;
    - a backbone checkpoint without the ``backbone.`` prefix (official / timm layout) is refused with the
      ``init_cfg`` to use instead.

    Model wrappers (DDP, test-time augmentation) are looked through. Reads the file through
    :func:`~mmext.checkpoint.read_checkpoint`. ``checkpoint_key`` selects the wrapper entry (see
    :func:`unwrap_state_dict`; ``key`` is its deprecated spelling); NaN/Inf tensors are refused unless
    ``allow_non_finite``. Returns a line describing what will be loaded.
    """
    checkpoint_key = _deprecated_key(checkpoint_key, key, 'check_checkpoint_fits')
    while hasattr(model, 'module') and isinstance(model.module, nn.Module):
        model = model.module
    filename = str(filename)
    state, _ = unwrap_state_dict(read_checkpoint(filename), filename, checkpoint_key)
    if not allow_non_finite:
        check_finite_state_dict(state, filename)
    backbone = getattr(model, 'backbone', None)
    if not resume and isinstance(backbone, nn.Module):
        if state and all(k.startswith('backbone.') for k in state):
            # modules a released backbone checkpoint lacks (a backbone declares them, e.g. the per-output norms)
            new = tuple(getattr(backbone, 'new_module_prefixes', ()))
            sub = {k[len('backbone.'):]: v for k, v in state.items()}
            check_model_state_dict(backbone, sub, filename, allow_missing=new)
            fresh = sorted({k.split('.', 1)[0] for k in model.state_dict() if not k.startswith('backbone.')})
            fresh += sorted({f'backbone.{k.split(".", 1)[0]}' for k in backbone.state_dict() if k not in sub})
            return (f'{filename} holds backbone weights only: the backbone is loaded from it (strictly, '
                    f'{len(state)} tensors); {", ".join(fresh) or "the other modules"} start from their '
                    'initialisation.')
        backbone_keys = set(backbone.state_dict())
        if not any(k.startswith('backbone.') for k in state) and len(backbone_keys & set(state)) >= len(state) // 2:
            raise CheckpointError(
                f'load_from={filename} holds backbone weights only, without the backbone. prefix, so it cannot '
                "initialise the whole model. Load it into the backbone instead: model.backbone.init_cfg=dict(type="
                f"'Pretrained', checkpoint='{filename}'), and leave load_from unset (or convert it with "
                'tools/model_converters/inceptionnext2mmseg.py --prefix backbone.).')
    check_model_state_dict(model, state, filename)
    return f'{filename} fits the model exactly ({len(state)} tensors).'
