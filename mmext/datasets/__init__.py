"""Datasets and loading transforms that fail on bad data with an error naming the file.

They subclass mmseg's, whose import costs about a second, so they load on first access (``from mmext.datasets
import CheckedADE20KDataset``) or first registry lookup (:data:`mmext.registry.LAZY_LOCATIONS`): importing
:mod:`mmext.datasets.preflight` stays light.
"""
import importlib

#: Public name -> the submodule defining it.
_SUBMODULES = {'BadSampleError': 'decoding', 'CheckedADE20KDataset': 'ade20k',
               'CheckedLoadAnnotations': 'transforms', 'CheckedLoadImageFromFile': 'transforms'}

__all__ = sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return getattr(importlib.import_module(f'{__name__}.{_SUBMODULES[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
