from .weights_only_checkpoint_hook import WeightsOnlyCheckpointHook, ensure_weights_only_hook

__all__ = ['WeightsOnlyCheckpointHook', 'ensure_weights_only_hook']
