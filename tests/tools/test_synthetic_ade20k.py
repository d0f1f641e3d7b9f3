"""tools/synthetic_ade20k.py: deterministic ADE20K-layout data for the demo, and its chance-level mIoU."""
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope='module')
def synthetic(load_tool):
    return load_tool('tools/synthetic_ade20k.py')


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob('*.*')):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_synthetic_data_is_deterministic_and_in_ade20k_space(synthetic, tmp_path):
    generate_synthetic_ade20k = synthetic.generate_synthetic_ade20k
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
    assert values <= {0} | {c.class_id + 1 for c in synthetic.SYNTHETIC_CLASSES.values()}
    assert len(values) >= 4


def test_chance_miou(synthetic):
    chance_miou = synthetic.chance_miou
    counts = np.zeros(150)
    counts[[3, 7]] = [300, 100]  # shares 0.75 / 0.25 over K = 2 classes
    chance = chance_miou(counts)
    assert chance['num_classes_present'] == 2
    assert chance['uniform'] == pytest.approx(100 * (0.75 / 1.75 + 0.25 / 1.25) / 2)
    assert chance['majority'] == pytest.approx(37.5)
    with pytest.raises(ValueError, match='no labeled pixels'):
        chance_miou(np.zeros(150))
