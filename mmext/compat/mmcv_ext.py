"""A stand-in for mmcv's compiled ops (``mmcv._ext``) when only mmcv-lite is installed.

mmseg 1.x and mmdet 3.x import :mod:`mmcv.ops` at import time, and every ``mmcv.ops`` file starts with
``ext_loader.load_ext('_ext', [names])``, which imports ``mmcv._ext`` and only checks that the names exist. PyPI has
no mmcv 2.x wheel with compiled ops, so on mmcv-lite those imports fail with ``No module named 'mmcv._ext'``.

The stand-in is a module under that name (built by :func:`make_stand_in`) in which

* ``nms``, ``roi_align_forward`` and ``roi_align_backward`` run torchvision's kernels (``torch.ops.torchvision``)
  with mmcv's calling conventions (keyword names, in-place outputs, ``offset``, ``pool_mode``), which is what
  RetinaNet, Faster/Mask R-CNN and mmseg's heads need;
* ``sigmoid_focal_loss_forward`` / ``_backward`` are written in PyTorch after mmcv's kernel (mmdet's ``FocalLoss``
  calls them for CUDA tensors; on the CPU it has its own PyTorch path);
* every other op exists (so ``load_ext`` passes) but raises :class:`MissingMmcvOpError` when called.

When compiled mmcv is installed, its ``mmcv._ext`` is used untouched.

Two ways put it in place: the interpreter start-up hook (``mmext_startup``, installed with mmext as
``mmext-startup.pth``) answers any ``import mmcv._ext`` that nothing else answers, in every Python process, so mmseg's
and mmdet's own scripts work without importing mmext; and :func:`install_mmcv_ext_stand_in`, which ``import mmext``
calls, for processes started without the hook (``MMEXT_NO_MMCV_STANDIN=1``, ``python -S``, a source tree on
``PYTHONPATH``). The hook loads this file by location, before the mmext package is imported, so it imports nothing
from mmext at module level.

mmengine's ``mmcv_full_available()`` asks ``pkgutil.find_loader('mmcv._ext')``; the stand-in's ``__spec__`` has no
loader, so that answers ``False``: full mmcv is *not* available, and mmengine keeps away from ``mmcv.ops``'
``SyncBatchNorm`` and deformable convs, which the stand-in cannot run.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision; imported lazily it fails inside a traced forward)
from torch import Tensor

__all__ = ['MissingMmcvOpError', 'install_mmcv_ext_stand_in', 'make_stand_in', 'mmcv_ext_stand_in_installed',
           'PROVIDED_OPS']

INSTALL_HINT = ('Install full mmcv 2.1.0 with compiled ops: `mim install mmcv==2.1.0`, or `pip install mmcv==2.1.0 '
                '-f https://download.openmmlab.com/mmcv/dist/<cuda>/<torch>/index.html` for a CUDA/torch pair '
                'OpenMMLab publishes wheels for, or build it from source '
                '(`pip install --no-build-isolation mmcv==2.1.0`: PyPI has only the sdist; newer torch needs this).')


class MissingMmcvOpError(RuntimeError):
    """An mmcv op that needs compiled mmcv was called while only mmext's mmcv-lite stand-in is installed."""


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int) -> Tensor:
    """mmcv's ``ext_module.nms``: indices of kept boxes, by decreasing score.

    ``offset=1`` is mmcv's legacy pixel convention (width = x2 - x1 + 1); moving x2/y2 by one pixel gives exactly
    mmcv's areas and intersections, so torchvision's kernel serves both.
    """
    if offset not in (0, 1):
        raise ValueError(f'mmcv nms: offset must be 0 or 1, got {offset!r}')
    if offset == 1:
        boxes = torch.cat([boxes[:, :2], boxes[:, 2:] + 1], dim=1)
    return torch.ops.torchvision.nms(boxes, scores.to(boxes.dtype), float(iou_threshold))


def _check_avg_pool(pool_mode: int) -> None:
    # mmcv's RoIAlignFunction encodes pool_mode 'max' as 0 and 'avg' as 1; torchvision only averages.
    if pool_mode != 1:
        raise MissingMmcvOpError(f"mmcv roi_align with pool_mode='max' needs compiled mmcv: mmext's mmcv-lite "
                                 f"stand-in runs torchvision's RoIAlign, which only averages (pool_mode='avg'). "
                                 f'{INSTALL_HINT}')


def roi_align_forward(input: Tensor, rois: Tensor, output: Tensor, argmax_y: Tensor, argmax_x: Tensor,
                      aligned_height: int, aligned_width: int, spatial_scale: float, sampling_ratio: int,
                      pool_mode: int, aligned: bool) -> None:
    """mmcv's ``ext_module.roi_align_forward``: writes the pooled features into ``output``.

    ``rois`` rows are ``(batch index, x1, y1, x2, y2)``; ``sampling_ratio <= 0`` samples ``ceil(roi size / bin
    count)`` points per bin, ``aligned=True`` shifts boxes by half a pixel, as in mmcv and torchvision alike.
    """
    _check_avg_pool(pool_mode)
    output.copy_(torch.ops.torchvision.roi_align(input, rois.to(input.dtype), float(spatial_scale),
                                                 int(aligned_height), int(aligned_width), int(sampling_ratio),
                                                 bool(aligned)))


def roi_align_backward(grad_output: Tensor, rois: Tensor, argmax_y: Tensor, argmax_x: Tensor, grad_input: Tensor,
                       aligned_height: int, aligned_width: int, spatial_scale: float, sampling_ratio: int,
                       pool_mode: int, aligned: bool) -> None:
    """mmcv's ``ext_module.roi_align_backward``: writes the gradient w.r.t. the features into ``grad_input``."""
    from mmext.compat import upstream  # at call time: this file is loaded before the mmext package (see above)

    _check_avg_pool(pool_mode)
    batch, channels, height, width = grad_input.shape
    grad_input.copy_(upstream.roi_align_backward(
        grad_output, rois.to(grad_output.dtype), float(spatial_scale), int(aligned_height), int(aligned_width),
        batch, channels, height, width, int(sampling_ratio), bool(aligned)))


def _focal_loss_parts(input: Tensor, target: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sigmoid probabilities (float32 or wider), positive-class mask, per-row weights and mmcv's log floor."""
    num_classes = input.size(1)
    p = torch.sigmoid(input.float() if input.dtype in (torch.float16, torch.bfloat16) else input)
    positive = (target[:, None] == torch.arange(num_classes, device=input.device)).to(p.dtype)
    if weight.numel() == 0:
        row_weight = p.new_ones(len(target), 1)
    else:
        if bool((target >= num_classes).any()):
            raise ValueError(f'sigmoid_focal_loss: per-class weights are undefined for background rows (target == '
                             f'{num_classes}); mmcv\'s kernel reads past the weight vector there. Weight the loss '
                             'afterwards instead, as mmdet does.')
        row_weight = weight.to(p.dtype)[target][:, None]
    return p, positive, row_weight, p.new_tensor(torch.finfo(torch.float32).tiny)  # FLT_MIN, as mmcv's kernel


def sigmoid_focal_loss_forward(input: Tensor, target: Tensor, weight: Tensor, output: Tensor, gamma: float,
                               alpha: float) -> None:
    """mmcv's ``ext_module.sigmoid_focal_loss_forward``: element-wise focal loss written into ``output``.

    ``input`` is ``(N, C)`` logits, ``target`` ``(N,)`` class indices with ``C`` meaning background, ``weight``
    empty or ``(C,)`` per-class weights. mmdet's ``FocalLoss`` calls this on CUDA tensors only (on the CPU it uses
    its own PyTorch version), so this is what lets RetinaNet train on a GPU with mmcv-lite.
    """
    p, positive, row_weight, floor = _focal_loss_parts(input, target, weight)
    term_p = (1 - p).pow(gamma) * torch.log(torch.maximum(p, floor))
    term_n = p.pow(gamma) * torch.log(torch.maximum(1 - p, floor))
    loss = -alpha * positive * term_p - (1 - alpha) * (1 - positive) * term_n
    output.copy_(loss * row_weight)


def sigmoid_focal_loss_backward(input: Tensor, target: Tensor, weight: Tensor, grad_input: Tensor, gamma: float,
                                alpha: float) -> None:
    """mmcv's ``ext_module.sigmoid_focal_loss_backward``: d(element-wise loss)/d(logit) written into ``grad_input``."""
    p, positive, row_weight, floor = _focal_loss_parts(input, target, weight)
    term_p = (1 - p).pow(gamma) * (1 - p - gamma * p * torch.log(torch.maximum(p, floor)))
    term_n = p.pow(gamma) * (gamma * (1 - p) * torch.log(torch.maximum(1 - p, floor)) - p)
    grad = -alpha * positive * term_p - (1 - alpha) * (1 - positive) * term_n
    grad_input.copy_(grad * row_weight)


PROVIDED_OPS: dict[str, Callable] = {
    'nms': nms,
    'roi_align_forward': roi_align_forward,
    'roi_align_backward': roi_align_backward,
    'sigmoid_focal_loss_forward': sigmoid_focal_loss_forward,
    'sigmoid_focal_loss_backward': sigmoid_focal_loss_backward,
}


def _missing_op(name: str) -> Callable:
    def op(*args, **kwargs):
        raise MissingMmcvOpError(
            f"mmcv op '{name}' needs compiled mmcv (mmcv._ext), which mmcv-lite lacks; mmext's stand-in only "
            f"provides {', '.join(sorted(PROVIDED_OPS))} (on torchvision and PyTorch). {INSTALL_HINT}")

    op.__name__ = op.__qualname__ = name
    return op


class _StandInExt(types.ModuleType):
    """``mmcv._ext`` on mmcv-lite: the ops in :data:`PROVIDED_OPS`, and a raising function for any other name."""

    __mmext_stand_in__ = True

    def __getattr__(self, name: str) -> Callable:
        if name.startswith('__'):
            raise AttributeError(f"module 'mmcv._ext' (mmext stand-in) has no attribute {name!r}")
        return _missing_op(name)


def mmcv_ext_stand_in_installed() -> bool:
    """Whether ``mmcv._ext`` is mmext's stand-in (rather than compiled mmcv, or not imported yet)."""
    return getattr(sys.modules.get('mmcv._ext'), '__mmext_stand_in__', False)


def make_stand_in() -> types.ModuleType:
    """A new ``mmcv._ext`` stand-in module (not yet in ``sys.modules``); its ``__spec__`` has no loader."""
    module = _StandInExt('mmcv._ext', __doc__)
    module.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
    module.__dict__.update(PROVIDED_OPS)
    return module


def install_mmcv_ext_stand_in() -> bool:
    """Install the stand-in as ``mmcv._ext`` unless mmcv is absent or already has compiled ops.

    Must run before ``mmcv.ops`` (hence mmseg/mmdet models) is imported; ``import mmext`` calls it. Returns
    whether it installed the stand-in. Asking ``find_spec`` imports the ``mmcv`` package itself (not ``mmcv.ops``),
    exactly as the later real import would; the start-up hook's own answer does not count as compiled mmcv.
    """
    if 'mmcv._ext' in sys.modules or importlib.util.find_spec('mmcv') is None:
        return False
    spec = importlib.util.find_spec('mmcv._ext')
    if spec is not None and not getattr(spec.loader, 'mmext_stand_in', False):
        return False  # compiled mmcv: use it untouched
    module = make_stand_in()
    sys.modules['mmcv._ext'] = module
    sys.modules['mmcv']._ext = module  # what the import system does for a submodule
    return True
