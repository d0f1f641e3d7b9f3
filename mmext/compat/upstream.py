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
