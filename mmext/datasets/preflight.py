"""Check every image and annotation of a segmentation split before training starts, and list all bad files.

A bad file is otherwise found when first read: a corrupt training image after a few iterations, a corrupt
validation image at the first validation (iteration 16,000 of a 160k schedule), or never: a truncated JPEG
decodes with a grey bottom, a JPEG-compressed label trains on wrong class ids, an image with an EXIF rotation is
turned by the loader while its label is not.

:func:`preflight_check` decodes every file with the loader's own rules (:mod:`mmext.datasets.decoding`, with the
pipeline's ``color_type`` and backends), so it accepts exactly what training reads, and checks what the loader
cannot: label values against the class range, image and label sizes as the loader sees them, and EXIF
orientations that would turn the image but not its label. Files decode in a thread pool (the decoders release the
GIL) sized to the CPUs.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .decoding import (
    ORIENTED_FLAGS,
    BadSampleError,
    check_label_values,
    decode_image,
    decode_label,
    exif_orientation,
    orientation_name,
    read_bytes,
)


class PreflightError(ValueError):
    """One or more samples of a dataset split cannot be used; the message lists every bad file."""


@dataclass(frozen=True)
class DecodeRules:
    """How a pipeline's loaders decode: ``LoadImageFromFile``'s ``color_type`` and ``imdecode_backend``, and
    ``LoadAnnotations``' ``imdecode_backend`` (the defaults are mmcv's and mmseg's)."""

    color_type: str = 'color'
    image_backend: str = 'cv2'
    label_backend: str = 'pillow'

    @classmethod
    def of_pipeline(cls, transforms: Iterable) -> DecodeRules:
        """The rules of the first image and annotation loaders found in ``transforms`` (built transforms, looked
        into through ``Compose`` and ``TestTimeAug``)."""
        found: dict[str, str] = {}

        def visit(items: Iterable) -> None:
            for t in items:
                if hasattr(t, 'color_type') and 'color_type' not in found:
                    found['color_type'], found['image_backend'] = t.color_type, t.imdecode_backend
                elif hasattr(t, 'reduce_zero_label') and hasattr(t, 'imdecode_backend'):
                    found.setdefault('label_backend', t.imdecode_backend)
                for child in (getattr(t, 'transforms', None), getattr(t, 'subroutines', None)):
                    if isinstance(child, (list, tuple)):
                        visit(child)
        visit(transforms)
        return cls(**found)


@dataclass
class PreflightReport:
    """Outcome of :func:`preflight_check`: how many samples were checked and the problems found, one per file."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.problems


def _orientation_problem(img_path: str, content: bytes, img: np.ndarray, seg_shape: tuple[int, int],
                         seg_path: str, rules: DecodeRules) -> str | None:
    """Whether the loader turns the image (EXIF orientation) in a way its label does not follow."""
    if rules.color_type not in ORIENTED_FLAGS:
        return None
    orientation = exif_orientation(content)
    if orientation == 1:
        return None
    stored = decode_image(content, img_path, f'{rules.color_type}_ignore_orientation', rules.image_backend)
    if stored.shape == img.shape and np.array_equal(stored, img):
        return None  # this decoder does not apply the tag for this format
    loaded, raw = tuple(img.shape[:2]), tuple(stored.shape[:2])
    if seg_shape == loaded != raw:
        return None  # the label was drawn on the image as displayed, which is what the loader reads
    why = ('the label has the stored shape, not the loaded one' if seg_shape == raw != loaded else
           'the label could have been drawn on either view')
    return (f'image {img_path}: EXIF orientation {orientation} ({orientation_name(orientation)}) is applied by the '
            f'loader (color_type={rules.color_type!r}) but not to its annotation {seg_path} ({why}). Fix: if the '
            'label was drawn on the image as displayed, save the image with the orientation applied '
            '(PIL.ImageOps.exif_transpose) and no orientation tag; if it was drawn on the stored pixels, remove '
            "the tag, or load images with color_type='color_ignore_orientation'")


def check_sample(info: Mapping, num_classes: int | None = None, reduce_zero_label: bool = False,
                 ignore_index: int = 255, rules: DecodeRules = DecodeRules()) -> list[str]:
    """Problems of one sample (``img_path`` and optional ``seg_map_path``, as in mmseg's ``data_list``)."""
    img_path, seg_path = str(info['img_path']), info.get('seg_map_path')
    problems, img = [], None
    try:
        content = read_bytes(img_path, what='image')
        img = decode_image(content, img_path, rules.color_type, rules.image_backend)
    except BadSampleError as e:
        problems.append(str(e))
    if seg_path is None:
        return problems
    seg_path = str(seg_path)
    try:
        seg = decode_label(read_bytes(seg_path, what='annotation'), seg_path, rules.label_backend)
        check_label_values(seg, seg_path, num_classes, reduce_zero_label, ignore_index)
    except BadSampleError as e:
        return problems + [str(e)]
    if img is None:
        return problems
    try:
        turned = _orientation_problem(img_path, content, img, tuple(seg.shape), seg_path, rules)
    except BadSampleError as e:
        turned = str(e)
    if turned:
        problems.append(turned)
    elif tuple(seg.shape) != tuple(img.shape[:2]):
        problems.append(f'annotation {seg_path} is {seg.shape[1]}x{seg.shape[0]} but image {img_path} is '
                        f'{img.shape[1]}x{img.shape[0]} (w x h) as the loader reads it')
    return problems


def default_workers() -> int:
    """Threads for the scan: one per CPU this process may use (decoding releases the GIL)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def preflight_check(data_list: Sequence[Mapping], num_classes: int | None = None, reduce_zero_label: bool = False,
                    ignore_index: int = 255, rules: DecodeRules = DecodeRules(), workers: int | None = None
                    ) -> PreflightReport:
    """Decode and check every sample of ``data_list`` in ``workers`` threads (default: one per CPU).

    ``num_classes``, ``reduce_zero_label`` and ``ignore_index`` set the allowed label values as in
    :class:`~mmext.datasets.CheckedLoadAnnotations`; ``rules`` are the loaders' decoding settings.
    """
    report = PreflightReport(checked=len(data_list))
    with ThreadPoolExecutor(workers or default_workers()) as pool:
        for problems in pool.map(lambda info: check_sample(info, num_classes, reduce_zero_label, ignore_index,
                                                           rules), data_list):
            report.problems.extend(problems)
    return report


def dataset_samples(dataset) -> Iterable[tuple[object, list[dict]]]:
    """``(dataset, data_list)`` of each leaf dataset inside mmengine's wrappers (Concat, Repeat, ClassBalanced)."""
    if hasattr(dataset, 'datasets'):
        for child in dataset.datasets:
            yield from dataset_samples(child)
        return
    if hasattr(dataset, 'dataset') and not hasattr(dataset, 'get_data_info'):
        yield from dataset_samples(dataset.dataset)
        return
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    if hasattr(dataset, 'get_data_info'):  # BaseDataset serialises data_list and empties it
        yield dataset, [dataset.get_data_info(i) for i in range(len(dataset))]
    else:
        yield dataset, list(getattr(dataset, 'data_list', []))


def check_dataset(dataset, split: str = 'dataset', workers: int | None = None) -> PreflightReport:
    """:func:`preflight_check` over a built mmseg dataset (wrappers looked through, decoding rules taken from its
    pipeline); raise :class:`PreflightError` listing every bad file of the split, else return the report."""
    total = PreflightReport()
    for leaf, data_list in dataset_samples(dataset):
        num_classes = len((getattr(leaf, 'metainfo', None) or {}).get('classes') or ()) or None
        pipeline = getattr(getattr(leaf, 'pipeline', None), 'transforms', None) or []
        report = preflight_check(data_list, num_classes, bool(getattr(leaf, 'reduce_zero_label', False)),
                                 int(getattr(leaf, 'ignore_index', 255)), DecodeRules.of_pipeline(pipeline), workers)
        total.checked += report.checked
        total.problems.extend(report.problems)
    if total.problems:
        shown = '\n  '.join(total.problems[:50])
        more = f'\n  ... and {len(total.problems) - 50} more' if len(total.problems) > 50 else ''
        raise PreflightError(f'{split}: {len(total.problems)} problem(s) in {total.checked} samples; fix or remove '
                             f'these files:\n  {shown}{more}')
    return total
