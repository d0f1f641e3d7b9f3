"""mmext's interpreter start-up hook: ``import mmcv._ext`` works on mmcv-lite in every Python process.

``mmext-startup.pth`` (installed beside this module in site-packages, by ``pip install .`` and ``pip install -e .``
alike) imports this module when the interpreter starts. It only appends :class:`MmcvExtStandInFinder` to
``sys.meta_path`` -- no torch, no mmcv, no mmext is imported here. The finder comes *last*, so a compiled
``mmcv._ext`` (full mmcv) is always found first and the finder is never asked. Only when ``import mmcv._ext`` finds
nothing else does it load mmext's stand-in (``mmext/compat/mmcv_ext.py``, by file location, so that the mmext
package itself is not imported in the middle of mmseg's own import).

Set ``MMEXT_NO_MMCV_STANDIN=1`` to switch the hook off (``import mmext`` still installs this finder for itself).
Uninstalling mmext removes the ``.pth`` file and this module, and with them the hook.
"""
import os
import sys

DISABLE_ENV = 'MMEXT_NO_MMCV_STANDIN'
TARGET = 'mmcv._ext'


class MmcvExtStandInFinder:
    """Answers ``import mmcv._ext`` with mmext's stand-in when no other finder (compiled mmcv) has one."""

    mmext_stand_in = True  # lets mmext.compat tell this loader from a compiled mmcv._ext

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != TARGET:
            return None
        import importlib.machinery
        import importlib.util

        mmext = importlib.util.find_spec('mmext')  # locates the package without importing it
        if mmext is None or not mmext.submodule_search_locations:
            return None  # mmext is gone (uninstalled, or a stale hook): behave as if the hook were not there
        return importlib.machinery.ModuleSpec(name, cls)

    @staticmethod
    def create_module(spec):
        return _stand_in_module().make_stand_in()

    @staticmethod
    def exec_module(module):
        import importlib.machinery

        # A spec without a loader, as for a module created at run time: mmengine's ``mmcv_full_available()`` asks
        # ``pkgutil.find_loader('mmcv._ext')`` and must answer False (no compiled ops) once the stand-in is in.
        module.__spec__ = importlib.machinery.ModuleSpec(TARGET, loader=None)


def _stand_in_module():
    """``mmext.compat.mmcv_ext``, imported by file location if ``mmext`` itself is not imported yet."""
    name = 'mmext.compat.mmcv_ext'
    if name in sys.modules:
        return sys.modules[name]
    import importlib.util

    root = importlib.util.find_spec('mmext').submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, 'compat', 'mmcv_ext.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # one copy: a later ``import mmext`` reuses it (same MissingMmcvOpError class)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def install(honour_env: bool = True) -> bool:
    """Append the finder to ``sys.meta_path`` once; whether it did.

    ``MMEXT_NO_MMCV_STANDIN`` set means no, unless ``honour_env=False``: ``import mmext`` installs it for itself
    (:func:`mmext.compat.install_mmcv_ext_stand_in`).
    """
    if honour_env and os.environ.get(DISABLE_ENV, '') not in ('', '0'):
        return False
    if any(getattr(finder, 'mmext_stand_in', False) for finder in sys.meta_path):
        return False
    sys.meta_path.append(MmcvExtStandInFinder)
    return True


install()
