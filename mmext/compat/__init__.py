"""Compatibility with the OpenMMLab stack as pip installs it (mmcv-lite: no compiled ops)."""
from . import mmcv_ext  # noqa: F401  (binds the submodule even when the start-up hook loaded it first)
from .mmcv_ext import (
    PROVIDED_OPS,
    MissingMmcvOpError,
    install_mmcv_ext_stand_in,
    make_stand_in,
    mmcv_ext_stand_in_installed,
)

__all__ = ['PROVIDED_OPS', 'MissingMmcvOpError', 'install_mmcv_ext_stand_in', 'make_stand_in',
           'mmcv_ext_stand_in_installed']
