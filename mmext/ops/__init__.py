"""Custom ops: the fused Inception depthwise token mixer (``torch.ops.mmext.inception_dwconv``), its per-device
autotuner, and the mmcv ops mmext provides without compiled mmcv (multi-scale deformable attention, DCN, PSAMask)."""
from .autotune import Autotuner, autotune_table, get_autotuner, set_autotuner
from .mixer_configs import TileConfig, tuning_space
from .token_mixer import (
    HAS_TRITON,
    fast_mixer_enabled,
    inception_dwconv,
    inception_dwconv_reference,
    set_fast_mixer,
)

__all__ = ['HAS_TRITON', 'Autotuner', 'TileConfig', 'autotune_table', 'fast_mixer_enabled', 'get_autotuner',
           'inception_dwconv', 'inception_dwconv_reference', 'set_autotuner', 'set_fast_mixer', 'tuning_space']
