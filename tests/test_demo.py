"""The `make demo` job (tools/demo_train.py) on a small run, and the synthetic ADE20K-layout data it trains on."""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from mmext.datasets.synthetic_ade20k import (
    SYNTHETIC_CLASSES,
    chance_miou,
    class_pixel_counts,
    generate_synthetic_ade20k,
)

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob('*.*')):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_synthetic_data_is_deterministic_and_in_ade20k_space(tmp_path):
    root = generate_synthetic_ade20k(tmp_path / 'a', num_train=3, num_val=2, seed=1)
    assert root == tmp_path / 'a' / 'ADEChallengeData2016'
    assert digest(root) == digest(generate_synthetic_ade20k(tmp_path / 'b', num_train=3, num_val=2, seed=1))
    assert digest(root) != digest(generate_synthetic_ade20k(tmp_path / 'c', num_train=3, num_val=2, seed=2))
    assert len(list((root / 'images' / 'training').glob('*.jpg'))) == 3
    assert len(list((root / 'annotations' / 'validation').glob('*.png'))) == 2
    values = set()
    for path in (root / 'annotations').rglob('*.png'):
        ann = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert ann.dtype == np.uint8 and ann.shape == (192, 256)
        values |= set(np.unique(ann).tolist())
    assert values <= {0} | {c.class_id + 1 for c in SYNTHETIC_CLASSES.values()}
    assert len(values) >= 4


def test_chance_miou():
    counts = np.zeros(150)
    counts[[3, 7]] = [300, 100]  # shares 0.75 / 0.25 over K = 2 classes
    chance = chance_miou(counts)
    assert chance['num_classes_present'] == 2
    assert chance['uniform'] == pytest.approx(100 * (0.75 / 1.75 + 0.25 / 1.25) / 2)
    assert chance['majority'] == pytest.approx(37.5)
    with pytest.raises(ValueError, match='no labeled pixels'):
        chance_miou(np.zeros(150))


def test_demo_trains_evaluates_and_draws(tmp_path, load_tool):
    demo = load_tool('tools/demo_train.py')
    work_dir = tmp_path / 'demo'
    summary = demo.main(['--work-dir', str(work_dir), '--iters', '10', '--num-train', '16', '--num-val', '2',
                         '--batch-size', '2', '--seed', '3'])

    assert 0. <= summary['mIoU'] <= 100. and 0. <= summary['aAcc'] <= 100. and 0. <= summary['mAcc'] <= 100.
    assert 0. < summary['chance']['uniform'] < 100. and summary['chance']['num_classes_present'] >= 2
    assert (work_dir / 'iter_10.pth').is_file()  # trained exactly --iters iterations, resumable
    picture = cv2.imread(summary['picture'])
    assert Path(summary['picture']) == work_dir / 'demo.png'
    # Three 256x192 panels with 6-pixel gaps under a 24-pixel title bar, then the legend.
    assert picture.shape[0] == 192 + 24 and picture.shape[1] > 3 * (256 + 6)

    init_default_scope('mmseg')
    for split in ('training', 'validation'):
        dataset = DATASETS.build(dict(
            type='ADE20KDataset', data_root=str(work_dir / 'data' / 'ADEChallengeData2016'), pipeline=PIPELINE,
            data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}')))
        assert len(dataset) == (16 if split == 'training' else 2)
        labels = set()
        for i in range(len(dataset)):
            data = dataset[i]
            assert data['inputs'].shape == (3, 192, 256)
            labels |= set(torch.unique(data['data_samples'].gt_sem_seg.data).tolist())
        assert labels <= set(range(150)) | {255} and len(labels - {255}) >= 3
    counts = class_pixel_counts(work_dir / 'data' / 'ADEChallengeData2016' / 'annotations' / 'validation')
    assert summary['chance'] == chance_miou(counts)
