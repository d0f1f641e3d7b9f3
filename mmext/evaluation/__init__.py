"""Semantic-segmentation metrics with per-class numbers (mIoU, mAcc, aAcc, IoU/Acc per class)."""
from .dump_results import AtomicDumpResults
from .metrics import PerClassIoUMetric, seg_metrics_from_areas

__all__ = ['AtomicDumpResults', 'PerClassIoUMetric', 'seg_metrics_from_areas']
