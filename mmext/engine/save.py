"""The one way a training checkpoint is written: finite state only, to a temporary name, renamed when complete.

mmengine writes every checkpoint through ``Runner.save_checkpoint`` (periodic, ``save_last``, ``save_best``,
``out_dir``, and any hook or user code that saves), in place. :func:`save_checkpoint_atomic` is what
:class:`~mmext.engine.runner.SafeRunner`'s ``save_checkpoint`` and :class:`~mmext.engine.hooks.SafeCheckpointHook`
call instead:

1. every floating tensor of the model's state (parameters and buffers, BatchNorm running statistics included) and
   of the optimizer's state is checked finite, on every rank (one scalar ``all_reduce``); a non-finite state is
   never written -- :class:`NonFiniteStateError` stops the run and the previous checkpoint stays;
2. the file is written to ``<name>.tmp-<pid>.pth`` in the destination folder, fsynced, and renamed onto its name
   (:func:`mmext.fileio.atomic_path`): a reader sees the old file or the complete new one, never part of one.

Callers remove the files a new checkpoint replaces only after this returns.
"""
from __future__ import annotations

import os.path as osp
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmext.checkpoint import CheckpointError
from mmext.checkpoint.report import preview
from mmext.fileio import atomic_path

from .dist import any_rank


class NonFiniteStateError(CheckpointError):
    """The training state holds NaN/Inf values; no checkpoint was written from it."""


def _tensors(obj: Any, path: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _tensors(v, f'{path}.{k}' if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f'{path}[{i}]')


def non_finite_state(runner: Runner) -> list[str]:
    """Names of the model-state and optimizer-state tensors of ``runner`` that hold NaN or Inf (with counts)."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    sources: list[tuple[str, Any]] = [('', model.state_dict())]
    wrapper = getattr(runner, 'optim_wrapper', None)
    if hasattr(wrapper, 'state_dict'):
        sources.append(('optimizer', wrapper.state_dict()))
    bad = []
    for prefix, state in sources:
        for name, tensor in _tensors(state, prefix):
            if tensor.is_floating_point() or tensor.is_complex():
                finite = torch.isfinite(tensor)
                if not bool(finite.all()):
                    bad.append(f'{name} ({int((~finite).sum())} of {tensor.numel()})')
    return bad


def save_checkpoint_atomic(runner: Runner, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
    """``Runner.save_checkpoint(out_dir, filename, ...)`` (same arguments), finite-checked and atomic.

    Call it on every rank, as mmengine's hooks call ``save_checkpoint``; only the main process writes. Remote
    destinations (``backend_args`` / ``file_client_args`` or a ``scheme://`` folder) are written by mmengine's own
    code after the same finite check.

    Raises:
        NonFiniteStateError: naming the tensors; nothing was written and no file was replaced.
    """
    bad = non_finite_state(runner)
    if any_rank(bool(bad)):
        where = f'in {len(bad)} tensor(s): {preview(bad, 6)}' if bad else 'on another rank'
        raise NonFiniteStateError(
            f'Not saving {osp.join(out_dir, filename)}: the training state holds NaN/Inf values '
            f'{where}. The run has diverged (the loss can stay finite while BatchNorm statistics overflow); the '
            'checkpoints already written are kept. Lower the learning rate or enable gradient clipping '
            '(optim_wrapper.clip_grad=dict(max_norm=...)) and resume from the last checkpoint.')
    remote = '://' in str(out_dir) or kwargs.get('backend_args') is not None or kwargs.get(
        'file_client_args') is not None or (args and args[0] is not None)
    if remote or not is_main_process():
        Runner.save_checkpoint(runner, out_dir, filename, *args, **kwargs)  # master_only: a no-op off rank 0
        return
    with atomic_path(osp.join(out_dir, filename)) as temporary:
        Runner.save_checkpoint(runner, out_dir, temporary.name, *args, **kwargs)
