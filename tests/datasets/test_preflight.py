"""Preflight data checks: every bad file of a split listed at once, before training, decoded as the loader does."""
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from mmext.datasets.preflight import DecodeRules, PreflightError, check_dataset, preflight_check


def write_split(root, n=4, size=(8, 12)):
    (root / 'img').mkdir(parents=True)
    (root / 'ann').mkdir()
    infos = []
    for i in range(n):
        Image.fromarray(np.full((*size, 3), i, np.uint8)).save(root / 'img' / f'{i}.jpg')
        Image.fromarray(np.full(size, i, np.uint8)).save(root / 'ann' / f'{i}.png')
        infos.append(dict(img_path=str(root / 'img' / f'{i}.jpg'), seg_map_path=str(root / 'ann' / f'{i}.png')))
    return infos


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels (no pixel data needed to read its header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def test_every_bad_file_is_listed_at_once(tmp_path):
    infos = write_split(tmp_path, 7)
    (tmp_path / 'img' / '0.jpg').write_bytes(b'not a jpeg')
    Image.fromarray(np.zeros((9, 12), np.uint8)).save(tmp_path / 'ann' / '1.png')
    Image.fromarray(np.full((8, 12), 300, np.uint16)).save(tmp_path / 'ann' / '2.png')
    (tmp_path / 'img' / '3.jpg').write_bytes((tmp_path / 'img' / '3.jpg').read_bytes()[:-200])  # truncated
    (tmp_path / 'ann' / '4.png').write_bytes((tmp_path / 'ann' / '4.png').read_bytes()[:-20])
    (tmp_path / 'img' / '5.jpg').write_bytes(huge_png_header(20000, 20000))  # a decompression bomb
    cv2.imwrite(str(tmp_path / 'ann' / '6.jpg'), np.full((8, 12), 6, np.uint8))
    (tmp_path / 'ann' / '6.jpg').rename(tmp_path / 'ann' / '6.png')  # JPEG data under a .png name
    problems = preflight_check(infos, num_classes=150).problems
    text = '\n'.join(problems)
    assert len(problems) == 7, text
    for expected in ('image {r}/img/0.jpg: cannot be decoded', 'annotation {r}/ann/1.png is 12x9 but image',
                     'annotation {r}/ann/2.png: class value(s) 300', 'image {r}/img/3.jpg: truncated JPEG',
                     'annotation {r}/ann/4.png: truncated PNG', 'image {r}/img/5.jpg: too large to decode',
                     'annotation {r}/ann/6.png: holds JPEG data'):
        assert expected.format(r=tmp_path) in text, text


def test_label_values_outside_the_classes(tmp_path):
    """ADE20K (150 classes, reduce_zero_label): raw values 0..150 and 255 are labels, 151 and 200 are not."""
    infos = write_split(tmp_path, 3)
    Image.fromarray(np.full((8, 12), 150, np.uint8)).save(tmp_path / 'ann' / '0.png')
    Image.fromarray(np.full((8, 12), 151, np.uint8)).save(tmp_path / 'ann' / '1.png')
    Image.fromarray(np.full((8, 12), 200, np.uint8)).save(tmp_path / 'ann' / '2.png')
    problems = preflight_check(infos, num_classes=150, reduce_zero_label=True).problems
    assert problems == [f'annotation {tmp_path}/ann/{i}.png: class value(s) {v} in 96 pixel(s); allowed are 0..150 '
                        'and 255 (ignore) with reduce_zero_label' for i, v in ((1, 151), (2, 200))]

    class Split:
        data_list = infos
        metainfo = dict(classes=tuple(range(150)))
        reduce_zero_label = True
    with pytest.raises(PreflightError, match=r'val split: 2 problem\(s\) in 3 samples'):
        check_dataset(Split(), 'val split')


def write_oriented(path, pixels: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_as_the_loader_reads_it(tmp_path):
    """BAD 5: cv2 turns an orientation-6 JPEG, labels are read as stored. A square one is ambiguous (trained
    silently turned before); a rectangular one whose label matches the turned image is fine (refused before)."""
    infos = write_split(tmp_path, 3, size=(16, 24))
    rng = np.random.default_rng(0)
    write_oriented(tmp_path / 'img' / '0.jpg', rng.integers(0, 255, (16, 16, 3), np.uint8), 6)  # square
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / 'ann' / '0.png')
    write_oriented(tmp_path / 'img' / '1.jpg', rng.integers(0, 255, (16, 24, 3), np.uint8), 6)  # loads as 24x16
    Image.fromarray(np.zeros((24, 16), np.uint8)).save(tmp_path / 'ann' / '1.png')  # drawn as displayed
    write_oriented(tmp_path / 'img' / '2.jpg', rng.integers(0, 255, (16, 24, 3), np.uint8), 6)
    assert cv2.imread(str(tmp_path / 'img' / '1.jpg')).shape[:2] == (24, 16)  # what the loader reads

    problems = preflight_check(infos, num_classes=150).problems
    assert len(problems) == 2, problems
    assert problems[0].startswith(f'image {tmp_path}/img/0.jpg: EXIF orientation 6 (rotated 90 degrees clockwise) '
                                  "is applied by the loader (color_type='color') but not to its annotation")
    assert 'either view' in problems[0] and 'PIL.ImageOps.exif_transpose' in problems[0]
    assert problems[1].startswith(f'image {tmp_path}/img/2.jpg: EXIF orientation 6')
    assert 'the label has the stored shape' in problems[1]
    # a pipeline that ignores the orientation reads the stored pixels: labels of the stored shape are right
    ignoring = DecodeRules(color_type='color_ignore_orientation')
    assert [p.split(':')[0] for p in preflight_check(infos, num_classes=150, rules=ignoring).problems] == [
        f'annotation {tmp_path}/ann/1.png is 16x24 but image {tmp_path}/img/1.jpg is 24x16 (w x h) as the loader '
        'reads it'.split(':')[0]]


def test_rules_come_from_the_dataset_pipeline(ade20k_samples):
    from mmext.datasets import CheckedADE20KDataset
    dataset = CheckedADE20KDataset(
        data_root=str(ade20k_samples), data_prefix=dict(img_path='images/validation',
                                                        seg_map_path='annotations/validation'),
        pipeline=[dict(type='LoadImageFromFile', color_type='color_ignore_orientation', imdecode_backend='pillow'),
                  dict(type='LoadAnnotations', reduce_zero_label=True, imdecode_backend='cv2')])
    assert DecodeRules.of_pipeline(dataset.pipeline.transforms) == DecodeRules('color_ignore_orientation', 'pillow',
                                                                             'cv2')
    assert check_dataset(dataset, 'val').checked == 3  # the real samples pass


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


def test_training_stops_before_iteration_1(write_tiny_seg_config, ade20k_samples, tmp_path):
    """Truncated files were caught at iteration 2 or at the first validation (preflight read headers only); the
    Runner's preflight hook now refuses them before the first iteration, naming each."""
    from mmengine.config import Config

    from mmext.engine.runner import build_runner

    data = tmp_path / 'data'
    shutil.copytree(ade20k_samples, data)
    images, annotations = data / 'images' / 'validation', data / 'annotations' / 'validation'
    jpeg = sorted(images.glob('*.jpg'))[1]
    jpeg.write_bytes(jpeg.read_bytes()[:-500])
    label = sorted(annotations.glob('*.png'))[2]
    Image.fromarray(np.full(np.asarray(Image.open(label)).shape, 151, np.uint8)).save(label)
    cfg = Config.fromfile(write_tiny_seg_config(tmp_path / 'tiny.py', data, max_iters=2))
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    with pytest.raises(PreflightError, match=rf'train split: 2 problem\(s\) in 3 samples(.|\n)*image {jpeg}: '
                                             rf'truncated JPEG(.|\n)*annotation {label}: class value\(s\) 151'):
        runner.train()
    assert runner.iter == 0 and not list((tmp_path / 'work').rglob('*.pth'))
