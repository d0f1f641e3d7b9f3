"""Checkpoints that survive a kill: every file is complete before the one it replaces is removed.

mmengine 0.10.7's ``CheckpointHook`` deletes the oldest kept checkpoint *before* writing the new one and writes in
place; with ``save_best`` it removes the previous best and then writes the new best in place; it writes
``last_checkpoint`` in place. A kill in between leaves no checkpoint (``max_keep_ckpts=1``), no best checkpoint, or
a pointer to a truncated file. :class:`SafeCheckpointHook` keeps mmengine's arguments and file names and changes
the order: write through :func:`~mmext.engine.save.save_checkpoint_atomic` (finite state only, temporary name,
rename), then update ``last_checkpoint`` atomically, then remove what the new file replaces.
"""
from __future__ import annotations

import functools
import os
import os.path as osp
import re

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

from mmext.checkpoint.resume import LAST_CHECKPOINT
from mmext.engine.save import save_checkpoint_atomic
from mmext.fileio import atomic_write
from mmext.registry import HOOKS

# The temporary names of mmext.fileio.atomic_path / atomic_write: <stem>.tmp-<pid>.pth, last_checkpoint.tmp-<pid>
_TEMPORARY = re.compile(r'\.tmp-\d+(\.pth)?$')


class _DeferredRemoval:
    """A file backend that records ``remove`` / ``rmtree`` calls instead of running them (everything else is
    passed through), so the files mmengine's best-checkpoint logic removes go only after the new one is written."""

    def __init__(self, backend, removals: list[str]) -> None:
        self._backend = backend
        self._removals = removals

    def remove(self, path) -> None:
        self._removals.append(str(path))

    def rmtree(self, path) -> None:
        self._removals.append(str(path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) whose periodic, last and best checkpoints are crash-safe.

    Per periodic save: :func:`~mmext.engine.save.save_checkpoint_atomic`, then ``last_checkpoint`` rewritten
    atomically, then checkpoints beyond ``max_keep_ckpts`` removed. Per new best (``save_best``): the new
    ``best_*.pth`` is written through the same atomic path before the previous best is removed. A kill at any
    point leaves the previous complete checkpoints or the new ones. Remote ``out_dir`` backends keep mmengine's
    behaviour for the file operations.

    Used as a custom hook (mmext's Runner adds it), it takes over the settings of the Runner's default
    ``CheckpointHook`` (``default_hooks.checkpoint``) and removes that hook, so checkpoints are written once.
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

    def before_train(self, runner) -> None:
        super().before_train(runner)  # resolves out_dir
        locked = getattr(type(runner).save_checkpoint, 'mmext_atomic', False)  # SafeRunner: holds the work dir lock
        if not (self._is_local() and is_main_process() and locked):
            return
        # Temporaries of a killed earlier run (this run holds the work dir's lock: none is being written now)
        for folder in {self.out_dir, runner.work_dir}:
            leftovers = [n for n in os.listdir(folder) if _TEMPORARY.search(n)] if osp.isdir(folder) else []
            for name in leftovers:
                os.remove(osp.join(folder, name))
            if leftovers:
                print_log(f'Removed {len(leftovers)} unfinished checkpoint temporaries of an interrupted run from '
                          f'{folder}: {", ".join(sorted(leftovers)[:4])}', logger='current')

    def _is_local(self) -> bool:
        return isinstance(self.file_backend, LocalBackend) and self.file_client_args is None

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        final = osp.join(self.out_dir, self.filename_tmpl.format(step))
        # The kept-steps list is updated before saving, so the checkpoint records itself (as mmengine's does), but
        # the file it pushes out is removed only after the new one is complete.
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = osp.join(self.out_dir, self.filename_tmpl.format(self.keep_ckpt_ids.popleft()))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        self.last_ckpt = final
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        save_checkpoint_atomic(runner, self.out_dir, osp.basename(final), self.file_client_args,
                               save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
                               meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        with atomic_write(osp.join(runner.work_dir, LAST_CHECKPOINT), 'w') as f:
            f.write(final)
        if outdated is not None and outdated != final and osp.isfile(outdated):
            os.remove(outdated)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best or not self._is_local():
            return super()._save_best_checkpoint(runner, metrics)
        removals: list[str] = []
        backend, self.file_backend = self.file_backend, _DeferredRemoval(self.file_backend, removals)
        # mmengine writes the best file with runner.save_checkpoint: on a Runner that is not mmext's, route that
        # call through the atomic path for its duration.
        routed = not getattr(type(runner).save_checkpoint, 'mmext_atomic', False)
        if routed:
            runner.save_checkpoint = functools.partial(save_checkpoint_atomic, runner)
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
            if routed:
                del runner.save_checkpoint
        if not is_main_process():
            return
        current = {str(p) for p in [getattr(self, 'best_ckpt_path', None),
                                    *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()] if p}
        for path in removals:
            if path not in current and osp.isfile(path):
                os.remove(path)
