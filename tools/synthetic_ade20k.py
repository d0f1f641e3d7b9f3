"""A small, learnable, ADE20K-layout dataset that the project generates itself (for the demo and tests).

Scenes have an upper "stuff" region (sky or wall) and a lower one (floor, road, grass or water) split at a random
wavy horizon, with buildings, trees, people and cars on top and, in about half of the images, a patch of random
clutter left unlabeled. Every class has its own colour and texture (some share a colour and differ only by
texture), so a small network can learn them from local appearance in a few hundred CPU iterations.

The files follow ADE20K's release exactly, so mmseg's own ``ADE20KDataset`` reads them unchanged::

    <out_dir>/ADEChallengeData2016/images/{training,validation}/synthetic_{split}_00000001.jpg
    <out_dir>/ADEChallengeData2016/annotations/{training,validation}/synthetic_{split}_00000001.png

Annotations are 8-bit single-channel PNGs in ADE20K's 150-class space: value ``v = class_id + 1`` for the class
ids of ``ADE20KDataset.METAINFO['classes']`` and ``0`` for unlabeled, which ``reduce_zero_label=True`` turns into
``255``. Output is a pure function of ``seed`` and the sizes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SPLITS = ('training', 'validation')


@dataclass(frozen=True)
class SyntheticClass:
    """How one ADE20K class is drawn: a BGR base colour and a texture name (see :func:`_texture`)."""
    name: str
    class_id: int  # 0-based id in ADE20K's 150 classes (annotation value is class_id + 1)
    color: tuple[int, int, int]
    texture: str


# Pairs with close colours (road/building, grass/tree) differ by texture; the rest differ by colour.
SYNTHETIC_CLASSES: dict[str, SyntheticClass] = {c.name: c for c in (
    SyntheticClass('wall', 0, (150, 185, 215), 'flat'),
    SyntheticClass('building', 1, (125, 125, 125), 'windows'),
    SyntheticClass('sky', 2, (235, 200, 140), 'gradient'),
    SyntheticClass('floor', 3, (45, 90, 150), 'checker'),
    SyntheticClass('tree', 4, (50, 120, 50), 'dots'),
    SyntheticClass('road', 6, (110, 110, 110), 'flat'),
    SyntheticClass('grass', 9, (60, 150, 70), 'vstripes'),
    SyntheticClass('person', 12, (70, 60, 200), 'flat'),
    SyntheticClass('car', 20, (30, 200, 230), 'hstripes'),
    SyntheticClass('water', 21, (170, 110, 40), 'waves'),
)}
UPPER = ('sky', 'wall')
LOWER = ('floor', 'road', 'grass', 'water')
OBJECTS = ('building', 'tree', 'person', 'car')


def _texture(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An ``(h, w)`` float offset pattern in about [-40, 40] added to a class's base colour."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 'flat':
        return np.zeros((h, w), np.float32)
    if kind == 'gradient':
        return 40. * (yy / max(h - 1, 1)) - 20.
    if kind == 'checker':
        return 30. * (((yy // 8 + xx // 8) % 2) * 2 - 1)
    if kind == 'vstripes':
        return 35. * np.sign(np.sin(2 * np.pi * xx / 4 + phase))
    if kind == 'hstripes':
        return 35. * np.sign(np.sin(2 * np.pi * yy / 6 + phase))
    if kind == 'waves':
        return 30. * np.sin(2 * np.pi * (yy / 7 + 0.5 * np.sin(2 * np.pi * xx / 24)) + phase)
    if kind == 'dots':
        return 40. * ((np.sin(2 * np.pi * xx / 6 + phase) * np.sin(2 * np.pi * yy / 6)) > 0.5) - 15.
    if kind == 'windows':
        return -45. * (((yy % 10) < 5) & ((xx % 8) < 4))
    raise ValueError(f'unknown texture {kind!r}; known: flat gradient checker vstripes hstripes waves dots windows')


def _paint(image: np.ndarray, label: np.ndarray, mask: np.ndarray, cls: SyntheticClass,
           rng: np.random.Generator) -> None:
    """Fill ``mask`` with ``cls``'s jittered colour plus texture, and its annotation value."""
    h, w = mask.shape
    color = np.clip(np.array(cls.color, np.float32) + rng.uniform(-15, 15, 3), 0, 255)
    layer = color[None, None] + _texture(cls.texture, h, w, rng)[..., None]
    image[mask] = layer[mask]
    label[mask] = cls.class_id + 1


def render_scene(rng: np.random.Generator, size: tuple[int, int] = (256, 192)) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene.

    Args:
        rng: The only source of randomness.
        size: ``(width, height)`` in pixels.

    Returns:
        ``(image, annotation)``: ``(H, W, 3)`` uint8 BGR and ``(H, W)`` uint8 ADE20K annotation values.
    """
    w, h = size
    if w < 32 or h < 32:
        raise ValueError(f'scene size {w}x{h} is too small; need at least 32x32')
    image = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    horizon = (rng.uniform(0.3, 0.6) * h + rng.uniform(2, 8) * np.sin(2 * np.pi * xx / rng.uniform(40, 120)
                                                                        + rng.uniform(0, 2 * np.pi)))
    upper = yy < horizon
    _paint(image, label, upper, SYNTHETIC_CLASSES[rng.choice(UPPER)], rng)
    lower_kinds = rng.choice(LOWER, size=2, replace=False)
    split = xx < rng.uniform(0.3, 0.7) * w if rng.random() < 0.5 else np.zeros_like(upper)
    _paint(image, label, ~upper & split, SYNTHETIC_CLASSES[lower_kinds[0]], rng)
    _paint(image, label, ~upper & ~split, SYNTHETIC_CLASSES[lower_kinds[1]], rng)

    horizon_y = int(horizon.mean())
    for _ in range(rng.integers(2, 6)):
        kind = rng.choice(OBJECTS)
        mask = np.zeros((h, w), np.uint8)
        if kind == 'building':
            bw, bh = int(rng.uniform(0.1, 0.3) * w), int(rng.uniform(0.2, 0.5) * h)
            x0 = int(rng.uniform(0, w - bw))
            cv2.rectangle(mask, (x0, max(horizon_y - bh, 0)), (x0 + bw, horizon_y + 2), 1, -1)
        elif kind == 'tree':
            r = int(rng.uniform(0.06, 0.14) * h)
            cv2.circle(mask, (int(rng.uniform(0, w)), int(rng.uniform(horizon_y - 2 * r, horizon_y + r))), r, 1, -1)
        elif kind == 'person':
            ph = int(rng.uniform(0.12, 0.3) * h)
            center = (int(rng.uniform(0, w)), int(rng.uniform(horizon_y, h - ph // 2)))
            cv2.ellipse(mask, center, (max(ph // 5, 2), ph // 2), 0, 0, 360, 1, -1)
        else:  # car
            cw, ch = int(rng.uniform(0.12, 0.25) * w), int(rng.uniform(0.06, 0.14) * h)
            x0, y0 = int(rng.uniform(0, w - cw)), int(rng.uniform(horizon_y, h - ch))
            cv2.rectangle(mask, (x0, y0), (x0 + cw, y0 + ch), 1, -1)
        _paint(image, label, mask.astype(bool), SYNTHETIC_CLASSES[kind], rng)

    if rng.random() < 0.5:  # unlabeled clutter: random colours, annotation 0
        center, radius = rng.uniform(0, 1, 2) * (w, h), rng.uniform(0.1, 0.25) * min(w, h)
        pts = (center + radius * rng.uniform(-1, 1, (3, 2))).astype(np.int32)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [pts], 1)
        mask = mask.astype(bool)
        image[mask] = rng.uniform(0, 255, (int(mask.sum()), 3))
        label[mask] = 0

    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8), label


def generate_synthetic_ade20k(out_dir: str | Path, num_train: int = 200, num_val: int = 20,
                              size: tuple[int, int] = (256, 192), seed: int = 0) -> Path:
    """Write a synthetic dataset in ADE20K's layout and return its ``data_root`` (``out_dir/ADEChallengeData2016``).

    Image ``i`` of a split depends only on ``(seed, split, i)``, so changing ``num_train`` keeps the first images.
    Existing files are overwritten.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f'need at least one image per split, got num_train={num_train} num_val={num_val}')
    data_root = Path(out_dir) / 'ADEChallengeData2016'
    for split_index, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
        img_dir = data_root / 'images' / split
        ann_dir = data_root / 'annotations' / split
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rng = np.random.default_rng([seed, split_index, i])
            image, label = render_scene(rng, size)
            stem = f'synthetic_{split}_{i + 1:08d}'
            if not cv2.imwrite(str(img_dir / f'{stem}.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f'could not write {img_dir / stem}.jpg')
            if not cv2.imwrite(str(ann_dir / f'{stem}.png'), label):
                raise OSError(f'could not write {ann_dir / stem}.png')
    return data_root


def class_pixel_counts(ann_dir: str | Path, num_classes: int = 150) -> np.ndarray:
    """Pixels per class id (after ``reduce_zero_label``: annotation value ``v`` counts for ``v - 1``; 0 is skipped)."""
    paths = sorted(Path(ann_dir).glob('*.png'))
    if not paths:
        raise FileNotFoundError(f'no annotation PNGs in {ann_dir}')
    counts = np.zeros(num_classes + 1, np.int64)
    for path in paths:
        ann = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if ann is None or ann.ndim != 2 or ann.max() > num_classes:
            raise ValueError(f'{path} is not a single-channel annotation with values 0..{num_classes}')
        counts += np.bincount(ann.ravel(), minlength=num_classes + 1)
    return counts[1:]


def chance_miou(pixel_counts: Sequence[int] | np.ndarray) -> dict[str, float | int]:
    """mIoU (in %) of two chance-level predictors, averaged over the classes present, as IoUMetric averages.

    ``uniform``: each pixel gets one of the ``K`` present classes uniformly at random; class ``c`` with pixel
    share ``p`` then has expected IoU ``p / (K p + 1 - p)``. ``majority``: every pixel gets the most frequent
    class, whose IoU is its share; the other classes score 0.
    """
    counts = np.asarray(pixel_counts, np.float64)
    counts = counts[counts > 0]
    if counts.size == 0:
        raise ValueError('no labeled pixels: chance level is undefined')
    share = counts / counts.sum()
    k = len(share)
    return dict(uniform=float(100 * np.mean(share / (k * share + 1 - share))),
                majority=float(100 * share.max() / k), num_classes_present=k)
