"""Every checkpoint mmengine reads goes through :func:`~mmext.checkpoint.read_checkpoint`.

mmengine reads checkpoints in one place, ``CheckpointLoader.load_checkpoint``, which picks a loader by the name's
prefix; ``Runner.resume``, ``Runner.load_checkpoint`` (``load_from``), ``init_cfg=dict(type='Pretrained')``,
``load_checkpoint()`` and the inferencers' ``weights=`` (``MMSegInferencer``, mmengine's ``BaseInferencer``) all
end there. :func:`install_read_boundary` registers mmext's reader for every prefix mmengine knows (local files,
``http(s)://``, ``open-mmlab://``, ``torchvision://``, ``mmcls://``, ``s3://``, ...) and for ``trusted://``, so
each of those reads is weights-only, CRC-checked and has its config texts reduced to data before upstream code
sees it. A prefix mmext cannot read itself (``pavi://``) keeps its upstream loader, whose result is stripped the
same way. Called once when :mod:`mmext.checkpoint` is imported.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mmengine.logging import print_log

from mmext.compat.upstream import checkpoint_loader_schemes, process_mmcls_checkpoint

from .config_text import strip_executable_configs
from .io import TRUSTED_PREFIX, load_trusted_checkpoint, read_checkpoint

# Prefixes (mmengine's regular expressions) whose names read_checkpoint resolves itself.
_READ_HERE = ('', 'http://', 'https://', 'open-mmlab://', 'openmmlab://', 'torchvision://', 'modelzoo://',
              r'(\S+\:)?s3://', r'(\S+\:)?petrel://')


def load_from_boundary(filename: str, map_location: Any = None) -> Any:
    """mmengine loader for every scheme :func:`read_checkpoint` understands."""
    return read_checkpoint(filename, map_location)


def load_from_mmcls_boundary(filename: str, map_location: Any = None) -> Any:
    """``mmcls://`` through :func:`read_checkpoint`, then mmengine's key renaming for mmpretrain."""
    return process_mmcls_checkpoint(read_checkpoint(filename, map_location))


def load_from_trusted(filename: str, map_location: Any = None) -> Any:
    """``trusted://<local path>``: the user's own file, unpickled in full (see :func:`load_trusted_checkpoint`)."""
    return load_trusted_checkpoint(filename[len(TRUSTED_PREFIX):], map_location)


def _stripping(loader: Callable) -> Callable:
    def load(filename: str, map_location: Any = None) -> Any:
        checkpoint = loader(filename, map_location)
        for note in strip_executable_configs(checkpoint, filename):
            print_log(f'{note}; nothing from it was executed.', logger='current', level=logging.WARNING)
        return checkpoint
    load.__name__ = loader.__name__  # mmengine logs the loader's name
    load.mmext_boundary = True
    return load


for _loader in (load_from_boundary, load_from_mmcls_boundary, load_from_trusted):
    _loader.mmext_boundary = True


def install_read_boundary() -> None:
    """Register mmext's reader for every prefix mmengine's ``CheckpointLoader`` knows, and ``trusted://``.

    Idempotent. Loaders registered later by other packages are not covered; call it again after registering one.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    schemes = checkpoint_loader_schemes()
    for prefix, loader in schemes.items():
        if getattr(loader, 'mmext_boundary', False):
            continue
        if prefix in _READ_HERE:
            replacement = load_from_boundary
        elif prefix == 'mmcls://':
            replacement = load_from_mmcls_boundary
        else:
            replacement = _stripping(loader)
        CheckpointLoader.register_scheme(prefixes=prefix, loader=replacement, force=True)
    if TRUSTED_PREFIX not in schemes:
        CheckpointLoader.register_scheme(prefixes=TRUSTED_PREFIX, loader=load_from_trusted)
