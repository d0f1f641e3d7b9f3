from .inceptionnext import InceptionNeXt

__all__ = ['InceptionNeXt']
