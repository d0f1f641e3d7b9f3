"""mmext: InceptionNeXt for OpenMMLab dense prediction.

Importing this package first makes mmseg and mmdet importable on mmcv-lite (see :mod:`mmext.compat`), then
registers mmext's components in OpenMMLab's registries.
"""
from .compat import install_mmcv_ext_stand_in
from .version import __version__

install_mmcv_ext_stand_in()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registers components; must follow the stand-in)

__all__ = ['__version__']
