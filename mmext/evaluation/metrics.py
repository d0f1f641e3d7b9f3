"""mmseg's ``IoUMetric``, keeping the per-class table it otherwise only logs."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmseg.evaluation import IoUMetric

from mmext.registry import METRICS


def seg_metrics_from_areas(area_intersect: np.ndarray | torch.Tensor, area_union: np.ndarray | torch.Tensor,
                           area_label: np.ndarray | torch.Tensor, class_names: Sequence[str]) -> dict:
    """aAcc, mIoU, mAcc and per-class IoU/Acc, in percent, from pixel counts summed over a dataset.

    Definitions are mmseg's: ``IoU = intersect / union`` and ``Acc = intersect / label`` per class, means over the
    classes where they are defined (a class absent from ground truth and predictions has no IoU; one absent from
    the ground truth has no Acc, and IoU 0 if it was predicted), ``aAcc = sum(intersect) / sum(label)``.
    Undefined per-class values are ``None`` (JSON ``null``).

    Returns:
        ``{'aAcc', 'mIoU', 'mAcc': float, 'per_class': [{'class', 'IoU', 'Acc'}, ...]}`` in class order.
    """
    intersect, union, label = (np.asarray(a, dtype=np.float64) for a in (area_intersect, area_union, area_label))
    if not len(class_names) == len(intersect) == len(union) == len(label):
        raise ValueError(f'{len(class_names)} class names for {len(intersect)} classes of pixel counts')
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = intersect / union * 100
        acc = intersect / label * 100
        a_acc = intersect.sum() / label.sum() * 100

    def _num(value: float) -> float | None:
        return None if np.isnan(value) else float(value)

    return dict(
        aAcc=_num(a_acc),
        mIoU=_num(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        mAcc=_num(np.nanmean(acc)) if np.isfinite(acc).any() else None,
        per_class=[dict({'class': name}, IoU=_num(i), Acc=_num(a)) for name, i, a in zip(class_names, iou, acc)])


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` (same arguments, logged table and returned scalars) that also keeps its numbers.

    After each evaluation, ``self.summary`` holds :func:`seg_metrics_from_areas` of the whole dataset (unrounded,
    on the main process, where mmengine computes metrics).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.summary: dict | None = None

    def compute_metrics(self, results: list) -> dict[str, float]:
        metrics = super().compute_metrics(results)
        if not self.format_only:
            intersect, union, _, label = (sum(parts) for parts in zip(*results))
            self.summary = seg_metrics_from_areas(intersect, union, label, self.dataset_meta['classes'])
        return metrics
