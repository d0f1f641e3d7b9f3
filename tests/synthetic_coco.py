"""A small, learnable, COCO-format detection and instance-segmentation dataset that the project writes itself.

Each image shows a few non-overlapping shapes on a textured background. Every class has its own shape and colour
(a disc, an axis-aligned box, a triangle), so a small detector can learn them in a few CPU iterations. Instances
are annotated with their polygon (the exact outline that was filled), its bounding box and its area, in the layout
mmdet's ``CocoDataset`` and ``CocoMetric`` read unchanged::

    <out_dir>/annotations/instances_{train,val}.json
    <out_dir>/{train,val}/{train,val}_000001.jpg

Category ids start at 1, as in COCO. The class names are not COCO's: configs select them with
``metainfo=dict(classes=SYNTHETIC_COCO_CLASSES)`` on the dataset and ``num_classes=len(SYNTHETIC_COCO_CLASSES)`` on
the heads. Output is a pure function of ``seed`` and the sizes.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

SYNTHETIC_COCO_CLASSES = ('disc', 'box', 'triangle')
CLASS_COLORS = {'disc': (40, 60, 220), 'box': (220, 160, 30), 'triangle': (40, 200, 60)}  # BGR
SPLITS = ('train', 'val')


def _polygon(kind: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> np.ndarray:
    """Integer ``(K, 2)`` outline of a ``kind`` shape centred at ``(cx, cy)`` that fits in a circle of radius r."""
    if kind == 'disc':
        pts = cv2.ellipse2Poly((int(cx), int(cy)), (int(r), int(r)), 0, 0, 360, 15)
    elif kind == 'box':
        hw, hh = r * rng.uniform(0.5, 0.7), r * rng.uniform(0.5, 0.7)
        pts = np.array([[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]])
    elif kind == 'triangle':
        angle = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
        pts = np.stack([cx + r * np.cos(angle), cy + r * np.sin(angle)], axis=1)
    else:
        raise ValueError(f'unknown shape {kind!r}; known: {SYNTHETIC_COCO_CLASSES}')
    return np.round(pts).astype(np.int32)


def render_image(rng: np.random.Generator, size: tuple[int, int] = (160, 128),
                 max_objects: int = 4) -> tuple[np.ndarray, list[dict]]:
    """Draw one image.

    Args:
        rng: The only source of randomness.
        size: ``(width, height)`` in pixels.
        max_objects: At most this many shapes (at least one); fewer when they do not fit without overlapping.

    Returns:
        ``(image, instances)``: ``(H, W, 3)`` uint8 BGR, and per shape a dict with ``label`` (0-based index into
        :data:`SYNTHETIC_COCO_CLASSES`), ``polygon`` (``(K, 2)`` int32 x, y pixel indices of the outline that
        ``cv2.fillPoly`` filled) and ``mask`` (``(H, W)`` bool, the pixels painted).
    """
    w, h = size
    if w < 48 or h < 48:
        raise ValueError(f'image size {w}x{h} is too small; need at least 48x48')
    if max_objects < 1:
        raise ValueError(f'max_objects must be at least 1, got {max_objects}')
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(90, 170, 3).astype(np.float32)
    texture = 15 * np.sin(2 * np.pi * (xx / rng.uniform(12, 40) + yy / rng.uniform(12, 40)))
    image = base[None, None] + texture[..., None]

    instances: list[dict] = []
    placed: list[tuple[float, float, float]] = []
    r_min, r_max = 0.08 * min(w, h), 0.22 * min(w, h)
    for _ in range(20 * max_objects):  # rejection sampling of non-overlapping circles
        if len(instances) == max_objects:
            break
        r = rng.uniform(r_min, r_max)
        cx, cy = rng.uniform(r + 1, w - r - 1), rng.uniform(r + 1, h - r - 1)
        if any((cx - px) ** 2 + (cy - py) ** 2 < (r + pr + 2) ** 2 for px, py, pr in placed):
            continue
        label = int(rng.integers(len(SYNTHETIC_COCO_CLASSES)))
        kind = SYNTHETIC_COCO_CLASSES[label]
        polygon = _polygon(kind, cx, cy, r, rng)
        color = np.clip(np.array(CLASS_COLORS[kind], np.float32) + rng.uniform(-20, 20, 3), 0, 255)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [polygon], 1)
        image[mask.astype(bool)] = color
        placed.append((cx, cy, r))
        instances.append(dict(label=label, polygon=polygon, mask=mask.astype(bool)))
    image += rng.normal(0, 5, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8), instances


def _annotation(ann_id: int, image_id: int, label: int, polygon: np.ndarray, mask: np.ndarray) -> dict:
    """One COCO instance. COCO coordinates are continuous (pixel ``i`` spans ``[i, i + 1]``): the outline goes
    through the centres of the outline pixels, the box encloses every painted pixel."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return dict(id=ann_id, image_id=image_id, category_id=label + 1, iscrowd=0,
                segmentation=[(polygon + 0.5).ravel().tolist()],
                bbox=[x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0], area=float(mask.sum()))


def generate_synthetic_coco(out_dir: str | Path, num_train: int = 8, num_val: int = 4,
                            size: tuple[int, int] = (160, 128), max_objects: int = 4, seed: int = 0) -> Path:
    """Write the dataset under ``out_dir`` and return ``out_dir`` (the ``data_root`` of mmdet configs).

    Image ``i`` of a split depends only on ``(seed, split, i)``. Existing files are overwritten.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f'need at least one image per split, got num_train={num_train} num_val={num_val}')
    root = Path(out_dir)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(SYNTHETIC_COCO_CLASSES)]
    for split_index, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image, instances = render_image(np.random.default_rng([seed, split_index, i]), size, max_objects)
            file_name = f'{split}_{i + 1:06d}.jpg'
            if not cv2.imwrite(str(root / split / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f'could not write {root / split / file_name}')
            images.append(dict(id=i + 1, file_name=file_name, width=size[0], height=size[1]))
            for inst in instances:
                annotations.append(
                    _annotation(len(annotations) + 1, i + 1, inst['label'], inst['polygon'], inst['mask']))
        with open(root / 'annotations' / f'instances_{split}.json', 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root
