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
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmseg.models import BaseSegmentor
from mmseg.models.utils import Upsample as MMSegUpsample

from mmext.models.segmentors.bounded_postprocess import label_map_from_logits

from .builder import load_model_config
from .inference import DEFAULT_TEST_PIPELINE, apply_test_pipeline, load_image, whole_image_logits

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
    options = getattr(model, 'inference_options', None)
    if options is not None and (options.precision != 'fp32' or options.compile):
        raise ValueError(f'export an fp32 model without compile (this one runs {options.describe()}); int8 comes '
                         'from quantize_onnx() on the fp32 export')
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


def quantize_onnx(onnx_file: str | Path, out_file: str | Path, calibration_images: Sequence[str | Path | np.ndarray],
                  config: str | Path | Config | None = None, per_channel: bool = True) -> Path:
    """Write an int8 copy of an exported model (:func:`export_onnx`): onnxruntime's static QDQ quantization.

    Weights are quantized to int8 (per output channel with ``per_channel``), activations to uint8 with ranges
    calibrated (min/max) on ``calibration_images``: the u8 x s8 scheme onnxruntime recommends for x86 CPUs with
    VNNI. onnxruntime then runs the convolutions and matrix products in integer arithmetic; between them the
    graph's resizes, GELUs and normalisations dequantize, run in float32 and quantize again.

    Args:
        onnx_file: The float32 graph (a deploy-form export quantizes best: no BatchNorm between convs).
        out_file: Where to write the int8 graph.
        calibration_images: Images (paths or BGR arrays) like those the model will see; a few dozen suffice.
        config: With a config, each calibration image first goes through its ``test_pipeline`` (e.g. ADE20K's
            resize to a 512 short side), as :class:`OnnxSegmentor` feeds the graph; without, images are used as
            they are.
        per_channel: One scale per output channel of each weight (more accurate; the default).

    Returns:
        The path written.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration_images = list(calibration_images)
    if not calibration_images:
        raise ValueError('int8 quantization needs at least one calibration image')
    cfg = _with_test_pipeline(config) if config is not None else None

    class Reader(CalibrationDataReader):
        """The images in the ranges onnxruntime asks for, each read and converted only then."""

        def __init__(self) -> None:
            self.set_range(0, len(calibration_images))

        def __len__(self) -> int:
            return len(calibration_images)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.images = iter(calibration_images[start_index:end_index])

        def get_next(self) -> dict | None:
            image = next(self.images, None)
            return None if image is None else {'image': _graph_input(cfg, image)}

    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    prepared = out_file.with_name(out_file.stem + '.prep.onnx')
    try:
        # shape inference and graph optimisation first, as onnxruntime's quantization guide asks
        quant_pre_process(str(onnx_file), str(prepared), skip_symbolic_shape=True)
        # BatchNormalization (the out_norms, which follow no conv) stays in float32: quantizing it buys nothing.
        # CalibStridedMinMax=1: ranges merged after every image, so calibration holds one image's activations
        # (about 2 GB for UperNet-T at 512x512), not all of them.
        quantize_static(str(prepared), str(out_file), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                        nodes_to_exclude=_nodes_of(prepared, 'BatchNormalization'),
                        extra_options=dict(ActivationSymmetric=False, WeightSymmetric=True, CalibStridedMinMax=1))
    finally:
        prepared.unlink(missing_ok=True)
    print_log(f'Quantized {onnx_file} to int8 (QDQ, {len(calibration_images)} calibration images) as {out_file}',
              logger='current')
    return out_file


def _nodes_of(onnx_file: Path, op_type: str) -> list[str]:
    import onnx
    return [node.name for node in onnx.load(str(onnx_file), load_external_data=False).graph.node
            if node.op_type == op_type]


def _with_test_pipeline(config: str | Path | Config) -> Config:
    cfg = load_model_config(config)
    if not cfg.get('test_pipeline'):
        cfg.test_pipeline = copy.deepcopy(DEFAULT_TEST_PIPELINE)
    return cfg


def _graph_input(cfg: Config | None, image: str | Path | np.ndarray) -> np.ndarray:
    """The ``(1, 3, H, W)`` float32 BGR feed of one image, through ``cfg``'s test pipeline when given."""
    bgr = load_image(image)
    if cfg is None:
        return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None], dtype=np.float32)
    return apply_test_pipeline(cfg, bgr)['inputs'].numpy()[None].astype(np.float32)


class OnnxSegmentor:
    """An exported graph (:func:`export_onnx`, or its int8 form from :func:`quantize_onnx`) in onnxruntime, run
    on images the way :func:`mmext.apis.inference_segmentor` runs a model: the config's test pipeline (ADE20K's:
    resize to a 512 short side), the graph, then the label map at the image's own size in bounded memory.

    Args:
        onnx_file: The graph.
        config: The config the model was built from (its ``test_pipeline`` and ``align_corners`` are used).
        threads: onnxruntime's intra-op threads (default: its own choice).
    """

    def __init__(self, onnx_file: str | Path, config: str | Path | Config, threads: int | None = None,
                 providers: Sequence[str] = ('CPUExecutionProvider', )) -> None:
        import onnxruntime as ort

        self.cfg = _with_test_pipeline(config)
        self.align_corners = bool((self.cfg.model.get('decode_head') or {}).get('align_corners', False))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_file), options, providers=list(providers))

    def __call__(self, image: str | Path | np.ndarray) -> np.ndarray:
        """The ``(H, W)`` ``int64`` label map of one image (see :func:`mmext.apis.load_image`)."""
        bgr = load_image(image)
        logits = torch.from_numpy(self.session.run(['logits'], {'image': _graph_input(self.cfg, bgr)})[0][0])
        if logits.shape[0] == 1:
            raise ValueError('OnnxSegmentor arg-maxes classes; a one-channel (binary) head needs its threshold')
        return label_map_from_logits(logits, bgr.shape[:2], self.align_corners)


def check_onnx_parity(model: BaseSegmentor, onnx_file: str | Path, images: Sequence[str | Path | np.ndarray],
                      providers: Sequence[str] = ('CPUExecutionProvider', ), raise_errors: bool = True) -> list[dict]:
    """Compare onnxruntime's logits with PyTorch's (mmseg's whole-image inference) on each image at its size.

    Returns:
        One dict per image: ``shape`` ``(H, W)``, ``max_abs_diff`` of the logits, ``max_abs_logit`` (PyTorch's
        largest logit magnitude, the scale the difference is relative to) and ``argmax_agreement``, the fraction
        of pixels whose predicted class is the same. With ``raise_errors=False`` an image that cannot be read or
        run gives ``{'error': 'ExceptionType: message'}`` instead, and the others are still checked.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=list(providers))
    model = revert_sync_batchnorm(copy.deepcopy(model)).cpu().eval()
    results = []
    for image in images:
        try:
            results.append(_parity(model, session, image))
        except Exception as e:  # noqa: BLE001  (reported per image when asked to go on)
            if raise_errors:
                raise
            results.append(dict(error=f'{type(e).__name__}: {e}'))
    return results


def _parity(model: BaseSegmentor, session, image: str | Path | np.ndarray) -> dict:
    bgr = load_image(image)
    reference = whole_image_logits(model, bgr).numpy()
    feed = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None], dtype=np.float32)
    logits = session.run(['logits'], {'image': feed})[0]
    if logits.shape != reference.shape:
        raise RuntimeError(f'ONNX logits have shape {logits.shape}, PyTorch {reference.shape} '
                           f'for image {image if not isinstance(image, np.ndarray) else bgr.shape}')
    return dict(shape=bgr.shape[:2], max_abs_diff=float(np.abs(logits - reference).max()),
                max_abs_logit=float(np.abs(reference).max()),
                argmax_agreement=float((logits.argmax(1) == reference.argmax(1)).mean()))
