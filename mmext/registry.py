"""Where mmext's components enter OpenMMLab's registries.

Components are registered in mmengine's root registries. Every downstream scope (``mmseg``, ``mmdet``, ...)
falls back to its root when a name is not its own, so one registration makes ``type='InceptionNeXt'`` build under
whichever default scope a config sets, once ``mmext`` is imported (``custom_imports=dict(imports=['mmext'])``).
"""
from mmengine.registry import DATASETS, HOOKS, METRICS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, TRANSFORMS

__all__ = ['DATASETS', 'HOOKS', 'METRICS', 'MODELS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'TRANSFORMS']
