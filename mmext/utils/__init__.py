from .checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    convert_checkpoint,
    load_backbone_checkpoint,
    read_checkpoint,
    upgrade_training_checkpoint,
)

__all__ = ['CheckpointError', 'UnsafeCheckpointError', 'convert_checkpoint', 'load_backbone_checkpoint',
           'read_checkpoint', 'upgrade_training_checkpoint']
