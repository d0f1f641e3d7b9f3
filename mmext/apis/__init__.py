"""Inference for people and deployment: build a segmentor, segment images, evaluate, export to ONNX."""
from .inference import inference_segmentor, init_segmentor, load_image, whole_image_logits
from .onnx import DynamicAdaptiveAvgPool2d, check_onnx_parity, export_onnx, prepare_for_export
from .seg_eval import enable_tta, evaluate_segmentation, format_seg_results

__all__ = ['init_segmentor', 'inference_segmentor', 'load_image', 'whole_image_logits', 'export_onnx',
           'check_onnx_parity', 'prepare_for_export', 'DynamicAdaptiveAvgPool2d', 'enable_tta',
           'evaluate_segmentation', 'format_seg_results']
