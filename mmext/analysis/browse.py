"""Pictures of what a segmentation training pipeline feeds the model: the augmented image and its label overlay.

mmseg 1.2.2's ``browse_dataset.py`` crashes in OpenCV here (it draws into a non-contiguous array); this draws into
contiguous copies with :mod:`mmext.visualization`.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mmext.visualization import ADE20K_CLASSES, ADE20K_PALETTE, overlay

__all__ = ['browse_samples']


def browse_samples(dataset, num_samples: int, alpha: float = 0.5) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, BGR picture)`` for the first ``num_samples`` items of a built mmseg dataset, through its pipeline.

    Each picture is the augmented image (as packed for the model: after resizing, cropping, flipping, photometric
    distortion) beside the same image with its augmented label map overlaid and a legend of the classes in it.
    ``name`` is ``<image stem>_<index>``. The image is in the channel order the pipeline loads (BGR for mmseg's
    ``LoadImageFromFile``).
    """
    if num_samples < 1:
        raise ValueError(f'num_samples must be positive, got {num_samples}')
    meta = dataset.metainfo
    classes = tuple(meta.get('classes') or ADE20K_CLASSES)
    palette = np.asarray(meta.get('palette') or ADE20K_PALETTE, dtype=np.uint8)
    for index in range(min(num_samples, len(dataset))):
        item = dataset[index]
        sample = item['data_samples']
        image = np.ascontiguousarray(item['inputs'].numpy().transpose(1, 2, 0)).astype(np.uint8)
        label = np.ascontiguousarray(sample.gt_sem_seg.data[0].numpy()).astype(np.int64)
        painted = overlay(image, label, alpha=alpha, classes=classes, palette=palette,
                          ignore_index=dataset.ignore_index)
        gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
        stem = sample.img_path.rsplit('/', 1)[-1].rsplit('.', 1)[0]
        yield f'{stem}_{index:04d}', np.concatenate([image, gap, painted], axis=1)
