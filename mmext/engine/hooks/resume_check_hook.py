"""Decide and check what a training run resumes or loads, before mmengine does, and say it in the log."""
from __future__ import annotations

import logging
from collections.abc import Mapping

from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from mmext.checkpoint import CheckpointError, check_checkpoint_fits, checkpoint_folders, find_resumable_checkpoint
from mmext.compat.upstream import runner_checkpoint_request, runner_is_training, set_runner_checkpoint_request
from mmext.registry import HOOKS


class NothingToTrainError(RuntimeError):
    """The checkpoint named for resuming is already at or past the end of the schedule."""


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Choose the checkpoint to resume, check what is resumed or loaded against the model, and log it.

    - ``resume=True`` without ``load_from`` (``--resume``, ``--auto-resume``): the newest checkpoint that is
      complete, finite and fits the model, looked for wherever the config saves them (``work_dir`` and
      ``<out_dir>/<work_dir name>``, see :func:`~mmext.checkpoint.find_resumable_checkpoint`); each newer file
      passed over is logged with its reason. Nothing there: training starts at iteration 0 and says so. Files
      there but none usable: an error listing why, never a silent restart from 0.
    - ``resume=True`` with ``load_from`` (``--resume CKPT``) or ``load_from`` alone: the file must pass the one fit
      rule, :func:`~mmext.checkpoint.check_checkpoint_fits` (a ``backbone.*``-only file as ``load_from`` loads the
      backbone, and the log says the heads start fresh).
    - Resuming a checkpoint at or past ``max_iters`` / ``max_epochs``: with ``--resume CKPT`` an error
      (:class:`NothingToTrainError`: a named checkpoint is resumed to train more, so the schedule is wrong); when
      the checkpoint was found automatically, a warning and a normal end (re-running a finished job's command is
      not a failure).
    - Only in ``Runner.train()``: ``test()`` / ``val()`` are left alone (``tools/test.py`` checks its checkpoint
      itself, so the file is read once).
    - After a resume, a learning rate in the checkpoint's optimizer that differs from the config's is logged.

    Args:
        allow_non_finite: Accept checkpoints holding NaN/Inf tensors.
    """

    priority = 'VERY_HIGH'  # before WeightsOnlyCheckpointHook judges the file the Runner will read

    def __init__(self, allow_non_finite: bool = False) -> None:
        self.allow_non_finite = allow_non_finite
        self._config_lrs: list[float] | None = None
        self._resumed: str | None = None
        self._explicit = False

    def before_run(self, runner) -> None:
        loaded, resume, load_from = runner_checkpoint_request(runner)
        if loaded or not runner_is_training(runner):
            return
        self._resumed, self._explicit = None, load_from is not None
        if resume and load_from is None:
            load_from = self._choose(runner)
            if load_from is None:
                return
        elif load_from is not None:
            note = check_checkpoint_fits(runner.model, load_from, allow_non_finite=self.allow_non_finite,
                                         resume=resume)
            print_log(f'{"Resume" if resume else "load_from"}: {note}', logger='current')
        if resume:
            self._resumed = load_from
            self._config_lrs = [g.get('initial_lr', g['lr']) for g in _param_groups(runner)]

    def _choose(self, runner) -> str | None:
        out_dir = next((h.out_dir for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        folders = checkpoint_folders(runner.work_dir, out_dir)
        choice = find_resumable_checkpoint(folders, lambda path: check_checkpoint_fits(
            runner.model, path, allow_non_finite=self.allow_non_finite, resume=True))
        if choice.path is None:
            if choice.candidates:
                raise CheckpointError(f'Resume: {choice.describe()}\nFix or remove these files, or start anew in '
                                      'another work dir.')
            print_log(f'Resume: no checkpoint in {" or ".join(folders)}; training starts from iteration 0.',
                      logger='current')
            set_runner_checkpoint_request(runner, False, None)
            return None
        print_log(f'Resume: {choice.describe()}', logger='current',
                  level=logging.WARNING if choice.skipped else logging.INFO)
        set_runner_checkpoint_request(runner, True, choice.path)
        return choice.path

    def before_train(self, runner) -> None:
        if self._resumed is None:
            return
        loop = runner.train_loop
        by_epoch = isinstance(loop, EpochBasedTrainLoop)
        done, end = (runner.epoch, loop.max_epochs) if by_epoch else (runner.iter, loop.max_iters)
        if done < end:
            return
        unit, key = ('epoch', 'train_cfg.max_epochs') if by_epoch else ('iteration', 'train_cfg.max_iters')
        message = (f'Resume: {self._resumed} is at {unit} {done} and the schedule ends at {end} ({key}={end}): '
                   'there is nothing left to train.')
        if self._explicit:
            raise NothingToTrainError(f'{message} To train longer, raise it, e.g. --cfg-options {key}={2 * done}.')
        print_log(f'{message} Training is already complete; nothing to do.', logger='current',
                  level=logging.WARNING)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._config_lrs is None:
            return
        saved = checkpoint.get('optimizer')
        groups = saved.get('param_groups') if isinstance(saved, Mapping) else None
        if not groups:  # an OptimWrapperDict saves one state per optimizer: compare the first
            first = next((v for v in (saved or {}).values() if isinstance(v, Mapping)), None)
            groups = first.get('param_groups') if first else None
        if not groups:
            return
        changed = sorted({(float(c), float(g.get('initial_lr', g.get('lr'))))
                          for c, g in zip(self._config_lrs, groups)
                          if g.get('initial_lr', g.get('lr')) is not None
                          and abs(float(g.get('initial_lr', g.get('lr'))) - float(c)) > 1e-12 * max(abs(c), 1)})
        if changed:
            shown = ', '.join(f'{c:g} -> {s:g}' for c, s in changed[:4])
            print_log(f'Resume: the checkpoint\'s optimizer and scheduler state replaces the config\'s learning rate '
                      f'({shown}, config -> resumed). To train with the new lr, start from the checkpoint with '
                      'load_from instead of resuming.', logger='current', level=logging.WARNING)
        self._config_lrs = None


def _param_groups(runner) -> list[dict]:
    wrapper = runner.optim_wrapper
    if hasattr(wrapper, 'optimizer'):
        return list(wrapper.optimizer.param_groups)
    groups: list[dict] = []
    for sub in getattr(wrapper, 'values', lambda: [])():
        groups.extend(sub.optimizer.param_groups)
    return groups
