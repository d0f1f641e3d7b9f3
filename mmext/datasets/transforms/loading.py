"""Loading transforms that check what they load and name the file when it is bad.

mmcv's and mmseg's loaders fail on bad files with messages that do not say which file (``'NoneType' object has no
attribute 'squeeze'`` for an unreadable annotation), or not at all: a class value above the dataset's range
reaches the loss as an out-of-range target, an annotation whose size differs from its image is cropped
alongside it, and a 16-bit annotation is silently wrapped to 8 bits.
"""
from __future__ import annotations

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations

from mmext.registry import TRANSFORMS

from ..decoding import BadSampleError, check_label_values, decode_image, decode_label, read_bytes, reduce_zero_label


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """:class:`mmcv.transforms.LoadImageFromFile` that names the image file when it cannot be read or decoded,
    and refuses a truncated or oversized one (:func:`mmext.datasets.decoding.decode_image`).

    Grayscale images load as 3-channel images with the default ``color_type='color'``.
    """

    def transform(self, results: dict) -> dict | None:
        path = results['img_path']
        try:
            content = read_bytes(path, self.backend_args, 'image')
            img = decode_image(content, path, self.color_type, self.imdecode_backend)
        except BadSampleError:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


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
        seg = decode_label(read_bytes(path, self.backend_args, 'annotation'), path, self.imdecode_backend)
        img_shape = results.get('ori_shape')
        if img_shape is not None and tuple(seg.shape) != tuple(img_shape[:2]):
            raise BadSampleError(f'image {results.get("img_path")} is {tuple(img_shape[:2])} (height, width) but its '
                                 f'annotation {path} is {tuple(seg.shape)}')
        reduce = results.get('reduce_zero_label', False)
        if self.reduce_zero_label is not None and self.reduce_zero_label != reduce:
            raise ValueError(f'{type(self).__name__}(reduce_zero_label={self.reduce_zero_label}) disagrees with the '
                             f'dataset (reduce_zero_label={reduce})')
        check_label_values(seg, path, self.num_classes, reduce, self.ignore_index)
        gt = reduce_zero_label(seg) if reduce else seg.astype(np.uint8)
        label_map = results.get('label_map')
        if label_map:
            original = gt.copy()
            for old_id, new_id in label_map.items():
                gt[original == old_id] = new_id
        results['gt_seg_map'] = gt
        results['seg_fields'].append('gt_seg_map')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_classes={self.num_classes}, ignore_index={self.ignore_index}, '
                f'reduce_zero_label={self.reduce_zero_label}, imdecode_backend={self.imdecode_backend!r})')
