"""mmext: InceptionNeXt for OpenMMLab dense prediction.

Importing this package makes mmseg and mmdet importable on mmcv-lite (see :mod:`mmext.compat`), then registers
mmext's components in OpenMMLab's registries while importing no more than torch, mmengine and mmcv: models, hooks
and optimizer constructors at once, the components that subclass mmseg's on first lookup (see :mod:`mmext.registry`).
Other subpackages (``mmext.apis``, ``mmext.ops``, ...) load when imported.
"""
from .compat import install_mmcv_ext_stand_in
from .version import __version__

install_mmcv_ext_stand_in()

from . import engine, models  # noqa: E402,F401  (registers components; must follow the stand-in)
from .registry import add_lazy_locations  # noqa: E402

add_lazy_locations()

__all__ = ['__version__']
