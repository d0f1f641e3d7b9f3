"""The three real ADE20K validation samples through mmseg's datasets, pipelines, every ADE20K config's model and
IoUMetric (random weights, no download: these tests pin data handling and plumbing, not accuracy)."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.evaluation import IoUMetric
from mmseg.registry import DATASETS, MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]
ADE20K_CONFIGS = sorted((REPO_ROOT / 'configs').glob('*_ade20k.py'))

# From the samples' README (raw annotation values, 0 = unlabeled), after reduce_zero_label: 0 -> 255, v -> v - 1.
RAW_LABELS = {
    'ADE_val_00000001': ((683, 512), [0, 1, 2, 3, 5, 7, 10, 18]),
    'ADE_val_00000002': ((500, 364), [0, 1, 2, 3, 5, 14, 18]),
    'ADE_val_00000003': ((400, 300), [0, 1, 2, 3, 5, 7, 12, 21, 44, 81, 88, 97, 103]),
}
REDUCED = {name: {255 if v == 0 else v - 1 for v in raw} for name, (_, raw) in RAW_LABELS.items()}
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]


def test_configs_found():
    assert len(ADE20K_CONFIGS) >= 2, f'no configs/*_ade20k.py under {REPO_ROOT}'


@pytest.mark.parametrize('dataset_type', ['ADE20KDataset', 'CheckedADE20KDataset'])
def test_real_samples_read_with_reduced_labels(ade20k_samples, dataset_type):
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type=dataset_type, data_root=str(ade20k_samples), pipeline=PIPELINE,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation')))
    assert len(dataset) == 3
    for i in range(3):
        data = dataset[i]
        sample = data['data_samples']
        name = Path(sample.img_path).stem
        (w, h), _ = RAW_LABELS[name]
        assert sample.ori_shape == (h, w)
        assert data['inputs'].shape == (3, h, w) and data['inputs'].dtype == torch.uint8
        gt = sample.gt_sem_seg.data
        assert gt.shape == (1, h, w)
        assert set(torch.unique(gt).tolist()) == REDUCED[name]
        assert sample.reduce_zero_label is True


def _small_test_pipeline(pipeline: list) -> list:
    """The config's own test pipeline with its ``Resize`` shrunk to 64 pixels on the short side (CPU cost)."""
    pipeline = copy.deepcopy(pipeline)
    resizes = [t for t in pipeline if t['type'] == 'Resize']
    assert len(resizes) == 1, f'expected one Resize in the test pipeline, got {pipeline}'
    resizes[0]['scale'] = (256, 64)
    return pipeline


@pytest.mark.parametrize('config', ADE20K_CONFIGS, ids=lambda p: p.stem)
def test_config_model_on_real_samples(ade20k_samples, config):
    cfg = Config.fromfile(str(config))
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.backbone.init_cfg = None  # random init: no download
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())

    dataset_cfg = copy.deepcopy(cfg.val_dataloader.dataset)
    dataset_cfg.update(data_root=str(ade20k_samples), pipeline=_small_test_pipeline(dataset_cfg.pipeline))
    dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 3
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    with torch.no_grad():
        for i in range(len(dataset)):
            data = dataset[i]
            assert min(data['inputs'].shape[1:]) == 64
            [result] = model.test_step(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))
            name = Path(result.img_path).stem
            (w, h), _ = RAW_LABELS[name]
            pred = result.pred_sem_seg.data
            assert pred.shape == (1, h, w) and int(pred.max()) < 150  # resized back to the original image
            metric.process([], [result.to_dict()])
            area_label = metric.results[-1][3]
            assert set(np.flatnonzero(area_label.numpy()).tolist()) == REDUCED[name] - {255}
    total_label = sum(r[3] for r in metric.results)
    assert set(np.flatnonzero(total_label.numpy()).tolist()) == set.union(*REDUCED.values()) - {255}
    metrics = metric.compute_metrics(metric.results)
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    assert all(0. <= v <= 100. for v in metrics.values())
