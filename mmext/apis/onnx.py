"""Export an mmseg segmentor (UperNet, Semantic FPN, ... on InceptionNeXt) to ONNX with dynamic height and width.

The graph takes what ``cv2.imread`` gives and returns what a user wants:

* input ``image``: ``(1, 3, H, W)`` float32, **BGR**, 0..255; the config's ``data_preprocessor`` (BGR->RGB,
  mean/std) is part of the graph;
* output ``logits``: ``(1, num_classes, H, W)`` float32 at the **input resolution** (the decode head's 1/4-scale
  output resized bilinearly, as mmseg's ``encode_decode`` does); ``argmax`` over dim 1 is the label map.

It is whole-image inference at whatever size is fed; resizing the image (mmseg's test pipeline scales ADE20K to
a 512 short side) or sliding windows, if a config tests that way, are the caller's.

Two modules of these heads fix the export size into the graph, which then fails or silently computes wrong values
at other sizes: adaptive average pooling (UperHead's pyramid pooling; both of torch's exporters bake its windows
in) and mmseg's ``Upsample`` (Semantic FPN's scale heads; it computes the output size through a Python float).
:func:`make_shapes_dynamic` replaces them in the exported copy by the same arithmetic written on symbolic sizes
(:class:`DynamicAdaptiveAvgPool2d`: two averaging matrices built from the runtime size).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmseg.models import BaseSegmentor
from mmseg.models.utils import Upsample as MMSegUpsample

from .inference import load_image, whole_image_logits

DEFAULT_OPSET = 18
# Smallest height / width the graph accepts: torch.export specialises a 1-pixel stride-32 feature map, so sizes
# below 2 x 32 would need their own graph.
MIN_SIZE = 64


class DynamicAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` computed as ``P_h @ x @ P_w^T`` with pooling matrices built from the input size.

    Bin ``i`` of ``out`` bins over ``n`` inputs averages ``[floor(i * n / out), ceil((i + 1) * n / out))``,
    PyTorch's definition, so the result equals ``nn.AdaptiveAvgPool2d`` up to float rounding, and the graph
    keeps ``n`` symbolic when exported.
    """

    def __init__(self, output_size: int | Sequence[int | None]) -> None:
        super().__init__()
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        if len(size) != 2 or any(s is None for s in size):
            raise ValueError(f'output_size must be an int or two ints, got {output_size!r}')
        self.output_size = size

    @staticmethod
    def pooling_matrix(in_size: int | torch.SymInt, out_size: int, like: torch.Tensor) -> torch.Tensor:
        """``(out_size, in_size)`` matrix whose rows average the input positions of each output bin."""
        bins = torch.arange(out_size, device=like.device)
        start = torch.div(bins * in_size, out_size, rounding_mode='floor')
        end = torch.div((bins + 1) * in_size + out_size - 1, out_size, rounding_mode='floor')
        pos = torch.arange(in_size, device=like.device)
        mask = ((pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])).to(like.dtype)
        return mask / mask.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p_h = self.pooling_matrix(x.shape[-2], self.output_size[0], x)
        p_w = self.pooling_matrix(x.shape[-1], self.output_size[1], x)
        return torch.matmul(torch.matmul(p_h, x), p_w.transpose(0, 1))


class IntegerScaleUpsample(nn.Module):
    """mmseg's ``Upsample`` by an integer factor, with the output size kept symbolic.

    mmseg computes ``int(size * scale_factor)`` through a float, which the exporter can only evaluate at the
    export size: Semantic FPN's scale heads then resize to the export size's feature shapes at every input size.
    ``size * factor`` in integers is the same number and stays a function of the input.
    """

    def __init__(self, scale_factor: int, mode: str, align_corners: bool | None) -> None:
        super().__init__()
        self.scale_factor, self.mode, self.align_corners = scale_factor, mode, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2] * self.scale_factor, x.shape[-1] * self.scale_factor)
        return F.interpolate(x, size=size, mode=self.mode, align_corners=self.align_corners)


def make_shapes_dynamic(module: nn.Module) -> int:
    """Swap, in place, the modules whose export would fix sizes of the export input into the graph.

    ``nn.AdaptiveAvgPool2d`` becomes :class:`DynamicAdaptiveAvgPool2d`, mmseg's ``Upsample`` with an integer
    ``scale_factor`` :class:`IntegerScaleUpsample`. Returns how many modules were replaced.

    Raises:
        ValueError: an mmseg ``Upsample`` with a fixed size or a fractional factor, which has no dynamic form here.
    """
    count = 0
    for parent_name, parent in module.named_modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(parent, name, DynamicAdaptiveAvgPool2d(child.output_size))
            elif isinstance(child, MMSegUpsample):
                factor = child.scale_factor
                if child.size or not isinstance(factor, float) or not factor.is_integer():
                    raise ValueError(f'{parent_name}.{name}: Upsample(size={child.size}, scale_factor={factor}) '
                                     'cannot be exported with dynamic shapes; only integer scale factors can')
                setattr(parent, name, IntegerScaleUpsample(int(factor), child.mode, child.align_corners))
            else:
                continue
            count += 1
    return count


class SegmentorForExport(nn.Module):
    """BGR 0..255 image in, logits at the input resolution out: a segmentor as one traceable function."""

    def __init__(self, segmentor: BaseSegmentor) -> None:
        super().__init__()
        preprocessor = segmentor.data_preprocessor
        self.bgr_to_rgb = bool(getattr(preprocessor, 'channel_conversion', False))
        if getattr(preprocessor, 'mean', None) is not None:  # mmseg registers mean/std only when it normalises
            self.register_buffer('mean', preprocessor.mean.detach().clone().reshape(1, -1, 1, 1))
            self.register_buffer('std', preprocessor.std.detach().clone().reshape(1, -1, 1, 1))
        else:
            self.mean = self.std = None
        self.backbone = segmentor.backbone
        self.neck = segmentor.neck if segmentor.with_neck else None
        self.decode_head = segmentor.decode_head
        self.align_corners = segmentor.align_corners

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.flip(1) if self.bgr_to_rgb else image
        if self.mean is not None:
            x = (x - self.mean) / self.std
        feats = self.backbone(x)
        if self.neck is not None:
            feats = self.neck(feats)
        logits = self.decode_head(feats)
        return F.interpolate(logits, size=image.shape[2:], mode='bilinear', align_corners=self.align_corners)


def prepare_for_export(model: BaseSegmentor, deploy: bool = False) -> SegmentorForExport:
    """A CPU eval-mode copy of ``model`` ready to export; ``model`` itself is not changed.

    SyncBN is reverted, adaptive pooling and fixed-factor upsampling made size-agnostic
    (:func:`make_shapes_dynamic`), and with ``deploy`` the backbone's
    ``switch_to_deploy()`` (BN folding) is applied.
    """
    model = revert_sync_batchnorm(copy.deepcopy(model)).cpu().eval()
    if deploy:
        if not hasattr(model.backbone, 'switch_to_deploy'):
            raise ValueError(f'deploy=True needs a backbone with switch_to_deploy(); '
                             f'{type(model.backbone).__name__} has none')
        model.backbone.switch_to_deploy()
    make_shapes_dynamic(model)
    return SegmentorForExport(model).eval()


def export_onnx(model: BaseSegmentor, out_file: str | Path, shape: tuple[int, int] = (512, 512),
                opset: int = DEFAULT_OPSET, deploy: bool = False, max_size: int = 4096) -> Path:
    """Export ``model`` to ``out_file`` with dynamic height and width (batch 1), via torch's dynamo exporter.

    Args:
        model: An mmseg segmentor (e.g. from :func:`mmext.apis.init_segmentor`).
        out_file: Where to write the ``.onnx`` file (weights embedded).
        shape: ``(H, W)`` of the example input used for tracing; any size from 64 to ``max_size`` runs later.
        opset: ONNX opset version.
        deploy: Fold the backbone's BatchNorms first (``switch_to_deploy()``).
        max_size: Largest height / width the graph accepts.

    Returns:
        The path written.
    """
    if min(shape) < MIN_SIZE or max(shape) > max_size:
        raise ValueError(f'export shape must lie in {MIN_SIZE}..{max_size}, got {tuple(shape)}')
    wrapper = prepare_for_export(model, deploy=deploy)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, *shape)
    height = torch.export.Dim('height', min=MIN_SIZE, max=max_size)
    width = torch.export.Dim('width', min=MIN_SIZE, max=max_size)
    with torch.no_grad():
        torch.onnx.export(
            wrapper, (example, ), str(out_file), dynamo=True, opset_version=opset, input_names=['image'],
            output_names=['logits'], dynamic_shapes={'image': {2: height, 3: width}}, external_data=False,
            verbose=False)
    print_log(f'Exported {type(model).__name__} ({type(model.decode_head).__name__}) to {out_file} '
              f'(opset {opset}, dynamic H and W in {MIN_SIZE}..{max_size}{", deploy mode" if deploy else ""})',
              logger='current')
    return out_file


def check_onnx_parity(model: BaseSegmentor, onnx_file: str | Path, images: Sequence[str | Path | np.ndarray],
                      providers: Sequence[str] = ('CPUExecutionProvider', )) -> list[dict]:
    """Compare onnxruntime's logits with PyTorch's (mmseg's whole-image inference) on each image at its size.

    Returns:
        One dict per image: ``shape`` ``(H, W)``, ``max_abs_diff`` of the logits, ``max_abs_logit`` (PyTorch's
        largest logit magnitude, the scale the difference is relative to) and ``argmax_agreement``, the fraction
        of pixels whose predicted class is the same.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=list(providers))
    model = revert_sync_batchnorm(copy.deepcopy(model)).cpu().eval()
    results = []
    for image in images:
        bgr = load_image(image)
        reference = whole_image_logits(model, bgr).numpy()
        feed = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None], dtype=np.float32)
        logits = session.run(['logits'], {'image': feed})[0]
        if logits.shape != reference.shape:
            raise RuntimeError(f'ONNX logits have shape {logits.shape}, PyTorch {reference.shape} '
                                 f'for image {image if not isinstance(image, np.ndarray) else bgr.shape}')
        results.append(dict(shape=bgr.shape[:2], max_abs_diff=float(np.abs(logits - reference).max()),
                            max_abs_logit=float(np.abs(reference).max()),
                            argmax_agreement=float((logits.argmax(1) == reference.argmax(1)).mean())))
    return results
