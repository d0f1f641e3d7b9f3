"""Pixel confusion matrices for semantic segmentation, correct at 150 classes and readable as a picture.

mmseg 1.2.2's ``tools/analysis_tools/confusion_matrix.py`` reduces the zero label a second time, counts in uint8
(overflow under NumPy 2) and draws a 2 x num_classes-inch figure at 300 dpi (out of memory at 150 classes). Here
the ground truth goes through mmseg's own ``LoadAnnotations`` with the dataset's ``reduce_zero_label``, counts are
int64, and the picture shows only the classes present, row-normalised.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mmext.datasets.decoding import decode_label, read_bytes
from mmext.fileio import atomic_path, atomic_write

__all__ = ['accumulate_confusion', 'confusion_from_prediction_dir', 'most_confused_pairs', 'plot_confusion',
           'save_confusion']


def accumulate_confusion(pairs: Iterable[tuple[np.ndarray, np.ndarray]], num_classes: int,
                         ignore_index: int = 255) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 pixel counts, rows = ground-truth class, columns = predicted class.

    ``pairs`` yields ``(prediction, ground_truth)`` label maps of equal shape; ground-truth pixels equal to
    ``ignore_index`` are skipped. A label outside ``[0, num_classes)`` is an error naming it.
    """
    matrix = np.zeros((num_classes, num_classes), np.int64)
    for index, (pred, gt) in enumerate(pairs):
        pred, gt = np.asarray(pred).astype(np.int64), np.asarray(gt).astype(np.int64)
        if pred.shape != gt.shape:
            raise ValueError(f'pair {index}: prediction shape {pred.shape} != ground truth shape {gt.shape}')
        valid = gt != ignore_index
        pred, gt = pred[valid], gt[valid]
        for name, labels in (('ground truth', gt), ('prediction', pred)):
            bad = labels[(labels < 0) | (labels >= num_classes)]
            if bad.size:
                raise ValueError(f'pair {index}: {name} has label {int(bad[0])} outside [0, {num_classes})')
        matrix += np.bincount(gt * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    return matrix


def confusion_from_prediction_dir(dataset, prediction_dir: str | Path) -> np.ndarray:
    """The confusion matrix of the prediction PNGs that ``tools/test.py --out DIR`` wrote for ``dataset``.

    ``dataset`` is a built mmseg dataset (e.g. the config's test dataset); its ground truth is read by mmseg's
    ``LoadAnnotations`` with the dataset's ``reduce_zero_label``, and the PNGs are decoded as mmseg's IoUMetric
    wrote them (``label + 1`` under ``reduce_zero_label``). A missing PNG is an error naming it.
    """
    from mmseg.datasets.transforms import LoadAnnotations

    prediction_dir = Path(prediction_dir)
    reduce_zero_label = bool(dataset.reduce_zero_label)
    load = LoadAnnotations()  # reduce_zero_label and label_map come with each data info, as in the test pipeline
    num_classes = len(dataset.metainfo['classes'])

    def pairs():
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            png = prediction_dir / f'{Path(info["img_path"]).stem}.png'
            if not png.is_file():
                raise FileNotFoundError(f'no prediction {png} for {info["img_path"]} (tools/test.py --out '
                                        f'{prediction_dir} writes one per test image)')
            gt = load(dict(info, seg_fields=[]))['gt_seg_map']
            pred = decode_label(read_bytes(png, what='prediction'), png).astype(np.int64)
            yield (pred - 1 if reduce_zero_label else pred), gt

    return accumulate_confusion(pairs(), num_classes, dataset.ignore_index)


def most_confused_pairs(matrix: np.ndarray, class_names: Sequence[str], top_k: int = 10) -> list[dict]:
    """The ``top_k`` largest off-diagonal entries: ``{'gt', 'pred', 'pixels', 'fraction'}`` (of the gt class)."""
    rows = matrix.sum(1, keepdims=True)
    off = matrix.astype(np.float64).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind='stable')[:top_k]
    pairs = []
    for flat in order:
        gt, pred = divmod(int(flat), matrix.shape[1])
        if off[gt, pred] == 0:
            break
        pairs.append(dict(gt=class_names[gt], pred=class_names[pred], pixels=int(matrix[gt, pred]),
                          fraction=float(matrix[gt, pred] / rows[gt, 0])))
    return pairs


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | Path,
                   max_classes: int = 30) -> list[str]:
    """Save a row-normalised picture of the classes present (at most ``max_classes``, by ground-truth pixels).

    Classes present = in the ground truth or the predictions. Returns the names shown, in order.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    present = np.flatnonzero((matrix.sum(0) + matrix.sum(1)) > 0)
    present = present[np.argsort(-matrix.sum(1)[present], kind='stable')][:max_classes]
    present = np.sort(present)
    sub = matrix[np.ix_(present, present)].astype(np.float64)
    rows = matrix.sum(1)[present][:, None].astype(np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        normalised = np.where(rows > 0, sub / rows, 0.)
    names = [class_names[i] for i in present]
    size = max(4., 0.4 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    image = ax.imshow(normalised, cmap='Blues', vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='fraction of the ground-truth class')
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel('predicted')
    ax.set_ylabel('ground truth')
    for (r, c), value in np.ndenumerate(normalised):
        if value >= 0.005:
            ax.text(c, r, f'{value:.2f}', ha='center', va='center', fontsize=6,
                    color='white' if value > 0.5 else 'black')
    ax.set_title(f'confusion, {len(names)} of {len(class_names)} classes (present ones)')
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(str(temporary))
    plt.close(fig)
    return names


def save_confusion(matrix: np.ndarray, class_names: Sequence[str], out_dir: str | Path) -> dict[str, Path]:
    """Write the full matrix as ``confusion_matrix.npy`` (int64 counts) and ``confusion_matrix.csv`` (class-name
    header row and first column; rows = ground truth). Returns the paths."""
    out_dir = Path(out_dir)
    paths = dict(npy=out_dir / 'confusion_matrix.npy', csv=out_dir / 'confusion_matrix.csv')
    with atomic_write(paths['npy']) as f:
        np.save(f, matrix)
    with atomic_write(paths['csv'], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['gt \\ pred', *class_names])
        for name, row in zip(class_names, matrix):
            writer.writerow([name, *row.tolist()])
    return paths
