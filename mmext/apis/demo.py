"""Segment images and write pictures of the result: the functions behind ``tools/demo/image_demo.py``.

Per image one PNG, ``<out_dir>/<image stem>.png`` (``<stem>_<suffix>.png`` when two inputs share a stem): the
prediction blended over the image with a legend of the classes present, or, when a ground-truth annotation is
given, input / ground truth / prediction side by side with one legend (drawing: :mod:`mmext.visualization`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from mmseg.models import BaseSegmentor

from mmext.visualization import overlay, side_by_side

from .inference import inference_segmentor, load_image

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


@dataclass
class DemoReport:
    """What :func:`run_demo` wrote and which inputs failed (``(path, error message)``)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def find_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else the image files (by suffix) directly inside the folder, sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f'image or folder not found: {path}')
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f'no image files ({", ".join(IMAGE_SUFFIXES)}) in folder {path}')
    return images


def load_annotation(path: str | Path, reduce_zero_label: bool = False) -> np.ndarray:
    """Read a label-map PNG as an ``(H, W)`` integer array, as mmseg's ``LoadAnnotations`` does.

    ``reduce_zero_label`` (ADE20K) maps label 0 (unlabeled) to 255 and every other label ``l`` to ``l - 1``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'annotation not found: {path}')
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    label = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if label is None:
        raise ValueError(f'cannot decode annotation {path}: not an image file, or corrupt')
    if label.ndim != 2:
        raise ValueError(f'annotation {path} must be a one-channel label map, got shape {label.shape}')
    label = label.astype(np.int64)
    if reduce_zero_label:
        label = np.where(label == 0, 255, label - 1)
        label[label == 254] = 255
    return label


def draw_prediction(model: BaseSegmentor, image: str | Path | np.ndarray, gt: np.ndarray | None = None,
                    opacity: float = 0.5) -> np.ndarray:
    """Segment ``image`` and return the picture (BGR ``uint8``): an overlay with legend, or side by side with
    ``gt`` (an ``(H, W)`` label map in the model's class ids, 255 unlabeled) when given."""
    bgr = load_image(image)
    pred = inference_segmentor(model, bgr)
    classes = tuple(str(c).strip() for c in model.dataset_meta['classes'])
    palette = np.asarray(model.dataset_meta['palette'], dtype=np.uint8)
    if gt is None:
        return overlay(bgr, pred, alpha=opacity, classes=classes, palette=palette)
    if gt.shape != pred.shape:
        raise ValueError(f'annotation is {gt.shape[1]}x{gt.shape[0]} but the image is {pred.shape[1]}x'
                         f'{pred.shape[0]} (w x h)')
    return side_by_side(bgr, gt, pred, classes=classes, palette=palette, alpha=opacity)


def _annotation_for(image: Path, ann: Path | None, single: bool) -> Path | None:
    if ann is None:
        return None
    if single and ann.is_file():
        return ann
    if not ann.is_dir():
        raise FileNotFoundError(f'annotation folder not found: {ann}')
    return ann / f'{image.stem}.png'


def run_demo(model: BaseSegmentor, inputs: str | Path, out_dir: str | Path, ann: str | Path | None = None,
             opacity: float = 0.5, reduce_zero_label: bool = False, progress: bool = True) -> DemoReport:
    """Write one picture per image of ``inputs`` (a file or a folder) into ``out_dir``.

    A single image that cannot be read raises (the error names the file). In a folder, an unreadable image or
    annotation is logged and skipped, and the run goes on; the report lists it.

    Args:
        model: From :func:`mmext.apis.init_segmentor`.
        inputs: An image file or a folder of images.
        out_dir: Created if needed; pictures are named ``<image stem>.png``.
        ann: Ground truth: a label-map PNG for a single image, or a folder holding ``<image stem>.png`` files.
        opacity: Weight of the label colours over the image, in ``[0, 1]``.
        reduce_zero_label: Annotations use 0 for unlabeled and 1..N for classes (ADE20K).
        progress: Show a progress bar over a folder.
    """
    if not 0. <= opacity <= 1.:
        raise ValueError(f'opacity must lie in [0, 1], got {opacity}')
    images = find_images(inputs)
    single = Path(inputs).is_file()
    ann = Path(ann) if ann is not None else None
    out_dir = Path(out_dir)
    outputs = output_names(images, out_dir)
    inputs_resolved = {p.resolve() for p in images}
    clashes = [str(o) for o in outputs.values() if o.resolve() in inputs_resolved]
    if clashes:
        raise ValueError(f'refusing to overwrite input image(s) {", ".join(clashes[:5])}: choose an --out-dir '
                         'other than the input folder')
    out_dir.mkdir(parents=True, exist_ok=True)
    report = DemoReport()
    bar = ProgressBar(len(images)) if progress and not single else None
    for image in images:
        try:
            ann_file = _annotation_for(image, ann, single)
            gt = load_annotation(ann_file, reduce_zero_label) if ann_file is not None else None
            picture = draw_prediction(model, image, gt, opacity)
            out_file = outputs[image]
            if not cv2.imwrite(str(out_file), picture):
                raise OSError(f'could not write {out_file}')
            report.written.append(out_file)
        except Exception as e:  # noqa: BLE001  (one bad image, e.g. too small for the network, must not end the folder)
            if single:
                raise
            report.failed.append((image, str(e)))
            print_log(f'skipped {image}: {e}', logger='current', level=logging.WARNING)
        if bar is not None:
            bar.update()
    return report


def output_names(images: list[Path], out_dir: Path) -> dict[Path, Path]:
    """``<out_dir>/<stem>.png`` per image, or ``<stem>_<suffix>.png`` for images sharing a stem (``a.jpg`` and
    ``a.png`` give ``a_jpg.png`` and ``a_png.png``), so no picture overwrites another."""
    stems: dict[str, int] = {}
    for image in images:
        stems[image.stem] = stems.get(image.stem, 0) + 1
    return {image: out_dir / (f'{image.stem}.png' if stems[image.stem] == 1
                              else f'{image.stem}_{image.suffix.lstrip(".").lower()}.png') for image in images}


def reduce_zero_label_of(cfg) -> bool:
    """Whether the config's test pipeline (``LoadAnnotations``) or test dataset uses ``reduce_zero_label``."""
    for step in cfg.get('test_pipeline') or []:
        if step.get('type') == 'LoadAnnotations':
            return bool(step.get('reduce_zero_label', False))
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    return str(dataset.get('type', '')).endswith('ADE20KDataset') or bool(dataset.get('reduce_zero_label', False))

