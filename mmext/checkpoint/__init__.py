"""Checkpoint machinery that knows no model: the one read boundary (safe reading, archive CRC, config texts
reduced to data; mmengine's loaders routed through it), downloads, unwrapping, the fit rule, the choice of the
checkpoint to resume, the strict-loading report and the mmengine weights-only codec. What is specific to
InceptionNeXt (arch inference, backbone extraction, conversion, deploy folding) lives beside the backbone, in
:mod:`mmext.models.backbones.inceptionnext_weights`."""
from .config_text import literal_config_text, strip_executable_configs
from .errors import CheckpointError, UnsafeCheckpointError
from .hub import HF_HUB_PREFIX, resolve_hf_hub
from .io import (
    TRUSTED_PREFIX,
    check_weights_only_loadable,
    load_trusted_checkpoint,
    read_checkpoint,
    unsafe_globals,
    verify_archive,
)
from .mmengine_loader import install_read_boundary
from .report import LoadReport
from .resume import (
    ResumeChoice,
    check_resumable,
    checkpoint_candidates,
    checkpoint_folders,
    find_resumable_checkpoint,
)
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
           'ResumeChoice', 'StateDictDiff', 'UnsafeCheckpointError', 'check_checkpoint_fits',
           'check_finite_state_dict', 'check_model_state_dict', 'check_resumable', 'check_weights_only_loadable',
           'checkpoint_candidates', 'checkpoint_folders', 'diff_state_dict', 'find_resumable_checkpoint',
           'from_weights_only', 'install_read_boundary', 'literal_config_text', 'load_trusted_checkpoint',
           'read_checkpoint', 'resolve_hf_hub', 'strip_executable_configs', 'to_weights_only', 'unsafe_globals',
           'unwrap_state_dict', 'upgrade_training_checkpoint', 'verify_archive']

install_read_boundary()  # every checkpoint mmengine reads goes through read_checkpoint from here on
