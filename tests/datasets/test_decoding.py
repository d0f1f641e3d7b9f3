"""The image-folder and label-map helpers of mmext.datasets.decoding (demos and tools), against mmseg's own
annotation loading."""
import numpy as np
import pytest
from mmengine.config import Config
from mmseg.datasets.transforms import LoadAnnotations

from mmext.datasets.decoding import find_images, load_annotation, reduce_zero_label_of


def test_load_annotation_matches_mmseg(ade20k_samples):
    annotations = sorted((ade20k_samples / 'annotations' / 'validation').glob('*.png'))
    assert len(annotations) == 3
    for path in annotations:
        expected = LoadAnnotations(reduce_zero_label=True)(dict(seg_map_path=str(path), seg_fields=[],
                                                                 reduce_zero_label=True))['gt_seg_map']
        ours = load_annotation(path, reduce_zero_label=True)
        np.testing.assert_array_equal(ours, expected)
        assert (ours == 255).any() and ours[ours != 255].max() < 150


def test_ade20k_configs_reduce_zero_label(repo_root):
    configs = sorted((repo_root / 'configs').glob('*_ade20k.py'))
    assert configs
    assert reduce_zero_label_of(Config.fromfile(str(configs[0])))
    assert not reduce_zero_label_of(Config(dict(test_pipeline=[dict(type='LoadAnnotations')])))


def test_find_images_and_bad_annotations(tmp_path):
    with pytest.raises(FileNotFoundError, match='no image files'):
        find_images(tmp_path)
    with pytest.raises(FileNotFoundError, match='nowhere'):
        find_images(tmp_path / 'nowhere')
    (tmp_path / 'b.PNG').write_bytes(b'x')
    (tmp_path / 'a.jpg').write_bytes(b'x')
    (tmp_path / 'notes.txt').write_text('not an image')
    assert [p.name for p in find_images(tmp_path)] == ['a.jpg', 'b.PNG']
    with pytest.raises(ValueError, match='a.jpg'):
        load_annotation(tmp_path / 'a.jpg')
    with pytest.raises(FileNotFoundError, match='missing.png'):
        load_annotation(tmp_path / 'missing.png')
