"""Custom ops: the fused Inception depthwise token mixer (``torch.ops.mmext.inception_dwconv``)."""
from .token_mixer import (
    HAS_TRITON,
    fast_mixer_enabled,
    inception_dwconv,
    inception_dwconv_reference,
    set_fast_mixer,
)

__all__ = ['HAS_TRITON', 'fast_mixer_enabled', 'inception_dwconv', 'inception_dwconv_reference', 'set_fast_mixer']
