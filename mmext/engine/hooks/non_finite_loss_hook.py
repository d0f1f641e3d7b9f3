"""Stop a training run whose loss is NaN or Inf before a checkpoint is written from its broken weights."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from mmengine.hooks import Hook

from mmext.engine.dist import any_rank
from mmext.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` naming the iteration when a training loss is not finite.

    mmdet's ``CheckInvalidLossHook`` is the idea, with two differences: it checks every iteration by default and
    runs before ``CheckpointHook`` / ``SafeCheckpointHook`` (priority ``ABOVE_NORMAL``), so the weights the NaN
    step produced are never saved, and under DDP the flag is OR-ed over all ranks (one scalar ``all_reduce``), so
    every rank raises at the same iteration instead of one rank leaving the others blocked in the next collective
    until the process group's timeout.

    Args:
        interval: Check every ``interval`` iterations (a NaN seen in between is remembered until the next check).
            With ``interval > 1`` a checkpoint saved between checks may hold broken weights; keep 1 unless the
            scalar all-reduce costs too much.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise ValueError(f'NonFiniteLossHook interval must be a positive integer, got {interval!r}')
        self.interval = interval
        self._first_bad: tuple[int, str] | None = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._first_bad is None:
            bad = _non_finite_losses(outputs)
            if bad:
                self._first_bad = (runner.iter + 1, bad)
        if not self.every_n_train_iters(runner, self.interval) and not self.is_last_train_iter(runner):
            return
        if any_rank(self._first_bad is not None):
            if self._first_bad is not None:
                iteration, losses = self._first_bad
                where = f'at iteration {iteration}: {losses}'
            else:
                where = f'on another rank by iteration {runner.iter + 1}'
            raise NonFiniteLossError(
                f'Training loss is not finite {where}. The run is stopped before any checkpoint is written from the '
                'diverged weights. Lower the learning rate, enable gradient clipping '
                '(optim_wrapper.clip_grad=dict(max_norm=...)) or check the data and the loaded weights; resume '
                'from the last good checkpoint.')


def _non_finite_losses(outputs) -> str:
    """``'loss=nan, decode.loss_ce=inf'`` for the non-finite loss entries of ``train_step``'s log vars, or ''."""
    if not isinstance(outputs, Mapping):
        return ''
    bad = []
    for name, value in outputs.items():
        if 'loss' not in str(name):
            continue
        tensor = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value, dtype=torch.float64)
        if not bool(torch.isfinite(tensor).all()):
            bad.append(f'{name}={tensor.flatten()[0].item():g}' if tensor.numel() else str(name))
    return ', '.join(bad)
