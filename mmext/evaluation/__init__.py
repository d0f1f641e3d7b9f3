"""Semantic-segmentation evaluation with per-class numbers (mIoU, mAcc, aAcc, IoU/Acc per class)."""
from .metrics import PerClassIoUMetric, seg_metrics_from_areas
from .seg_eval import enable_tta, evaluate_segmentation, format_seg_results

__all__ = ['PerClassIoUMetric', 'enable_tta', 'evaluate_segmentation', 'format_seg_results',
           'seg_metrics_from_areas']
