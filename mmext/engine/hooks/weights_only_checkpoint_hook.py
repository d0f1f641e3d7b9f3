"""mmengine training checkpoints that ``torch.load(weights_only=True)`` can read.

torch >= 2.6 unpickles with ``weights_only=True`` by default, and mmengine 0.10.7 pickles its message hub's
``HistoryBuffer`` objects and numpy values into every checkpoint it saves, so ``--resume``, ``load_from=`` and
``init_cfg=dict(type='Pretrained')`` at a Runner checkpoint all fail. Allow-listing those classes would need
``builtins.getattr``, and ``weights_only=False`` would let downloaded weights run code. Instead this hook stores
those values as plain containers when a checkpoint is written and rebuilds them when one is read, so the
Runner's unmodified ``resume`` / ``load_checkpoint`` load every file with ``weights_only=True``.
"""
from __future__ import annotations

import os.path as osp

from mmengine.hooks import Hook

from mmext.checkpoint import check_weights_only_loadable, from_weights_only, to_weights_only
from mmext.compat.upstream import runner_checkpoint_request
from mmext.registry import HOOKS


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Save mmengine checkpoints in a ``weights_only``-loadable layout and restore them on load.

    - ``before_save_checkpoint``: message-hub ``HistoryBuffer`` objects, numpy arrays and scalars (``eta``,
      ``dataset_meta``, metrics) become tagged dicts of tensors, numbers and strings
      (:func:`mmext.checkpoint.to_weights_only`). Runs last (priority ``LOWEST``) so values other hooks add
      are covered; a value that cannot be stored safely raises ``TypeError`` naming where it is.
    - ``after_load_checkpoint``: the Runner calls it right after reading a checkpoint and before it restores the
      message hub, optimizer and schedulers; the tagged values become the original objects again. (Other hooks'
      ``after_load_checkpoint`` run first; mmengine's, e.g. ``EMAHook``'s, only touch ``state_dict`` tensors.)
    - ``before_run``: if the checkpoint the Runner is about to resume or load was saved without this hook, stop
      with an error that says how to proceed (``trusted://`` for the user's own file, or
      :func:`~mmext.checkpoint.upgrade_training_checkpoint`) instead of torch's advice to drop
      ``weights_only``.

    One of :data:`~mmext.engine.hooks.TRAINING_HOOKS`: mmext's Runner adds it.
    """

    priority = 'LOWEST'

    def before_run(self, runner) -> None:
        target = _checkpoint_to_load(runner)
        if target is not None and osp.isfile(osp.expanduser(target)):
            check_weights_only_loadable(osp.expanduser(target))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            checkpoint[key] = to_weights_only(checkpoint[key], str(key))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            checkpoint[key] = from_weights_only(checkpoint[key])


def _checkpoint_to_load(runner) -> str | None:
    """The file ``Runner.load_or_resume`` will read, mirroring its rules (mmengine 0.10.7)."""
    loaded, resume, load_from = runner_checkpoint_request(runner)
    if loaded:
        return None
    if resume and load_from is None:
        last = osp.join(runner.work_dir, 'last_checkpoint')
        if not osp.isfile(last):
            return None
        with open(last) as f:
            return f.read().strip() or None
    return load_from
