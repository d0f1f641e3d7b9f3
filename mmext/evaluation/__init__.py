"""Semantic-segmentation metrics with per-class numbers (mIoU, mAcc, aAcc, IoU/Acc per class)."""
from .metrics import PerClassIoUMetric, seg_metrics_from_areas

__all__ = ['PerClassIoUMetric', 'seg_metrics_from_areas']
