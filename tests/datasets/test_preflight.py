"""Preflight data checks: all bad files of a split listed at once, before training."""
import numpy as np
import pytest
from PIL import Image

from mmext.datasets.preflight import PreflightError, check_dataset, preflight_check


def write_split(root, n=4):
    (root / 'img').mkdir(parents=True)
    (root / 'ann').mkdir()
    infos = []
    for i in range(n):
        Image.fromarray(np.full((8, 12, 3), i, np.uint8)).save(root / 'img' / f'{i}.jpg')
        Image.fromarray(np.full((8, 12), i, np.uint8)).save(root / 'ann' / f'{i}.png')
        infos.append(dict(img_path=str(root / 'img' / f'{i}.jpg'), seg_map_path=str(root / 'ann' / f'{i}.png')))
    return infos


def test_every_bad_file_is_listed_at_once(tmp_path):
    infos = write_split(tmp_path)
    (tmp_path / 'img' / '0.jpg').write_bytes(b'not a jpeg')
    Image.fromarray(np.zeros((9, 12), np.uint8)).save(tmp_path / 'ann' / '1.png')
    Image.fromarray(np.zeros((8, 12), np.uint16)).save(tmp_path / 'ann' / '2.png')
    report = preflight_check(infos, num_classes=150)
    text = '\n'.join(report.problems)
    assert len(report.problems) == 3, text
    assert '0.jpg: cannot be read' in text and '1.png is 12x9' in text and '2.png: mode I;16' in text


def test_full_decode_checks_values_and_check_dataset_raises(tmp_path):
    infos = write_split(tmp_path)
    Image.fromarray(np.full((8, 12), 200, np.uint8)).save(tmp_path / 'ann' / '3.png')
    assert preflight_check(infos, num_classes=150)  # headers alone cannot see the values
    problems = preflight_check(infos, num_classes=150, full_decode=True).problems
    assert problems == [f'annotation {tmp_path}/ann/3.png: class value(s) [200] outside 0..149 and 255 (ignore)']

    class Split:
        data_list = infos
        metainfo = dict(classes=tuple(range(150)))
        reduce_zero_label = False
    with pytest.raises(PreflightError, match=r'val split: 1 problem\(s\) in 4 samples'):
        check_dataset(Split(), 'val split', full_decode=True)


def test_checked_ade20k_finds_uppercase_suffixes(ade20k_samples, tmp_path):
    from mmext.datasets import CheckedADE20KDataset
    img_dir, ann_dir = tmp_path / 'images' / 'validation', tmp_path / 'annotations' / 'validation'
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    src = sorted((ade20k_samples / 'images' / 'validation').glob('*.jpg'))[0]
    (img_dir / 'UPPER.JPG').write_bytes(src.read_bytes())
    ann = ade20k_samples / 'annotations' / 'validation' / f'{src.stem}.png'
    (ann_dir / 'UPPER.png').write_bytes(ann.read_bytes())
    ds = CheckedADE20KDataset(data_root=str(tmp_path), data_prefix=dict(img_path='images/validation',
                                                                        seg_map_path='annotations/validation'))
    assert [ds.get_data_info(i)['img_path'] for i in range(len(ds))] == [str(img_dir / 'UPPER.JPG')]
