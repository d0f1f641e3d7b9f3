"""Every private name of an upstream package that mmext relies on, in one place.

Each accessor names the upstream version it was checked against; ``tests/compat/test_upstream.py`` calls each
one on the installed stack, so an upgrade that renames or removes one fails there, loudly, rather than in some
distant place. Where a public API exists mmext uses it instead (e.g. ``HistoryBuffer.data`` and its constructor,
``torch.serialization.get_unsafe_globals_in_checkpoint``, ``segmentor(inputs, mode='tensor')``).
"""
from __future__ import annotations

from typing import Any

import torch


def mmengine_home() -> str:
    """mmengine's cache folder, where ``open-mmlab://`` names with relative paths resolve.

    mmengine 0.10.7: ``mmengine.runner.checkpoint._get_mmengine_home`` (no public equivalent).
    """
    from mmengine.runner import checkpoint as mm_checkpoint

    return mm_checkpoint._get_mmengine_home()


def runner_checkpoint_request(runner: Any) -> tuple[bool, bool, str | None]:
    """``(already_loaded, resume, load_from)`` as mmengine's Runner will act on them in ``load_or_resume``.

    mmengine 0.10.7: ``Runner._has_loaded``, ``Runner._resume``, ``Runner._load_from`` (set from the config's
    ``resume`` / ``load_from``; the Runner exposes no public reader).
    """
    return bool(runner._has_loaded), bool(runner._resume), runner._load_from


def set_runner_checkpoint_request(runner: Any, resume: bool, load_from: str | None) -> None:
    """Change what ``Runner.load_or_resume`` will load (same attributes as :func:`runner_checkpoint_request`)."""
    runner._resume, runner._load_from = resume, load_from


def runner_is_training(runner: Any) -> bool:
    """Whether the Runner is inside ``train()`` (its train loop is built) rather than ``test()`` / ``val()``.

    mmengine 0.10.7: ``Runner._train_loop`` is a ``BaseLoop`` once ``train()`` has built it, else the config dict
    or ``None`` (the public ``train_loop`` property would build it).
    """
    from mmengine.runner import BaseLoop
    return isinstance(runner._train_loop, BaseLoop)


def stop_dataloader_workers(runner: Any) -> int:
    """Stop the worker processes of the DataLoaders of the Runner's built loops; returns how many iterators held
    live workers. A loader iterated again afterwards starts new workers.

    Once ``train()`` / ``test()`` returns, the loops keep their workers' iterators (persistent workers, and the
    train loop's endless iterator) inside reference cycles. The garbage collector then finalizes the iterators'
    queues before the iterators, so their shutdown never reaches the workers and waits out torch's 5 s join
    timeout per worker, in whatever code of the caller's process collects them next.

    mmengine 0.10.7: ``Runner._train_loop`` / ``_val_loop`` / ``_test_loop`` (``BaseLoop`` once built; the public
    properties would build them), ``IterBasedTrainLoop.dataloader_iterator._iterator``. torch 2.14:
    ``DataLoader._iterator`` (persistent workers' iterator), ``_MultiProcessingDataLoaderIter._shutdown_workers``.
    """
    from mmengine.runner import BaseLoop
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    stopped = 0
    for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
        if not isinstance(loop, BaseLoop):
            continue
        holders = [loop.dataloader, getattr(loop, 'dataloader_iterator', None)]
        for holder in holders:
            iterator = getattr(holder, '_iterator', None)
            if isinstance(iterator, _MultiProcessingDataLoaderIter) and not iterator._shutdown:
                iterator._shutdown_workers()
                stopped += 1
        loop.dataloader._iterator = None  # a later iteration starts new workers instead of using stopped ones
    return stopped


def roi_align_backward(grad_output: torch.Tensor, rois: torch.Tensor, spatial_scale: float, pooled_height: int,
                       pooled_width: int, batch: int, channels: int, height: int, width: int, sampling_ratio: int,
                       aligned: bool) -> torch.Tensor:
    """torchvision's RoIAlign backward kernel, which mmcv's ``roi_align_backward`` signature needs directly.

    torchvision 0.29.1: ``torch.ops.torchvision._roi_align_backward`` (the public ``roi_align`` only offers the
    backward through autograd, which would need the forward's input).
    """
    return torch.ops.torchvision._roi_align_backward(grad_output, rois, spatial_scale, pooled_height, pooled_width,
                                                     batch, channels, height, width, sampling_ratio, aligned)


def batch_norm_base() -> type:
    """The common base class of ``BatchNorm1d/2d/3d`` and ``SyncBatchNorm``, for ``isinstance`` checks (``norm_eval``,
    BN folding), as mmseg's own backbones use it.

    torch 2.14: ``torch.nn.modules.batchnorm._BatchNorm`` (no public alias).
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    return _BatchNorm


def cpu_has(feature: str) -> bool:
    """Whether this CPU has ``feature``: ``'avx512_bf16'``, ``'amx_tile'`` (AMX, with its bf16 tiles) or
    ``'amx_fp16'``, as PyTorch's CPU kernels detect it.

    torch 2.14: ``torch.cpu._is_avx512_bf16_supported``, ``_is_amx_tile_supported``, ``_is_amx_fp16_supported``
    (``torch.backends.cpu.get_cpu_capability()`` names only the vector ISA).
    """
    return bool(getattr(torch.cpu, f'_is_{feature}_supported')())


def checkpoint_loader_schemes() -> dict:
    """mmengine's ``CheckpointLoader`` table: prefix (a regular expression) -> loader function.

    mmengine 0.10.7: ``CheckpointLoader._schemes`` (``register_scheme`` adds entries; nothing lists them).
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    return dict(CheckpointLoader._schemes)


def process_mmcls_checkpoint(checkpoint: Any) -> Any:
    """mmengine's renaming of an ``mmcls://`` checkpoint's keys to mmpretrain's layout.

    mmengine 0.10.7: ``mmengine.runner.checkpoint._process_mmcls_checkpoint``.
    """
    from mmengine.runner import checkpoint as mm_checkpoint

    return mm_checkpoint._process_mmcls_checkpoint(checkpoint)


def add_registry_locations(registry: Any, locations: list[str]) -> None:
    """Make ``registry`` import ``locations`` on its first lookup, as if given to its constructor (``locations=``);
    at once if it has looked a name up already.

    mmengine 0.10.7: ``Registry._locations`` / ``Registry._imported`` (read by ``Registry.import_from_location``,
    which ``get`` calls; no public setter). A new list: mmengine's default ``locations`` is one list shared by every
    registry built without it.
    """
    import importlib

    new = [location for location in locations if location not in registry._locations]
    registry._locations = [*registry._locations, *new]
    if registry._imported:
        for location in new:
            importlib.import_module(location)


def triton_sum_combine() -> Any:
    """The combine function of ``tl.sum``, for ``tl.reduce(x, axis, triton_sum_combine())`` in a kernel: unlike
    ``tl.sum`` it works whether or not Triton was imported in interpreter mode, and the interpreter runs it as one
    numpy sum (any other combine function lane by lane).

    Triton 3.8: ``triton.language.standard._sum_combine`` (the interpreter dispatches on its identity).
    """
    import triton.language as tl

    return tl.standard._sum_combine
