"""Inference for people and deployment: build a segmentor, segment images in a chosen precision, evaluate, export
to ONNX and quantize to int8."""
from .builder import build_segmentor
from .inference import inference_segmentor, init_segmentor, load_image, whole_image_logits
from .onnx import (
    DynamicAdaptiveAvgPool2d,
    OnnxSegmentor,
    check_onnx_parity,
    export_onnx,
    prepare_for_export,
    quantize_onnx,
)
from .precision import InferenceOptions, apply_inference_options
from .seg_eval import enable_tta, evaluate_segmentation, format_seg_results

__all__ = ['build_segmentor', 'init_segmentor', 'inference_segmentor', 'load_image', 'whole_image_logits',
           'InferenceOptions', 'apply_inference_options', 'export_onnx', 'quantize_onnx', 'OnnxSegmentor',
           'check_onnx_parity', 'prepare_for_export', 'DynamicAdaptiveAvgPool2d', 'enable_tta',
           'evaluate_segmentation', 'format_seg_results']
