"""Checkpoints that survive a kill, and a resume that says what it loads.

mmengine 0.10.7's ``CheckpointHook`` deletes the oldest kept checkpoint *before* writing the new one, writes the new
one in place and then ``last_checkpoint``: a kill (OOM killer, preemption) in between leaves, with
``max_keep_ckpts=1``, no checkpoint at all, and a truncated file named in ``last_checkpoint`` has no fallback.
:class:`SafeCheckpointHook` writes ``<name>.tmp``, flushes and fsyncs it, renames it to its final name, then
updates ``last_checkpoint`` (same way) and only then removes old checkpoints. :class:`ResumeCheckHook` picks the
newest *readable* checkpoint when resuming, and checks the checkpoint against the model before anything loads.
"""
from __future__ import annotations

import logging
import os
import os.path as osp
import re
import zipfile
from collections.abc import Mapping

import torch.nn as nn
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from mmext.checkpoint import (
    TRUSTED_PREFIX,
    CheckpointError,
    check_finite_state_dict,
    check_model_state_dict,
    read_checkpoint,
    unwrap_state_dict,
)
from mmext.compat.upstream import runner_checkpoint_request, runner_is_training, set_runner_checkpoint_request
from mmext.registry import HOOKS

_CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a fsynced temporary file and a rename: readers see old or new, whole."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with crash-safe local writes (same arguments).

    Order per save: write ``<out_dir>/<name>.tmp``, flush + fsync, rename to ``<name>`` (fsync the folder), update
    ``last_checkpoint`` atomically, then remove checkpoints beyond ``max_keep_ckpts``. A kill at any point leaves
    the previous complete checkpoint named in ``last_checkpoint`` or the new one. Remote ``out_dir`` backends keep
    mmengine's behaviour.

    Used as a custom hook (the configs' bases do this, so mmseg's and mmdet's own ``tools/train.py`` get it), it
    takes over the settings of the Runner's default ``CheckpointHook`` (``default_hooks.checkpoint``) and removes
    that hook, so checkpoints are written once, by this hook.
    """

    def before_run(self, runner) -> None:
        # Runner.call_hook is iterating over runner.hooks: swap entries, never change the list's length.
        hooks = runner.hooks
        mine = next(i for i, hook in enumerate(hooks) if hook is self)
        for i, hook in enumerate(hooks):
            if hook is self:
                continue
            if type(hook) is CheckpointHook:  # the config's default_hooks.checkpoint: take over its settings
                self.__dict__.update(hook.__dict__)
                hooks[i], hooks[mine] = self, Hook()
                return
            if isinstance(hook, SafeCheckpointHook):  # default_hooks.checkpoint is one already: step aside
                hooks[mine] = Hook()
                return

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not isinstance(self.file_backend, LocalBackend) or self.file_client_args is not None:
            return super()._save_checkpoint_with_step(runner, step, meta)
        ckpt_filename = self.filename_tmpl.format(step)
        final = osp.join(self.out_dir, ckpt_filename)
        tmp_name = f'{ckpt_filename}.tmp'
        # The kept-steps list is updated before saving, so the checkpoint records itself (as mmengine's does), but
        # the file it pushes out is deleted only after the new one is complete.
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = osp.join(self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids.popleft()))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        self.last_ckpt = final
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, tmp_name, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        tmp = osp.join(self.out_dir, tmp_name)
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(self.out_dir)
        write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), final)
        if outdated is not None and outdated != final and osp.isfile(outdated):
            os.remove(outdated)


def is_readable_checkpoint(path: str) -> bool:
    """Cheap completeness test: the file exists and, for torch's zip format, its central directory reads (a file
    cut off while written has none). Costs no tensor I/O."""
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    with open(path, 'rb') as f:
        is_zip = f.read(4) == b'PK\x03\x04'
    if not is_zip:
        return True  # legacy torch or safetensors: left for the reader to judge
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith('data.pkl') for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def find_resumable_checkpoint(work_dir: str) -> tuple[str | None, list[str]]:
    """The checkpoint to resume from in ``work_dir`` and warnings about the ones passed over.

    ``last_checkpoint``'s file if it is readable, else the newest readable ``iter_N.pth`` / ``epoch_N.pth`` in
    ``work_dir`` (by N). ``(None, warnings)`` when there is none.
    """
    warnings: list[str] = []
    named = None
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip() or None
        if named is None:
            warnings.append(f'{pointer} is empty')
        elif is_readable_checkpoint(named):
            return named, warnings
        else:
            warnings.append(f'{pointer} names {named}, which is missing or incomplete (cut off while written?)')
    candidates = []
    if osp.isdir(work_dir):
        for name in os.listdir(work_dir):
            match = _CHECKPOINT_NAME.match(name)
            if match:
                candidates.append((int(match.group(1)), osp.join(work_dir, name)))
    for _, path in sorted(candidates, reverse=True):
        if path == named:
            continue
        if is_readable_checkpoint(path):
            if warnings:
                warnings.append(f'falling back to the newest readable checkpoint {path}')
            return path, warnings
        warnings.append(f'{path} is incomplete; skipped')
    return None, warnings


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Decide and check what the Runner resumes or loads, before it does.

    - ``resume=True`` without ``load_from``: resume from :func:`find_resumable_checkpoint` (the newest readable
      checkpoint, with a warning when ``last_checkpoint`` is empty or names a broken file), logging one line either
      way; with nothing to resume training starts at iteration 0 and says so.
    - The checkpoint to resume or ``load_from`` must fit the model exactly (one summary of the keys that differ,
      :func:`~mmext.checkpoint.check_model_state_dict`) and hold no NaN/Inf tensors (unless
      ``allow_non_finite``). A backbone-only checkpoint as ``load_from`` is refused with the config to use.
    - Only in ``Runner.train()``: ``test()`` / ``val()`` are left alone (``tools/test.py`` checks its checkpoint
      itself, so the file is read once).
    - After a resume, a learning rate in the checkpoint's optimizer that differs from the config's is logged: the
      resumed state wins.

    Args:
        allow_non_finite: Accept checkpoints holding NaN/Inf tensors.
    """

    priority = 'VERY_HIGH'  # before WeightsOnlyCheckpointHook judges the file the Runner will read

    def __init__(self, allow_non_finite: bool = False) -> None:
        self.allow_non_finite = allow_non_finite
        self._config_lrs: list[float] | None = None

    def before_run(self, runner) -> None:
        loaded, resume, load_from = runner_checkpoint_request(runner)
        if loaded or not runner_is_training(runner):
            return  # tools/test.py fit-checks its checkpoint itself: read it once
        if resume and load_from is None:
            found, warnings = find_resumable_checkpoint(runner.work_dir)
            for line in warnings:
                print_log(f'Resume: {line}', logger='current', level=logging.WARNING)
            if found is None:
                print_log(f'Resume: no checkpoint in {runner.work_dir}; training starts from iteration 0.',
                          logger='current')
                set_runner_checkpoint_request(runner, False, None)
                return
            print_log(f'Resume: resuming from {found}.', logger='current')
            set_runner_checkpoint_request(runner, True, found)
            load_from = found
        if load_from is None:
            return
        self._check_fits(runner, load_from, resume)

    def _check_fits(self, runner, filename: str, resume: bool) -> None:
        local = filename[len(TRUSTED_PREFIX):] if filename.startswith(TRUSTED_PREFIX) else filename
        if '://' not in local and not osp.exists(osp.expanduser(local)):
            raise FileNotFoundError(f'{"resume" if resume else "load_from"} checkpoint {filename} not found')
        state, _ = unwrap_state_dict(read_checkpoint(filename), filename)
        model = runner.model
        while hasattr(model, 'module') and isinstance(model.module, nn.Module):
            model = model.module
        backbone = getattr(model, 'backbone', None)
        if not resume and isinstance(backbone, nn.Module) and not any(k.startswith('backbone.') for k in state):
            backbone_keys = set(backbone.state_dict())
            if len(backbone_keys & set(state)) >= len(state) // 2:
                raise CheckpointError(
                    f'load_from={filename} holds backbone weights only (no backbone.* / head keys), so it cannot '
                    'initialise the whole model. Load it into the backbone instead: model.backbone.init_cfg='
                    f"dict(type='Pretrained', checkpoint='{filename}'), and leave load_from unset.")
        if not self.allow_non_finite:
            check_finite_state_dict(state, filename)
        check_model_state_dict(model, state, filename)
        if resume:
            self._config_lrs = [g.get('initial_lr', g['lr']) for g in _param_groups(runner)]

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
