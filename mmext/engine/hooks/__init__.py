from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .preflight_data_check_hook import PreflightDataCheckHook
from .safe_checkpoint_hook import ResumeCheckHook, SafeCheckpointHook, find_resumable_checkpoint
from .weights_only_checkpoint_hook import WeightsOnlyCheckpointHook, ensure_weights_only_hook

#: The hooks every training run gets (the configs' bases list them; tools/train.py adds missing ones).
TRAINING_HOOKS = ('WeightsOnlyCheckpointHook', 'SafeCheckpointHook', 'ResumeCheckHook', 'NonFiniteLossHook',
                  'PreflightDataCheckHook')

__all__ = ['TRAINING_HOOKS', 'NonFiniteLossError', 'NonFiniteLossHook', 'PreflightDataCheckHook', 'ResumeCheckHook',
           'SafeCheckpointHook', 'WeightsOnlyCheckpointHook', 'ensure_training_hooks', 'ensure_weights_only_hook',
           'find_resumable_checkpoint']


def ensure_training_hooks(cfg):
    """Append each of :data:`TRAINING_HOOKS` missing from ``cfg.custom_hooks`` (a new list; ``cfg`` returned)."""
    hooks = list(cfg.get('custom_hooks') or [])
    present = {str(h.get('type') if isinstance(h, dict) else type(h).__name__).rsplit('.', 1)[-1] for h in hooks}
    cfg['custom_hooks'] = hooks + [dict(type=name) for name in TRAINING_HOOKS if name not in present]
    return cfg
