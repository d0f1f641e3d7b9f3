"""Evaluate a segmentor on its config's test split through mmengine's Runner and return per-class numbers."""
from __future__ import annotations

import copy

from mmengine.config import Config

from mmext.checkpoint import check_checkpoint_fits
from mmext.engine.runner import build_runner
from mmext.evaluation import PerClassIoUMetric


def enable_tta(cfg: Config) -> Config:
    """Switch ``cfg`` to test-time augmentation in place (mmseg's and mmdet's ``--tta``) and return it.

    The test pipeline becomes ``cfg.tta_pipeline`` and the model is wrapped in ``cfg.tta_model``; for mmseg's ADE20K
    base config that is multi-scale (0.5-1.75) + flip with ``SegTTAModel``.
    """
    missing = [key for key in ('tta_model', 'tta_pipeline') if cfg.get(key) is None]
    if missing:
        raise KeyError(f'--tta needs {" and ".join(missing)} in the config (mmseg/mmdet default_runtime and '
                       'dataset bases define them)')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    return cfg


def evaluate_segmentation(cfg: Config, checkpoint: str | None, tta: bool = False) -> dict:
    """Run the Runner's test loop for ``cfg`` with ``checkpoint`` and return the per-class results.

    The config's test evaluator must be mmseg's ``IoUMetric`` (or ``PerClassIoUMetric``); its arguments are kept.
    ``cfg`` is not modified. Results are those of :func:`~mmext.evaluation.seg_metrics_from_areas` plus
    ``num_images`` and ``mode`` (``'single-scale'`` or ``'ms+flip'``).
    """
    cfg = copy.deepcopy(cfg)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        if len(evaluator) != 1:
            raise ValueError(f'evaluate_segmentation needs one test metric, the config has {len(evaluator)}')
        evaluator = evaluator[0]
    metric_type = str(evaluator.get('type', '')).split('.')[-1]
    if metric_type not in ('IoUMetric', PerClassIoUMetric.__name__):
        raise ValueError(f'evaluate_segmentation needs test_evaluator type IoUMetric, the config has {metric_type!r}')
    cfg.test_evaluator = dict(evaluator, type=PerClassIoUMetric.__name__)
    cfg.load_from = checkpoint
    if tta:
        enable_tta(cfg)
    runner = build_runner(cfg)
    check_checkpoint_fits(runner.model, checkpoint)  # the Runner itself loads load_from non-strictly
    runner.test()
    metric = runner.test_evaluator.metrics[0]
    summary = dict(mode='ms+flip' if tta else 'single-scale', num_images=len(runner.test_dataloader.dataset))
    summary.update(metric.summary or {})
    return summary


def format_seg_results(summary: dict) -> str:
    """A plain-text report of :func:`evaluate_segmentation`'s results: the means, then one row per class."""

    def _fmt(value: float | None) -> str:
        return '-' if value is None else f'{value:.2f}'

    width = max([len('class')] + [len(row['class']) for row in summary['per_class']])
    lines = [f'{summary["mode"]} on {summary["num_images"]} images: aAcc {_fmt(summary["aAcc"])}  '
             f'mIoU {_fmt(summary["mIoU"])}  mAcc {_fmt(summary["mAcc"])}',
             f'{"class":<{width}}  {"IoU":>6}  {"Acc":>6}']
    lines += [f'{row["class"]:<{width}}  {_fmt(row["IoU"]):>6}  {_fmt(row["Acc"]):>6}' for row in summary['per_class']]
    return '\n'.join(lines)
