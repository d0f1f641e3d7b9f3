"""Placeholder: the torchvision-backed stand-in for ``mmcv._ext`` is being written."""


def install_mmcv_ext_stand_in() -> bool:
    return False
