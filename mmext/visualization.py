"""Pictures of segmentation maps: colour them, overlay them on the image, put image / GT / prediction side by side.

Conventions, the same in every function here:

* images in and out are ``(H, W, 3)`` ``uint8`` arrays in **BGR** order, as ``mmcv.imread`` / ``cv2.imread``
  return them and ``cv2.imwrite`` expects them;
* palettes are ``(num_classes, 3)`` **RGB** triples, the order of a dataset's ``METAINFO['palette']`` (mmseg's
  ``SegLocalVisualizer`` draws them on RGB images); they are flipped to BGR when drawn;
* label maps are ``(H, W)`` integer arrays of class ids ``0..num_classes-1``, with ``ignore_index`` for unlabeled
  pixels (ADE20K's ``0`` after ``reduce_zero_label``), drawn in ``ignore_color``.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from mmseg.datasets import ADE20KDataset

# mmseg's names carry a stray trailing space ('bed '); it is dropped for display only.
ADE20K_CLASSES: tuple[str, ...] = tuple(name.strip() for name in ADE20KDataset.METAINFO['classes'])
ADE20K_PALETTE: np.ndarray = np.array(ADE20KDataset.METAINFO['palette'], dtype=np.uint8)  # (150, 3) RGB
IGNORE_COLOR: tuple[int, int, int] = (0, 0, 0)  # RGB; not an ADE20K palette colour
IGNORE_NAME = 'unlabeled'

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_TEXT_COLOR = (0, 0, 0)
_BACKGROUND = 255
_PAD = 6
_ROW_HEIGHT = 18
_SWATCH = 14
_TITLE_HEIGHT = 24


def _check_palette(palette: Sequence | np.ndarray) -> np.ndarray:
    palette = np.asarray(palette)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ValueError(f'palette must be a (num_classes, 3) array of RGB triples, got shape {palette.shape}')
    if palette.min() < 0 or palette.max() > 255:
        raise ValueError(f'palette values must lie in 0..255, got {palette.min()}..{palette.max()}')
    return palette.astype(np.uint8)


def _check_label_map(label_map: np.ndarray, num_classes: int, ignore_index: int, name: str = 'label_map'
                     ) -> np.ndarray:
    label_map = np.asarray(label_map)
    if label_map.ndim == 3 and label_map.shape[0] == 1:  # (1, H, W), as mmseg's PixelData stores it
        label_map = label_map[0]
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f'{name} must be an (H, W) integer array, got shape {label_map.shape} '
                         f'dtype {label_map.dtype}')
    bad = (label_map != ignore_index) & ((label_map < 0) | (label_map >= num_classes))
    if bad.any():
        raise ValueError(f'{name} has values {sorted(np.unique(label_map[bad]).tolist())[:10]} outside '
                         f'0..{num_classes - 1} that are not ignore_index={ignore_index}')
    return label_map


def _check_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'image must be an (H, W, 3) uint8 BGR array, got shape {image.shape} dtype {image.dtype}')
    if image.shape[:2] != tuple(shape):
        raise ValueError(f'image is {image.shape[1]}x{image.shape[0]} (w x h) but the label map is '
                         f'{shape[1]}x{shape[0]}')
    return image


def colorize(label_map: np.ndarray, palette: Sequence | np.ndarray = ADE20K_PALETTE, ignore_index: int = 255,
             ignore_color: Sequence[int] = IGNORE_COLOR) -> np.ndarray:
    """Paint a label map with a palette.

    Args:
        label_map: ``(H, W)`` (or ``(1, H, W)``) integer class ids.
        palette: ``(num_classes, 3)`` RGB colours, one per class id.
        ignore_index: Label of unlabeled pixels, painted ``ignore_color``.
        ignore_color: RGB colour of unlabeled pixels.

    Returns:
        ``(H, W, 3)`` uint8 BGR image.
    """
    palette = _check_palette(palette)
    label_map = _check_label_map(label_map, len(palette), ignore_index)
    lut = np.concatenate([palette, np.asarray(ignore_color, dtype=np.uint8)[None]])[:, ::-1]  # RGB -> BGR
    index = np.where(label_map == ignore_index, len(palette), label_map)
    return np.ascontiguousarray(lut[index])


def legend_entries(label_maps: Sequence[np.ndarray], classes: Sequence[str] = ADE20K_CLASSES,
                   palette: Sequence | np.ndarray = ADE20K_PALETTE, ignore_index: int = 255,
                   ignore_color: Sequence[int] = IGNORE_COLOR) -> list[tuple[int, str, tuple[int, int, int]]]:
    """The legend rows for the classes present in any of ``label_maps``.

    Returns:
        ``(class_id, name, rgb)`` per present class in increasing id order, then ``(ignore_index, 'unlabeled',
        ignore_color)`` if any pixel is ``ignore_index``.
    """
    palette = _check_palette(palette)
    if len(classes) != len(palette):
        raise ValueError(f'{len(classes)} class names but {len(palette)} palette colours')
    present: set[int] = set()
    for i, label_map in enumerate(label_maps):
        label_map = _check_label_map(label_map, len(palette), ignore_index, name=f'label_maps[{i}]')
        present.update(np.unique(label_map).tolist())
    entries = [(c, classes[c], tuple(int(v) for v in palette[c])) for c in sorted(present - {ignore_index})]
    if ignore_index in present:
        entries.append((ignore_index, IGNORE_NAME, tuple(int(v) for v in ignore_color)))
    return entries


def _legend_labels(entries: Sequence[tuple[int, str, Sequence[int]]]) -> list[str]:
    return [name if name == IGNORE_NAME else f'{class_id} {name}' for class_id, name, _ in entries]


def legend_swatch_boxes(entries: Sequence[tuple[int, str, Sequence[int]]], height: int
                        ) -> list[tuple[int, int, int, int]]:
    """``(x, y, w, h)`` of each entry's colour swatch in the panel :func:`draw_legend` draws ``height`` high.

    Rows fill a column top to bottom, then wrap into the next column; a column is as wide as the widest label.
    """
    if height < _PAD + _ROW_HEIGHT:
        raise ValueError(f'legend height {height} is below one row ({_PAD + _ROW_HEIGHT} pixels)')
    rows_per_column = (height - _PAD) // _ROW_HEIGHT
    text_width = max((cv2.getTextSize(t, _FONT, _FONT_SCALE, 1)[0][0] for t in _legend_labels(entries)), default=0)
    column_width = _SWATCH + text_width + 3 * _PAD
    return [((row // rows_per_column) * column_width + _PAD, _PAD + (row % rows_per_column) * _ROW_HEIGHT,
             _SWATCH, _SWATCH) for row in range(len(entries))] or [(_PAD, _PAD, 0, 0)]


def draw_legend(entries: Sequence[tuple[int, str, Sequence[int]]], height: int) -> np.ndarray:
    """Draw legend rows (colour swatch, then ``id name``) into a white BGR panel ``height`` pixels high.

    Rows that do not fit the height wrap into further columns, so the panel grows in width, never in height.
    """
    boxes = legend_swatch_boxes(entries, height)
    labels = _legend_labels(entries)
    text_width = max((cv2.getTextSize(t, _FONT, _FONT_SCALE, 1)[0][0] for t in labels), default=0)
    width = boxes[-1][0] + _SWATCH + text_width + 2 * _PAD
    panel = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)
    for (_, _, rgb), text, (x, y, w, h) in zip(entries, labels, boxes):
        panel[y:y + h, x:x + w] = tuple(int(v) for v in rgb)[::-1]
        cv2.putText(panel, text, (x + w + _PAD, y + h - 2), _FONT, _FONT_SCALE, _TEXT_COLOR, 1, cv2.LINE_AA)
    return panel


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.5, classes: Sequence[str] = ADE20K_CLASSES,
            palette: Sequence | np.ndarray = ADE20K_PALETTE, ignore_index: int = 255, legend: bool = True
            ) -> np.ndarray:
    """Blend a colourised label map over a BGR image, with a legend of the classes present on the right.

    ``alpha`` is the weight of the label colours (``0`` keeps the image, ``1`` shows pure colours); unlabeled
    pixels keep the image unchanged. Returns a BGR image as high as ``image`` and wider by the legend's width.
    """
    if not 0. <= alpha <= 1.:
        raise ValueError(f'alpha must lie in [0, 1], got {alpha}')
    label_map = _check_label_map(label_map, len(_check_palette(palette)), ignore_index)
    image = _check_image(image, label_map.shape)
    colors = colorize(label_map, palette, ignore_index)
    blended = np.round((1. - alpha) * image.astype(np.float32) + alpha * colors.astype(np.float32))
    out = np.where((label_map == ignore_index)[..., None], image, blended.astype(np.uint8))
    if not legend:
        return out
    entries = [e for e in legend_entries([label_map], classes, palette, ignore_index) if e[0] != ignore_index]
    return np.concatenate([out, draw_legend(entries, out.shape[0])], axis=1)


def _with_title(panel: np.ndarray, title: str) -> np.ndarray:
    bar = np.full((_TITLE_HEIGHT, panel.shape[1], 3), _BACKGROUND, dtype=np.uint8)
    cv2.putText(bar, title, (_PAD, _TITLE_HEIGHT - 8), _FONT, 0.55, _TEXT_COLOR, 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def side_by_side(image: np.ndarray, gt: np.ndarray, pred: np.ndarray,
                 titles: Sequence[str] = ('input', 'ground truth', 'prediction'),
                 classes: Sequence[str] = ADE20K_CLASSES, palette: Sequence | np.ndarray = ADE20K_PALETTE,
                 ignore_index: int = 255, alpha: float = 1.) -> np.ndarray:
    """Input, ground truth and prediction in one BGR picture, with one legend for the classes in either map.

    Layout, left to right: the three panels (each ``W`` wide, separated by ``6`` white pixels) under a
    ``24``-pixel title bar, then the legend (the classes of ``gt`` and ``pred``, plus ``unlabeled`` when ``gt``
    has ignored pixels). ``alpha < 1`` blends the label colours over the image instead of showing them pure.
    """
    if len(titles) != 3:
        raise ValueError(f'titles must name the 3 panels (input, ground truth, prediction), got {list(titles)}')
    gt = _check_label_map(gt, len(_check_palette(palette)), ignore_index, name='gt')
    pred = _check_label_map(pred, len(_check_palette(palette)), ignore_index, name='pred')
    if gt.shape != pred.shape:
        raise ValueError(f'gt is {gt.shape[1]}x{gt.shape[0]} but pred is {pred.shape[1]}x{pred.shape[0]} (w x h)')
    image = _check_image(image, gt.shape)
    panels = [image] + [overlay(image, m, alpha, classes, palette, ignore_index, legend=False) if alpha < 1.
                        else colorize(m, palette, ignore_index) for m in (gt, pred)]
    gap = np.full((gt.shape[0] + _TITLE_HEIGHT, _PAD, 3), _BACKGROUND, dtype=np.uint8)
    columns = []
    for panel, title in zip(panels, titles):
        columns += [_with_title(panel, title), gap]
    columns.append(_with_title(draw_legend(legend_entries([gt, pred], classes, palette, ignore_index),
                                           gt.shape[0]), 'classes'))
    return np.concatenate(columns, axis=1)


def draw_prediction(image: np.ndarray, pred: np.ndarray, gt: np.ndarray | None = None,
                    classes: Sequence[str] = ADE20K_CLASSES, palette: Sequence | np.ndarray = ADE20K_PALETTE,
                    opacity: float = 0.5, ignore_index: int = 255) -> np.ndarray:
    """The picture of one prediction, as every mmext demo draws it: :func:`overlay` with a legend, or, given the
    ground truth ``gt``, :func:`side_by_side` with the label colours blended at ``opacity``."""
    if gt is None:
        return overlay(image, pred, opacity, classes, palette, ignore_index)
    return side_by_side(image, gt, pred, classes=classes, palette=palette, ignore_index=ignore_index, alpha=opacity)
