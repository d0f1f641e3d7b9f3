from .backbones import InceptionNeXt, InceptionNeXtIsotropic

__all__ = ['InceptionNeXt', 'InceptionNeXtIsotropic']
