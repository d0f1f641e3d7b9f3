"""Save and stop when the job is preempted, instead of dying with nothing saved."""
from __future__ import annotations

import logging
import signal

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmext.engine.dist import any_rank
from mmext.engine.preemption import preemption_requested
from mmext.registry import HOOKS

from .safe_checkpoint_hook import SafeCheckpointHook


class Preempted(SystemExit):
    """The run saved a checkpoint and stopped because it received a preemption signal."""


@HOOKS.register_module()
class PreemptionHook(Hook):
    """On SIGTERM or SIGUSR1, save a checkpoint at the end of the current iteration and exit non-zero.

    mmext's Runner (:class:`~mmext.engine.runner.SafeRunner`) records the signals while it trains
    (:func:`~mmext.engine.preemption.preemption_signals`); this hook checks after every training iteration (under
    DDP the flag is OR-ed over the ranks, one scalar ``all_reduce``, so all ranks stop at the same iteration),
    saves ``iter_<N>.pth`` through :class:`~mmext.engine.hooks.SafeCheckpointHook` (atomic, finite-checked,
    ``last_checkpoint`` updated), logs one line and raises :class:`Preempted` (``SystemExit`` with status
    ``128 + signal``, 143 for SIGTERM, as if the signal had killed the process). ``--resume`` / ``--auto-resume``
    continue from that iteration. A signal during validation is acted on after the next training iteration.
    Epoch-based schedules save nothing extra (mmengine resumes them only at epoch boundaries): the run stops and
    resumes from the last epoch checkpoint.
    """

    # after the logger (BELOW_NORMAL) has logged the iteration; before CheckpointHook (VERY_LOW), whose save of the
    # same iteration this one replaces
    priority = 'LOW'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        signum = preemption_requested()
        if not any_rank(signum is not None):
            return
        signum = signum or signal.SIGTERM  # another rank got it
        name = signal.Signals(signum).name
        step = runner.iter + 1
        saver = next((h for h in runner.hooks if isinstance(h, SafeCheckpointHook)), None)
        if saver is None or saver.by_epoch:
            what = 'no SafeCheckpointHook to save with' if saver is None else 'epoch-based schedule: resume from ' \
                                                                             'the last epoch checkpoint'
            print_log(f'Preempted ({name}) after iteration {step}: stopping ({what}).', logger='current',
                      level=logging.WARNING)
        else:
            saver._save_checkpoint_with_step(runner, step, dict(epoch=runner.epoch, iter=step))
            print_log(f'Preempted ({name}) after iteration {step}: saved {saver.last_ckpt}; stopping. Run the same '
                      'command with --resume (or --auto-resume) to continue from this iteration.',
                      logger='current', level=logging.WARNING)
        raise Preempted(128 + signum)
