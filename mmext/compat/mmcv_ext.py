"""A stand-in for mmcv's compiled ops (``mmcv._ext``) on mmcv-lite.

First version: every op raises a clear error. The torchvision-backed ``nms`` / ``roi_align`` come next.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types


def _missing_op(name: str):
    def op(*args, **kwargs):
        raise RuntimeError(f"mmcv op '{name}' needs compiled mmcv (mmcv._ext), which mmcv-lite lacks. Install full "
                           "mmcv 2.1 (e.g. `pip install mmcv==2.1.0 -f https://download.openmmlab.com/mmcv/dist/"
                           "<cuda>/<torch>/index.html`, or build it from source) to use it.")
    op.__name__ = name
    return op


def install_mmcv_ext_stand_in() -> bool:
    """Install the stand-in as ``mmcv._ext`` if compiled mmcv ops are absent. Returns whether it did."""
    if 'mmcv._ext' in sys.modules:
        return False
    if importlib.util.find_spec('mmcv') is None:
        return False
    if importlib.util.find_spec('mmcv._ext') is not None:
        return False
    module = types.ModuleType('mmcv._ext')
    module.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
    module.__getattr__ = lambda name: _missing_op(name) if not name.startswith('__') else (_ for _ in ()).throw(
        AttributeError(name))
    sys.modules['mmcv._ext'] = module
    return True
