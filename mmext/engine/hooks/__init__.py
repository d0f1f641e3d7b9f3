from .bounded_prediction_hook import BoundedPredictionHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .preemption_hook import Preempted, PreemptionHook
from .preflight_data_check_hook import PreflightDataCheckHook
from .resume_check_hook import NothingToTrainError, ResumeCheckHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .weights_only_checkpoint_hook import WeightsOnlyCheckpointHook

#: The safety hooks of every training run, declared here only. mmext's Runner
#: (:class:`~mmext.engine.runner.SafeRunner`, which the configs' ``runner_type`` and every tool select) adds the
#: missing ones with :func:`ensure_training_hooks`.
TRAINING_HOOKS = ('WeightsOnlyCheckpointHook', 'SafeCheckpointHook', 'ResumeCheckHook', 'PreemptionHook',
                  'NonFiniteLossHook', 'PreflightDataCheckHook', 'BoundedPredictionHook')

__all__ = ['TRAINING_HOOKS', 'BoundedPredictionHook', 'NonFiniteLossError', 'NonFiniteLossHook',
           'NothingToTrainError', 'Preempted',
           'PreemptionHook', 'PreflightDataCheckHook', 'ResumeCheckHook', 'SafeCheckpointHook',
           'WeightsOnlyCheckpointHook', 'ensure_training_hooks']


def ensure_training_hooks(cfg):
    """Append each of :data:`TRAINING_HOOKS` missing from ``cfg['custom_hooks']`` (an mmengine ``Config`` or a
    dict); the list is replaced by a new one, never mutated. A hook present with its own arguments is kept as it
    is. Returns ``cfg``."""
    hooks = list(cfg.get('custom_hooks') or [])
    present = {str(h.get('type') if isinstance(h, dict) else type(h).__name__).rsplit('.', 1)[-1] for h in hooks}
    present |= {getattr(h.get('type'), '__name__', '') for h in hooks if isinstance(h, dict)}
    cfg['custom_hooks'] = hooks + [dict(type=name) for name in TRAINING_HOOKS if name not in present]
    return cfg
