"""ADE20K with errors that name the culprit: missing folders, empty splits and bad image/annotation files."""
from __future__ import annotations

import copy
import logging
import os
import os.path as osp
from collections.abc import Sequence

from mmengine.logging import print_log
from mmseg.datasets import ADE20KDataset

from mmext.registry import DATASETS

#: Loading transforms swapped for their checked versions (see :class:`CheckedADE20KDataset`).
CHECKED_LOADERS = {'LoadImageFromFile': 'CheckedLoadImageFromFile', 'LoadAnnotations': 'CheckedLoadAnnotations'}


@DATASETS.register_module()
class CheckedADE20KDataset(ADE20KDataset):
    """mmseg's ``ADE20KDataset`` that refuses bad data with an error naming the path.

    On construction it checks that ``data_root`` and the split's image and annotation folders exist and that the
    split holds at least one image. In the pipeline (also inside ``TestTimeAug``) ``LoadImageFromFile`` and
    ``LoadAnnotations`` are replaced by :class:`~mmext.datasets.CheckedLoadImageFromFile` and
    :class:`~mmext.datasets.CheckedLoadAnnotations` with the same arguments, so an unreadable image or annotation,
    an annotation value above 150 and an annotation whose size differs from its image raise
    :class:`~mmext.datasets.BadSampleError` naming the file(s). Arguments are those of ``ADE20KDataset``.
    """

    def __init__(self, *args, pipeline: Sequence = (), **kwargs) -> None:
        num_classes = len(self.METAINFO['classes'])
        super().__init__(*args, pipeline=[_checked(t, num_classes) for t in pipeline], **kwargs)

    def load_data_list(self) -> list[dict]:
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(f'ADE20K data_root {self.data_root} does not exist')
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('seg_map_path')
        if not (self.ann_file and osp.isfile(self.ann_file)):
            if not osp.isdir(img_dir):
                raise FileNotFoundError(f'ADE20K image folder {img_dir} does not exist')
        if ann_dir and not osp.isdir(ann_dir):
            raise FileNotFoundError(f'ADE20K annotation folder {ann_dir} does not exist')
        data_list = super().load_data_list()
        if not (self.ann_file and osp.isfile(self.ann_file)):
            data_list = sorted(data_list + self._other_case_samples(img_dir, ann_dir), key=lambda x: x['img_path'])
        if not data_list:
            source = self.ann_file if self.ann_file and osp.isfile(self.ann_file) else img_dir
            raise FileNotFoundError(f'ADE20K split is empty: no "*{self.img_suffix}" images listed in {source}')
        return data_list


    def _other_case_samples(self, img_dir: str, ann_dir: str | None) -> list[dict]:
        """Images whose suffix differs from ``img_suffix`` only in case (``.JPG``), which mmseg's case-sensitive
        listing leaves out of the split; they are included, with a warning naming how many."""
        suffix = self.img_suffix.lower()
        found = []
        for root, _, files in os.walk(img_dir):
            for name in files:
                if name.lower().endswith(suffix) and not name.endswith(self.img_suffix):
                    rel = osp.relpath(osp.join(root, name), img_dir)
                    info = dict(img_path=osp.join(img_dir, rel), label_map=self.label_map,
                                reduce_zero_label=self.reduce_zero_label, seg_fields=[])
                    if ann_dir is not None:
                        info['seg_map_path'] = osp.join(ann_dir, rel[:-len(suffix)] + self.seg_map_suffix)
                    found.append(info)
        if found:
            print_log(f'{len(found)} image(s) in {img_dir} end in another case of "{self.img_suffix}" (e.g. '
                      f'{found[0]["img_path"]}); they are included in the split.', logger='current',
                      level=logging.WARNING)
        return found


def _checked(transform, num_classes: int):
    """Return ``transform`` (a config dict) with mmseg/mmcv loaders replaced by their checked versions."""
    if not isinstance(transform, dict):
        return transform  # an already built transform: leave it as given
    transform = copy.deepcopy(transform)
    name = str(transform.get('type', '')).split('.')[-1]
    if name in CHECKED_LOADERS:
        transform['type'] = CHECKED_LOADERS[name]
        if name == 'LoadAnnotations':
            transform.setdefault('num_classes', num_classes)
    elif name == 'TestTimeAug':
        transform['transforms'] = [[_checked(t, num_classes) for t in branch] for branch in transform['transforms']]
    return transform
