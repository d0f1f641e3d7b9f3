"""Check every image and annotation of a segmentation split before training starts, and list all bad files.

A bad file is otherwise found when first read: a corrupt training image after a few iterations, a corrupt
validation image at the first validation (iteration 16,000 of a 160k schedule). :func:`preflight_check` reads
only file headers by default (readable, decodable header, mode, size; image and annotation sizes agree; the
annotation is an 8-bit single-channel map) in a thread pool; ``full_decode=True`` also decodes every pixel and
checks annotation values against the class range.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

# PIL modes an annotation may have: 8-bit single channel (grayscale or palette indices).
_ANNOTATION_MODES = ('L', 'P')
_IMAGE_MODES = ('1', 'L', 'P', 'RGB', 'RGBA', 'CMYK', 'YCbCr', 'LA', 'I;16', 'I;16B', 'I', 'F')


class PreflightError(ValueError):
    """One or more samples of a dataset split cannot be used; the message lists every bad file."""


@dataclass
class PreflightReport:
    """Outcome of :func:`preflight_check`: how many samples were checked and the problems found, one per file."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.problems


def _open(path: str, full_decode: bool) -> tuple[Image.Image | None, str | None]:
    if not os.path.isfile(path):
        return None, f'{path}: missing' if not os.path.isdir(path) else f'{path}: is a directory'
    try:
        img = Image.open(path)
        if full_decode:
            img.load()
        return img, None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return None, f'{path}: cannot be read ({type(e).__name__}: {e})'


def check_sample(info: Mapping, num_classes: int | None = None, reduce_zero_label: bool = False,
                 ignore_index: int = 255, full_decode: bool = False) -> list[str]:
    """Problems of one sample (``img_path`` and optional ``seg_map_path``, as in mmseg's ``data_list``)."""
    problems = []
    img, err = _open(str(info['img_path']), full_decode)
    if err:
        problems.append(f'image {err}')
    elif img.mode not in _IMAGE_MODES:
        problems.append(f'image {info["img_path"]}: unsupported mode {img.mode}')
    seg_path = info.get('seg_map_path')
    if seg_path is None:
        return problems
    seg, err = _open(str(seg_path), full_decode)
    if err:
        problems.append(f'annotation {err}')
        return problems
    if seg.mode not in _ANNOTATION_MODES:
        problems.append(f'annotation {seg_path}: mode {seg.mode}; expected an 8-bit single-channel map '
                        f'({" or ".join(_ANNOTATION_MODES)}) of class indices')
        return problems
    if img is not None and img.size != seg.size:
        problems.append(f'annotation {seg_path} is {seg.size[0]}x{seg.size[1]} but image {info["img_path"]} is '
                        f'{img.size[0]}x{img.size[1]} (w x h)')
    if full_decode and num_classes is not None:
        values = np.unique(np.asarray(seg))
        highest = num_classes if reduce_zero_label else num_classes - 1
        bad = [int(v) for v in values if v > highest and v != ignore_index]
        if bad:
            problems.append(f'annotation {seg_path}: class value(s) {bad[:5]} outside 0..{highest} and '
                            f'{ignore_index} (ignore)')
    return problems


def preflight_check(data_list: Sequence[Mapping], num_classes: int | None = None, reduce_zero_label: bool = False,
                    ignore_index: int = 255, full_decode: bool = False, workers: int | None = None
                    ) -> PreflightReport:
    """Check every sample of ``data_list`` in parallel (``workers`` threads; default ``min(32, 4 * CPUs)``).

    Header mode costs one ``open`` and a few hundred bytes per file; ``full_decode`` decodes every file and
    checks annotation values (``num_classes``, ``reduce_zero_label``, ``ignore_index`` as in
    :class:`~mmext.datasets.CheckedLoadAnnotations`).
    """
    workers = workers or min(32, 4 * (os.cpu_count() or 1))
    report = PreflightReport(checked=len(data_list))
    with ThreadPoolExecutor(workers) as pool:
        for problems in pool.map(lambda info: check_sample(info, num_classes, reduce_zero_label, ignore_index,
                                                           full_decode), data_list, chunksize=64):
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


def check_dataset(dataset, split: str = 'dataset', full_decode: bool = False, workers: int | None = None
                  ) -> PreflightReport:
    """:func:`preflight_check` over a built mmseg dataset (wrappers looked through); raise :class:`PreflightError`
    listing every bad file of the split, else return the report."""
    total = PreflightReport()
    for leaf, data_list in dataset_samples(dataset):
        num_classes = len((getattr(leaf, 'metainfo', None) or {}).get('classes') or ()) or None
        report = preflight_check(data_list, num_classes, bool(getattr(leaf, 'reduce_zero_label', False)),
                                 int(getattr(leaf, 'ignore_index', 255)), full_decode, workers)
        total.checked += report.checked
        total.problems.extend(report.problems)
    if total.problems:
        shown = '\n  '.join(total.problems[:50])
        more = f'\n  ... and {len(total.problems) - 50} more' if len(total.problems) > 50 else ''
        raise PreflightError(f'{split}: {len(total.problems)} problem(s) in {total.checked} samples; fix or remove '
                             f'these files:\n  {shown}{more}')
    return total
