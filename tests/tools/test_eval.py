"""mIoU evaluation: PerClassIoUMetric against hand-computed and numpy-bincount numbers, and tools/eval_miou.py."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import PixelData
from mmseg.datasets import ADE20KDataset
from mmseg.structures import SegDataSample
from PIL import Image

from mmext.apis import evaluate_segmentation, format_seg_results
from mmext.evaluation import PerClassIoUMetric
from mmext.fileio import OutputPathError

IGNORE = 255


def random_checkpoint(cfg: Config, path: Path, seed: int = 0) -> Path:
    """Weights of a randomly initialised model (conv_seg scaled up, so predictions use many classes)."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(seed)
        model = MODELS.build(cfg.model)
    state = model.state_dict()
    state['decode_head.conv_seg.weight'] *= 50
    torch.save(dict(state_dict=state), path)
    return path


def bincount_metrics(gts: list[np.ndarray], preds: list[np.ndarray], num_classes: int) -> dict:
    """aAcc, per-class IoU and Acc (fractions, NaN where undefined) from a confusion matrix."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for gt, pred in zip(gts, preds):
        valid = gt != IGNORE
        confusion += np.bincount(num_classes * gt[valid].astype(np.int64) + pred[valid],
                                 minlength=num_classes ** 2).reshape(num_classes, num_classes)
    tp = np.diag(confusion).astype(np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = tp / (confusion.sum(0) + confusion.sum(1) - tp)
        acc = tp / confusion.sum(1)
    return dict(aAcc=tp.sum() / confusion.sum(), IoU=iou, Acc=acc)


def as_array(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def run_metric(class_names: list[str], pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[dict, dict]:
    metric = PerClassIoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=class_names)
    samples = []
    for gt, pred in pairs:
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.from_numpy(gt)[None]),
                               pred_sem_seg=PixelData(data=torch.from_numpy(pred)[None]))
        samples.append(sample.to_dict())
    metric.process({}, samples)
    logged = metric.compute_metrics(metric.results)
    return logged, metric.summary


def test_hand_made_case_exact_values():
    gt = np.array([[0, 0, 1, IGNORE], [1, 2, 2, IGNORE]], dtype=np.int64)
    pred = np.array([[0, 1, 1, 4], [1, 4, 2, 0]], dtype=np.int64)
    # valid (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,4) (2,2); class 3 absent everywhere, class 4 only predicted
    logged, summary = run_metric(['a', 'b', 'c', 'd', 'e'], [(gt, pred)])
    assert [row['class'] for row in summary['per_class']] == ['a', 'b', 'c', 'd', 'e']
    assert as_array([row['IoU'] for row in summary['per_class']]) == pytest.approx(
        [50, 200 / 3, 50, np.nan, 0], nan_ok=True)
    assert as_array([row['Acc'] for row in summary['per_class']]) == pytest.approx(
        [50, 100, 50, np.nan, np.nan], nan_ok=True)
    assert summary['mIoU'] == pytest.approx((50 + 200 / 3 + 50 + 0) / 4)
    assert summary['mAcc'] == pytest.approx(200 / 3)
    assert summary['aAcc'] == pytest.approx(400 / 6)
    assert logged == dict(aAcc=66.67, mIoU=41.67, mAcc=66.67)  # mmseg's own (rounded) numbers agree


def test_random_maps_match_bincount():
    rng = np.random.default_rng(0)
    names = [f'c{i}' for i in range(7)]
    pairs = []
    for shape in [(13, 17), (8, 5), (21, 3)]:
        gt = rng.integers(0, 6, shape)  # class 6 never in the ground truth
        gt[rng.random(shape) < 0.1] = IGNORE
        pairs.append((gt, rng.integers(0, 7, shape)))
    _, summary = run_metric(names, pairs)
    expected = bincount_metrics(*zip(*pairs), num_classes=7)
    assert summary['aAcc'] == pytest.approx(100 * expected['aAcc'])
    assert as_array([r['IoU'] for r in summary['per_class']]) == pytest.approx(100 * expected['IoU'], nan_ok=True)
    assert as_array([r['Acc'] for r in summary['per_class']]) == pytest.approx(100 * expected['Acc'], nan_ok=True)
    assert summary['mIoU'] == pytest.approx(100 * np.nanmean(expected['IoU']))


def test_runner_evaluation_on_real_samples_matches_bincount(write_tiny_seg_config, ade20k_samples, tmp_path):
    cfg = Config.fromfile(write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.test_evaluator['output_dir'] = str(tmp_path / 'pred')  # the predictions, for an independent computation
    checkpoint = random_checkpoint(cfg, tmp_path / 'model.pth')

    summary = evaluate_segmentation(cfg, str(checkpoint))
    assert summary['mode'] == 'single-scale' and summary['num_images'] == 3
    classes = list(ADE20KDataset.METAINFO['classes'])
    assert [row['class'] for row in summary['per_class']] == classes

    annotations = sorted((ade20k_samples / 'annotations' / 'validation').glob('*.png'))
    assert len(annotations) == 3
    gts, preds = [], []
    for annotation in annotations:
        raw = np.asarray(Image.open(annotation)).astype(np.int64)
        gts.append(np.where(raw == 0, IGNORE, raw - 1))  # ADE20K: 0 is "other", classes are 1..150
        preds.append(np.asarray(Image.open(tmp_path / 'pred' / annotation.name)).astype(np.int64) - 1)
    expected = bincount_metrics(gts, preds, num_classes=150)
    assert np.isfinite(expected['IoU']).sum() >= 5  # the predictions cover several classes
    assert summary['aAcc'] == pytest.approx(100 * expected['aAcc'])
    assert as_array([r['IoU'] for r in summary['per_class']]) == pytest.approx(100 * expected['IoU'], nan_ok=True)
    assert as_array([r['Acc'] for r in summary['per_class']]) == pytest.approx(100 * expected['Acc'], nan_ok=True)
    assert summary['mIoU'] == pytest.approx(100 * np.nanmean(expected['IoU']))
    assert summary['mAcc'] == pytest.approx(100 * np.nanmean(expected['Acc']))

    table = format_seg_results(summary)
    assert table.splitlines()[0].startswith('single-scale on 3 images: aAcc')
    assert len(table.splitlines()) == 2 + 150


@pytest.mark.slow
def test_eval_miou_tool_writes_both_modes(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path, monkeypatch,
                                          capsys):
    cfg_path = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None, tta=True)
    checkpoint = random_checkpoint(Config.fromfile(cfg_path), tmp_path / 'model.pth')
    out_json = tmp_path / 'results' / 'miou.json'
    monkeypatch.setattr(sys, 'argv', [
        'eval_miou.py', str(cfg_path), str(checkpoint), '--tta', '--out-json', str(out_json), '--data-root',
        str(ade20k_samples), '--work-dir', str(tmp_path / 'work')])
    load_tool('tools/eval_miou.py').main()  # two evaluations, one process
    stdout = capsys.readouterr().out

    report = json.loads(out_json.read_text())
    assert report['checkpoint'] == str(checkpoint) and report['data_root'] == str(ade20k_samples)
    for key, mode in (('single_scale', 'single-scale'), ('ms_flip', 'ms+flip')):
        part = report[key]
        assert part['mode'] == mode and part['num_images'] == 3
        assert [row['class'] for row in part['per_class']] == list(ADE20KDataset.METAINFO['classes'])
        ious = [row['IoU'] for row in part['per_class'] if row['IoU'] is not None]
        assert ious and part['mIoU'] == pytest.approx(float(np.mean(ious)))
        assert 0 <= part['aAcc'] <= 100
        assert f'{mode} on 3 images: aAcc {part["aAcc"]:.2f}' in stdout
    assert report['single_scale'] != report['ms_flip']
    assert f'results of all 150 classes written to {out_json}' in stdout
    # one table: the means of each mode, a header, one row per class present, a count of the others; no Runner log
    present = {row['class'] for part in (report['single_scale'], report['ms_flip']) for row in part['per_class']
               if row['IoU'] is not None}
    lines = stdout.splitlines()
    assert len(lines) == 2 + 1 + len(present) + 2, stdout
    assert lines[2].split() == ['class', 'IoU', 'single-scale', 'Acc', 'single-scale', 'IoU', 'ms+flip', 'Acc',
                                'ms+flip']
    assert 'mmengine - INFO' not in stdout


def test_eval_miou_out_json_over_an_input_is_refused(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path,
                                                     monkeypatch):
    cfg_path = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None)
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    monkeypatch.setattr(sys, 'argv', ['eval_miou.py', str(cfg_path), str(checkpoint), '--out-json', str(checkpoint),
                                      '--work-dir', str(tmp_path / 'work')])
    with pytest.raises(OutputPathError, match='--out-json .*model.pth is the input CHECKPOINT'):
        load_tool('tools/eval_miou.py').main()
    assert checkpoint.read_bytes() == b'weights'
