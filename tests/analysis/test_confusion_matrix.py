"""tools/analysis/confusion_matrix.py over mmext.analysis.confusion_matrix, against numpy on the real samples."""
import csv

import cv2
import numpy as np
import pytest

from mmext.analysis.confusion_matrix import accumulate_confusion, most_confused_pairs
from mmext.fileio import OutputPathError


def direct_confusion(annotation_dir, prediction_dir) -> np.ndarray:
    """ADE20K by hand: annotation 0 is 'unlabelled' (ignored), class c is stored as c + 1, in gt and PNG alike."""
    matrix = np.zeros((150, 150), np.int64)
    for ann_path in sorted(annotation_dir.glob('*.png')):
        ann = cv2.imread(str(ann_path), cv2.IMREAD_UNCHANGED).astype(np.int64)
        pred = cv2.imread(str(prediction_dir / ann_path.name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        keep = ann > 0
        np.add.at(matrix, (ann[keep] - 1, pred[keep] - 1), 1)
    return matrix


def test_matrix_matches_numpy_on_real_samples(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path):
    annotations = ade20k_samples / 'annotations' / 'validation'
    pred_dir = tmp_path / 'pred'
    pred_dir.mkdir()
    rng = np.random.default_rng(0)
    for ann_path in sorted(annotations.glob('*.png')):  # a wrong-in-places prediction, as tools/test.py writes it
        ann = cv2.imread(str(ann_path), cv2.IMREAD_UNCHANGED)
        pred = np.where(ann == 0, 1, ann).astype(np.uint8)
        pred[:, ::3] = 3  # every third column predicted as class 2 ('sky')
        pred[rng.random(pred.shape) < 0.1] = 150
        cv2.imwrite(str(pred_dir / ann_path.name), pred)

    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None)
    result = load_tool('tools/analysis/confusion_matrix.py').main([str(cfg), str(pred_dir), '--out-dir',
                                                                    str(tmp_path / 'out')])
    expected = direct_confusion(annotations, pred_dir)
    assert expected.sum() > 100_000 and expected.max() > 255  # counts that overflow uint8
    np.testing.assert_array_equal(result['matrix'], expected)
    np.testing.assert_array_equal(np.load(tmp_path / 'out' / 'confusion_matrix.npy'), expected)
    with open(tmp_path / 'out' / 'confusion_matrix.csv') as f:
        rows = list(csv.reader(f))
    assert len(rows) == 151 and rows[0][1] == 'wall' and [int(v) for v in rows[1][1:]] == expected[0].tolist()
    present = int(((expected.sum(0) + expected.sum(1)) > 0).sum())
    assert len(result['shown']) == min(present, 30)
    assert cv2.imread(str(tmp_path / 'out' / 'confusion_matrix.png')) is not None
    top = most_confused_pairs(expected, [str(i) for i in range(150)], top_k=1)[0]
    assert top['pixels'] == max(v for (r, c), v in np.ndenumerate(expected) if r != c)


def test_missing_prediction_and_bad_labels_are_named(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path):
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None)
    with pytest.raises(FileNotFoundError, match='no prediction .*ADE_val_00000001.png'):
        load_tool('tools/analysis/confusion_matrix.py').main([str(cfg), str(tmp_path)])
    with pytest.raises(ValueError, match='pair 0: prediction has label 7 outside'):
        accumulate_confusion([(np.full((2, 2), 7), np.zeros((2, 2)))], num_classes=5)


def test_out_dir_over_the_predictions_is_refused(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path):
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None)
    pred_dir = tmp_path / 'pred'
    pred_dir.mkdir()
    with pytest.raises(OutputPathError, match=f'--out-dir {pred_dir} is the input PREDICTION_DIR'):
        load_tool('tools/analysis/confusion_matrix.py').main([str(cfg), str(pred_dir), '--out-dir', str(pred_dir)])
