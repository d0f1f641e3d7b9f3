"""Loading transforms that check what they load and name the file when it is bad.

mmcv's and mmseg's loaders fail on bad files with messages that do not say which file (``'NoneType' object has no
attribute 'squeeze'`` for an unreadable annotation), or not at all: a class value above the dataset's range
reaches the loss as an out-of-range target, an annotation whose size differs from its image is cropped
alongside it, and a 16-bit annotation is silently wrapped to 8 bits.
"""
from __future__ import annotations

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations

from mmext.registry import TRANSFORMS


class BadSampleError(ValueError):
    """A dataset sample (image or annotation file) that cannot be used; the message names the file."""


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """:class:`mmcv.transforms.LoadImageFromFile` that names the image file when it cannot be read or decoded.

    Grayscale images load as 3-channel images with the default ``color_type='color'``.
    """

    def transform(self, results: dict) -> dict | None:
        try:
            return super().transform(results)
        except AssertionError as err:  # mmcv asserts that the decoder returned an image
            raise BadSampleError(f'cannot decode image {results["img_path"]} (not an image, or corrupt)') from err
        except Exception as err:  # missing file, cv2.error, PIL errors, ...
            raise BadSampleError(f'cannot read image {results["img_path"]}: {err}') from err


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that validates the annotation before using it.

    Raises :class:`BadSampleError` naming the file when the annotation cannot be decoded, is not a single-channel
    map, differs in size from its image (``results['ori_shape']``, set by the image loader), or holds a class value
    outside ``0 .. num_classes - 1`` (``1 .. num_classes`` with ``reduce_zero_label``, where 0 means "ignore");
    ``ignore_index`` (255, mmseg's convention) is always allowed.

    Args:
        num_classes: Number of classes of the dataset; ``None`` skips the value check.
        ignore_index: Value that marks pixels to ignore in the raw annotation.
        **kwargs: Passed to mmseg's ``LoadAnnotations``.
    """

    def __init__(self, num_classes: int | None = None, ignore_index: int = 255, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _load_seg_map(self, results: dict) -> None:
        path = results['seg_map_path']
        try:
            seg = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args), flag='unchanged',
                                   backend=self.imdecode_backend)
        except Exception as err:
            raise BadSampleError(f'cannot read annotation {path}: {err}') from err
        if seg is None:
            raise BadSampleError(f'cannot decode annotation {path}')
        if seg.ndim == 3 and seg.shape[2] == 1:
            seg = seg[..., 0]
        if seg.ndim != 2:
            raise BadSampleError(f'annotation {path} has shape {seg.shape}; expected a single-channel map of class '
                                 'indices (grayscale or palette PNG)')
        img_shape = results.get('ori_shape')
        if img_shape is not None and tuple(seg.shape) != tuple(img_shape[:2]):
            raise BadSampleError(f'image {results.get("img_path")} is {tuple(img_shape[:2])} (height, width) but its '
                                 f'annotation {path} is {tuple(seg.shape)}')

        reduce_zero_label = results.get('reduce_zero_label', False)
        if self.reduce_zero_label is not None and self.reduce_zero_label != reduce_zero_label:
            raise ValueError(f'{type(self).__name__}(reduce_zero_label={self.reduce_zero_label}) disagrees with the '
                             f'dataset (reduce_zero_label={reduce_zero_label})')
        self._check_values(seg, path, reduce_zero_label)

        gt = seg.astype(np.uint8)
        if reduce_zero_label:
            gt = gt - np.uint8(1)  # 0 wraps to 255 (ignore); classes 1..N become 0..N-1
            gt[gt == 254] = 255  # a raw 255 stays "ignore"
        label_map = results.get('label_map')
        if label_map:
            original = gt.copy()
            for old_id, new_id in label_map.items():
                gt[original == old_id] = new_id
        results['gt_seg_map'] = gt
        results['seg_fields'].append('gt_seg_map')

    def _check_values(self, seg: np.ndarray, path: str, reduce_zero_label: bool) -> None:
        if self.num_classes is None:
            highest = 255  # all that mmseg's uint8 maps can hold
        else:
            highest = self.num_classes if reduce_zero_label else self.num_classes - 1
        bad = (seg > highest) & (seg != self.ignore_index)
        if bad.any():
            values = np.unique(seg[bad]).tolist()
            shown = ', '.join(str(v) for v in values[:5]) + (', ...' if len(values) > 5 else '')
            raise BadSampleError(f'annotation {path} holds class value(s) {shown} in {int(bad.sum())} pixel(s); '
                                 f'allowed are 0..{highest} and {self.ignore_index} (ignore)')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_classes={self.num_classes}, ignore_index={self.ignore_index}, '
                f'reduce_zero_label={self.reduce_zero_label}, imdecode_backend={self.imdecode_backend!r})')
