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
* ``ms_deform_attn_forward`` / ``_backward`` (Deformable DETR, DINO, Mask2Former) run :mod:`mmext.ops.ms_deform_attn`
  (Triton kernels or ``grid_sample``), ``deform_conv_*`` and ``modulated_deform_conv_*`` (DCNv1/v2) torchvision's
  ``deform_conv2d`` (:mod:`mmext.ops.deform_conv`), ``psamask_*`` (PSANet) index copies (:mod:`mmext.ops.psamask`);
* every other op exists (so ``load_ext`` passes) but raises :class:`MissingMmcvOpError` when called.

When compiled mmcv is installed, its ``mmcv._ext`` is used untouched.

Two ways put it in place: the interpreter start-up hook (``mmext_startup``, installed with mmext as
``mmext-startup.pth``) answers any ``import mmcv._ext`` that nothing else answers, in every Python process, so mmseg's
and mmdet's own scripts work without importing mmext; and :func:`install_mmcv_ext_stand_in`, which ``import mmext``
calls, for processes started without the hook (``MMEXT_NO_MMCV_STANDIN=1``, ``python -S``, a source tree on
``PYTHONPATH``): it appends the hook's finder itself. Either way the stand-in is made when ``mmcv.ops`` first imports
``mmcv._ext`` (as a compiled extension would be loaded then), so ``import mmext`` imports neither mmcv's ops nor
torchvision. The hook loads this file by location, before the mmext package is imported, so it imports nothing
from mmext at module level.

mmengine's ``mmcv_full_available()`` asks ``pkgutil.find_loader('mmcv._ext')``; the stand-in's ``__spec__`` has no
loader, so that answers ``False``: full mmcv is *not* available, and mmengine keeps away from ``mmcv.ops``'
``SyncBatchNorm``, which the stand-in cannot run (one side effect: mmengine's optimizer constructor then ignores
``paramwise_cfg.dcn_offset_lr_mult``, which it applies only when it sees compiled mmcv). Asked before anything
imported ``mmcv._ext``, it finds the finder's loader and answers ``True``; mmengine's and mmseg's callers then import
``mmcv.ops``, which loads the stand-in, and every later answer is ``False``.
"""
from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Callable

import torch
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


def ms_deform_attn_forward(value: Tensor, value_spatial_shapes: Tensor, value_level_start_index: Tensor,
                           sampling_locations: Tensor, attention_weights: Tensor, im2col_step: int) -> Tensor:
    """mmcv's ``ext_module.ms_deform_attn_forward``: multi-scale deformable attention's output.

    Runs :func:`mmext.ops.ms_deform_attn.ms_deform_attn_forward` (Triton kernels where they are measured faster,
    else ``grid_sample``); fp32, fp16 and bf16. ``im2col_step`` is mmcv's CUDA batching knob and changes nothing.
    """
    from mmext.ops import ms_deform_attn as op  # at call time: this file is loaded before the mmext package

    return op.ms_deform_attn_forward(value, value_spatial_shapes, value_level_start_index, sampling_locations,
                                     attention_weights)


def ms_deform_attn_backward(value: Tensor, value_spatial_shapes: Tensor, value_level_start_index: Tensor,
                            sampling_locations: Tensor, attention_weights: Tensor, grad_output: Tensor,
                            grad_value: Tensor, grad_sampling_loc: Tensor, grad_attn_weight: Tensor,
                            im2col_step: int) -> None:
    """mmcv's ``ext_module.ms_deform_attn_backward``: adds the gradients into ``grad_value``,
    ``grad_sampling_loc`` and ``grad_attn_weight`` (zero-initialised by the caller), as mmcv's kernel does."""
    from mmext.ops import ms_deform_attn as op

    grads = op.ms_deform_attn_backward(value, value_spatial_shapes, value_level_start_index, sampling_locations,
                                       attention_weights, grad_output)
    for buffer, grad in zip((grad_value, grad_sampling_loc, grad_attn_weight), grads):
        buffer.add_(grad.to(buffer.dtype))


def deform_conv_forward(input: Tensor, weight: Tensor, offset: Tensor, output: Tensor, columns: Tensor,
                        ones: Tensor, kW: int, kH: int, dW: int, dH: int, padW: int, padH: int, dilationW: int,
                        dilationH: int, group: int, deformable_group: int, im2col_step: int) -> None:
    """mmcv's ``ext_module.deform_conv_forward`` (DCNv1): writes the output into ``output``, on torchvision's
    ``deform_conv2d``. ``columns``/``ones`` are mmcv's scratch buffers and ``im2col_step`` its batching knob."""
    from mmext.ops import deform_conv as op

    output.copy_(op.deform_conv_forward(input, weight, offset, stride=(dH, dW), padding=(padH, padW),
                                        dilation=(dilationH, dilationW), group=group,
                                        deformable_group=deformable_group))


def deform_conv_backward_input(input: Tensor, offset: Tensor, gradOutput: Tensor, gradInput: Tensor,
                               gradOffset: Tensor, weight: Tensor, columns: Tensor, kW: int, kH: int, dW: int,
                               dH: int, padW: int, padH: int, dilationW: int, dilationH: int, group: int,
                               deformable_group: int, im2col_step: int) -> None:
    """mmcv's ``ext_module.deform_conv_backward_input``: adds the input and offset gradients into ``gradInput``
    and ``gradOffset``."""
    from mmext.ops import deform_conv as op

    grads = op.deform_conv_backward(input, weight, offset, gradOutput, needs=('input', 'offset'), stride=(dH, dW),
                                    padding=(padH, padW), dilation=(dilationH, dilationW), group=group,
                                    deformable_group=deformable_group)
    gradInput.add_(grads['input'])
    gradOffset.add_(grads['offset'])


def deform_conv_backward_parameters(input: Tensor, offset: Tensor, gradOutput: Tensor, gradWeight: Tensor,
                                    columns: Tensor, ones: Tensor, kW: int, kH: int, dW: int, dH: int, padW: int,
                                    padH: int, dilationW: int, dilationH: int, group: int, deformable_group: int,
                                    scale: float, im2col_step: int) -> None:
    """mmcv's ``ext_module.deform_conv_backward_parameters``: ``gradWeight += scale * dL/dweight``."""
    from mmext.ops import deform_conv as op

    weight = gradWeight.new_zeros(gradWeight.shape)  # the gradient w.r.t. the weight does not depend on it
    grads = op.deform_conv_backward(input, weight, offset, gradOutput, needs=('weight',), stride=(dH, dW),
                                    padding=(padH, padW), dilation=(dilationH, dilationW), group=group,
                                    deformable_group=deformable_group)
    gradWeight.add_(grads['weight'], alpha=scale)


def modulated_deform_conv_forward(input: Tensor, weight: Tensor, bias: Tensor, ones: Tensor, offset: Tensor,
                                  mask: Tensor, output: Tensor, columns: Tensor, kernel_h: int, kernel_w: int,
                                  stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int,
                                  dilation_w: int, group: int, deformable_group: int, with_bias: bool) -> None:
    """mmcv's ``ext_module.modulated_deform_conv_forward`` (DCNv2): writes the output into ``output``."""
    from mmext.ops import deform_conv as op

    output.copy_(op.deform_conv_forward(input, weight, offset, mask, bias if with_bias else None,
                                        stride=(stride_h, stride_w), padding=(pad_h, pad_w),
                                        dilation=(dilation_h, dilation_w), group=group,
                                        deformable_group=deformable_group))


def modulated_deform_conv_backward(input: Tensor, weight: Tensor, bias: Tensor, ones: Tensor, offset: Tensor,
                                   mask: Tensor, columns: Tensor, grad_input: Tensor, grad_weight: Tensor,
                                   grad_bias: Tensor, grad_offset: Tensor, grad_mask: Tensor, grad_output: Tensor,
                                   kernel_h: int, kernel_w: int, stride_h: int, stride_w: int, pad_h: int,
                                   pad_w: int, dilation_h: int, dilation_w: int, group: int, deformable_group: int,
                                   with_bias: bool) -> None:
    """mmcv's ``ext_module.modulated_deform_conv_backward``: adds every gradient into its ``grad_*`` buffer
    (``grad_bias`` only ``with_bias``)."""
    from mmext.ops import deform_conv as op

    needs = ('input', 'weight', 'offset', 'mask') + (('bias',) if with_bias else ())
    grads = op.deform_conv_backward(input, weight, offset, grad_output, mask, bias if with_bias else None,
                                    needs=needs, stride=(stride_h, stride_w), padding=(pad_h, pad_w),
                                    dilation=(dilation_h, dilation_w), group=group, deformable_group=deformable_group)
    for name, buffer in zip(needs, (grad_input, grad_weight, grad_offset, grad_mask, grad_bias)):
        buffer.add_(grads[name])


def psamask_forward(input: Tensor, output: Tensor, psa_type: int, num_: int, h_feature: int, w_feature: int,
                    h_mask: int, w_mask: int, half_h_mask: int, half_w_mask: int) -> None:
    """mmcv's ``ext_module.psamask_forward`` (PSANet): writes the ``(N, H*W, H, W)`` attention map into
    ``output``."""
    from mmext.ops import psamask as op

    output.copy_(op.psamask_forward(input, psa_type, h_mask, w_mask, half_h_mask, half_w_mask))


def psamask_backward(grad_output: Tensor, grad_input: Tensor, psa_type: int, num_: int, h_feature: int,
                     w_feature: int, h_mask: int, w_mask: int, half_h_mask: int, half_w_mask: int) -> None:
    """mmcv's ``ext_module.psamask_backward``: writes the input gradient into ``grad_input``."""
    from mmext.ops import psamask as op

    grad_input.copy_(op.psamask_backward(grad_output, psa_type, h_mask, w_mask, half_h_mask, half_w_mask))


PROVIDED_OPS: dict[str, Callable] = {
    'nms': nms,
    'roi_align_forward': roi_align_forward,
    'roi_align_backward': roi_align_backward,
    'sigmoid_focal_loss_forward': sigmoid_focal_loss_forward,
    'sigmoid_focal_loss_backward': sigmoid_focal_loss_backward,
    'ms_deform_attn_forward': ms_deform_attn_forward,
    'ms_deform_attn_backward': ms_deform_attn_backward,
    'deform_conv_forward': deform_conv_forward,
    'deform_conv_backward_input': deform_conv_backward_input,
    'deform_conv_backward_parameters': deform_conv_backward_parameters,
    'modulated_deform_conv_forward': modulated_deform_conv_forward,
    'modulated_deform_conv_backward': modulated_deform_conv_backward,
    'psamask_forward': psamask_forward,
    'psamask_backward': psamask_backward,
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
    """A new ``mmcv._ext`` stand-in module (not yet in ``sys.modules``); its ``__spec__`` has no loader.

    Imports torchvision, which registers the ``torch.ops.torchvision`` kernels the ops call: here, when ``mmcv.ops``
    is imported, rather than at the first call, which may come inside a traced forward where importing fails.
    """
    import torchvision  # noqa: F401

    module = _StandInExt('mmcv._ext', __doc__)
    module.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
    module.__dict__.update(PROVIDED_OPS)
    return module


def install_mmcv_ext_stand_in() -> bool:
    """Make ``import mmcv._ext`` load the stand-in when no compiled ``mmcv._ext`` is found; whether it had to act.

    Appends the start-up hook's finder (:class:`mmext_startup.MmcvExtStandInFinder`, asked last, so compiled mmcv
    wins) to ``sys.meta_path`` unless it is there already, whatever ``MMEXT_NO_MMCV_STANDIN`` says. Must run before
    ``mmcv.ops`` (hence mmseg/mmdet models) is imported; ``import mmext`` calls it. It imports nothing: the stand-in
    is made on the first ``import mmcv._ext``. Returns False once ``mmcv._ext`` is imported (whichever it is).
    """
    if 'mmcv._ext' in sys.modules:
        return False
    import mmext_startup

    return mmext_startup.install(honour_env=False)
