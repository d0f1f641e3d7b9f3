"""mmseg's ``IoUMetric``, keeping the per-class table it otherwise only logs, and logging only its useful rows."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from prettytable import PrettyTable

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
    """mmseg's ``IoUMetric`` (same arguments and returned scalars) that keeps its numbers and logs a shorter table.

    After each evaluation, ``self.summary`` holds :func:`seg_metrics_from_areas` of the whole dataset (unrounded,
    on the main process, where mmengine computes metrics): every class, for a JSON file. The logged per-class
    table lists only the classes present in the ground truth or the predictions (the others have no IoU: mmseg
    prints ``nan`` rows for them, 140 of ADE20K's 150 on a small set) and says how many it left out;
    ``all_classes=True`` logs every row, as mmseg does.
    """

    def __init__(self, all_classes: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.all_classes = all_classes
        self.summary: dict | None = None

    def compute_metrics(self, results: list) -> dict[str, float]:
        if self.format_only:
            return super().compute_metrics(results)
        intersect, union, pred_label, label = (sum(parts) for parts in zip(*results))
        ret_metrics = self.total_area_to_metrics(intersect, union, pred_label, label, self.metrics, self.nan_to_num,
                                                 self.beta)
        # the scalars exactly as mmseg's IoUMetric returns them
        metrics = {key if key == 'aAcc' else f'm{key}': np.round(np.nanmean(value) * 100, 2)
                   for key, value in ret_metrics.items()}
        class_names = self.dataset_meta['classes']
        self.summary = seg_metrics_from_areas(intersect, union, label, class_names)
        ret_metrics.pop('aAcc', None)
        shown = np.arange(len(class_names)) if self.all_classes else np.flatnonzero(np.asarray(union) > 0)
        table = PrettyTable()
        table.add_column('Class', [class_names[i] for i in shown])
        for key, value in ret_metrics.items():
            table.add_column(key, list(np.round(np.asarray(value)[shown] * 100, 2)))
        omitted = len(class_names) - len(shown)
        note = (f'; {omitted} of {len(class_names)} classes omitted (in neither ground truth nor predictions; '
                'all_classes=True lists them)' if omitted else '')
        print_log(f'per class results ({len(shown)} classes{note}):\n{table.get_string()}', logger='current')
        return metrics
