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

from mmext.datasets.decoding import find_images, load_annotation
from mmext.fileio import atomic_path, check_outputs
from mmext.visualization import draw_prediction

from .inference import inference_segmentor, load_image


@dataclass
class DemoReport:
    """What :func:`run_demo` wrote and which inputs failed (``(path, error message)``)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _annotation_for(image: Path, ann: Path | None, single: bool) -> Path | None:
    if ann is None:
        return None
    if single and ann.is_file():
        return ann
    if not ann.is_dir():
        raise FileNotFoundError(f'annotation folder not found: {ann}')
    return ann / f'{image.stem}.png'


def plan_demo(inputs: str | Path, out_dir: str | Path, ann: str | Path | None = None, overwrite: bool = False
              ) -> dict[Path, Path]:
    """The picture each image of ``inputs`` will get (see :func:`output_names`), after refusing, before any work,
    an ``out_dir`` that is, holds or lies inside an input (images, annotations) and pictures that would replace
    files this run did not create (unless ``overwrite``). Raises :class:`mmext.fileio.OutputPathError`."""
    images = find_images(inputs)
    outputs = output_names(images, Path(out_dir))
    check_outputs({'--out-dir': [Path(out_dir), *outputs.values()]},
                  {'IMAGE' if Path(inputs).is_file() else 'FOLDER': inputs, '--ann': ann},
                  allow_existing=overwrite)
    return outputs


def run_demo(model: BaseSegmentor, inputs: str | Path, out_dir: str | Path, ann: str | Path | None = None,
             opacity: float = 0.5, reduce_zero_label: bool = False, progress: bool = True,
             overwrite: bool = False) -> DemoReport:
    """Write one picture per image of ``inputs`` (a file or a folder) into ``out_dir``.

    A single image that cannot be read raises (the error names the file). In a folder, an unreadable image or
    annotation is logged and skipped, and the run goes on; the report lists it. Outputs are checked by
    :func:`plan_demo` first and each picture is written under a temporary name, renamed when complete.

    Args:
        model: From :func:`mmext.apis.init_segmentor`.
        inputs: An image file or a folder of images.
        out_dir: Created if needed; pictures are named ``<image stem>.png``.
        ann: Ground truth: a label-map PNG for a single image, or a folder holding ``<image stem>.png`` files.
        opacity: Weight of the label colours over the image, in ``[0, 1]``.
        reduce_zero_label: Annotations use 0 for unlabeled and 1..N for classes (ADE20K).
        progress: Show a progress bar over a folder.
        overwrite: Replace pictures that exist already (never an input).
    """
    if not 0. <= opacity <= 1.:
        raise ValueError(f'opacity must lie in [0, 1], got {opacity}')
    outputs = plan_demo(inputs, out_dir, ann, overwrite)
    single = Path(inputs).is_file()
    ann = Path(ann) if ann is not None else None
    classes = tuple(str(c).strip() for c in model.dataset_meta['classes'])
    palette = np.asarray(model.dataset_meta['palette'], dtype=np.uint8)
    report = DemoReport()
    bar = ProgressBar(len(outputs)) if progress and not single else None
    for image, out_file in outputs.items():
        try:
            ann_file = _annotation_for(image, ann, single)
            gt = load_annotation(ann_file, reduce_zero_label) if ann_file is not None else None
            bgr = load_image(image)
            picture = draw_prediction(bgr, inference_segmentor(model, bgr), gt, classes, palette, opacity)
            with atomic_path(out_file) as temporary:
                if not cv2.imwrite(str(temporary), picture):
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
