"""Checkpoint machinery that knows no model: safe reading, downloads, unwrapping, one state-dict diff, the
strict-loading report and the mmengine weights-only codec. What is specific to InceptionNeXt (arch inference,
backbone extraction, conversion, deploy folding) lives beside the backbone, in
:mod:`mmext.models.backbones.inceptionnext_weights`."""
from .errors import CheckpointError, UnsafeCheckpointError
from .hub import HF_HUB_PREFIX, resolve_hf_hub
from .io import (
    TRUSTED_PREFIX,
    check_weights_only_loadable,
    load_trusted_checkpoint,
    read_checkpoint,
    unsafe_globals,
)
from .report import LoadReport
from .state_dict import (
    WRAPPER_KEYS,
    StateDictDiff,
    check_checkpoint_fits,
    check_finite_state_dict,
    check_model_state_dict,
    diff_state_dict,
    unwrap_state_dict,
)
from .weights_only import ENCODED_TAG, from_weights_only, to_weights_only, upgrade_training_checkpoint

__all__ = ['ENCODED_TAG', 'HF_HUB_PREFIX', 'TRUSTED_PREFIX', 'WRAPPER_KEYS', 'CheckpointError', 'LoadReport',
           'StateDictDiff', 'UnsafeCheckpointError', 'check_checkpoint_fits', 'check_finite_state_dict',
           'check_model_state_dict',
           'check_weights_only_loadable', 'diff_state_dict', 'from_weights_only', 'load_trusted_checkpoint',
           'read_checkpoint', 'resolve_hf_hub', 'to_weights_only', 'unsafe_globals', 'unwrap_state_dict',
           'upgrade_training_checkpoint']
