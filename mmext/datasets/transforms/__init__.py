from .loading import BadSampleError, CheckedLoadAnnotations, CheckedLoadImageFromFile

__all__ = ['BadSampleError', 'CheckedLoadAnnotations', 'CheckedLoadImageFromFile']
