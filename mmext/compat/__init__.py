from .mmcv_ext import install_mmcv_ext_stand_in

__all__ = ['install_mmcv_ext_stand_in']
