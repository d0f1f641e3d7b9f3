"""Datasets and loading transforms that fail on bad data with an error naming the file."""
from .ade20k import CheckedADE20KDataset
from .transforms import BadSampleError, CheckedLoadAnnotations, CheckedLoadImageFromFile

__all__ = ['BadSampleError', 'CheckedADE20KDataset', 'CheckedLoadAnnotations', 'CheckedLoadImageFromFile']
