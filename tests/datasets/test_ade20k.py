"""CheckedADE20KDataset: bad data fails naming the culprit, odd sizes and grayscale images work, real data as mmseg."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DATASETS, DefaultScope
from mmseg.datasets import ADE20KDataset

from mmext.datasets import BadSampleError, CheckedADE20KDataset

SPLIT = dict(img_path='images/validation', seg_map_path='annotations/validation')
TEST_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
                 dict(type='PackSegInputs')]
TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 32), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(32, 32), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
TTA_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in (0.5, 1.0)],
        [dict(type='RandomFlip', prob=p, direction='horizontal') for p in (0., 1.)],
        [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]]),
]


def build(data_root: Path, pipeline=TEST_PIPELINE, dataset_type: str = 'CheckedADE20KDataset'):
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(dict(type=dataset_type, data_root=str(data_root), data_prefix=SPLIT,
                                   pipeline=pipeline))


def write_sample(root: Path, name: str, image: np.ndarray | None, annotation: np.ndarray | None) -> tuple[Path, Path]:
    img_path = root / 'images' / 'validation' / f'{name}.jpg'
    ann_path = root / 'annotations' / 'validation' / f'{name}.png'
    img_path.parent.mkdir(parents=True, exist_ok=True)
    ann_path.parent.mkdir(parents=True, exist_ok=True)
    if image is not None:
        assert cv2.imwrite(str(img_path), image)
    if annotation is not None:
        assert cv2.imwrite(str(ann_path), annotation)
    return img_path, ann_path


def random_sample(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            rng.integers(0, 151, (height, width), dtype=np.uint8))


def test_missing_data_root_names_the_path(tmp_path):
    missing = tmp_path / 'nowhere' / 'ADEChallengeData2016'
    with pytest.raises(FileNotFoundError, match=f'data_root {missing} does not exist'):
        build(missing)


def test_missing_image_folder_names_the_folder(tmp_path):
    (tmp_path / 'annotations' / 'validation').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=f'image folder {tmp_path / "images" / "validation"} does not'):
        build(tmp_path)


def test_empty_split_names_folder_and_suffix(tmp_path):
    write_sample(tmp_path, 'a', None, random_sample(8, 8)[1])  # annotations only
    (tmp_path / 'images' / 'validation' / 'a.png').write_bytes(b'not the suffix')
    with pytest.raises(FileNotFoundError, match=r'no "\*\.jpg" images listed in .*images/validation'):
        build(tmp_path)


def test_corrupt_image_names_the_file(tmp_path):
    img_path, _ = write_sample(tmp_path, 'broken', None, random_sample(8, 8)[1])
    img_path.write_bytes(b'\xff\xd8 this is no jpeg')
    dataset = build(tmp_path)
    with pytest.raises(BadSampleError, match=f'image {img_path}: (cannot be decoded|truncated)'):
        dataset[0]


def test_corrupt_annotation_names_the_file(tmp_path):
    image, _ = random_sample(8, 8)
    _, ann_path = write_sample(tmp_path, 'broken', image, None)
    ann_path.write_bytes(b'\x89PNG truncated')
    dataset = build(tmp_path)
    with pytest.raises(BadSampleError, match=f'annotation {ann_path}: (cannot be decoded|truncated)'):
        dataset[0]


@pytest.mark.parametrize('pipeline', [TEST_PIPELINE, TTA_PIPELINE], ids=['test', 'tta'])
def test_annotation_value_above_150_names_file_and_value(tmp_path, pipeline):
    image, annotation = random_sample(12, 10)
    annotation[3, 4] = 200
    _, ann_path = write_sample(tmp_path, 'bad_value', image, annotation)
    dataset = build(tmp_path, pipeline)
    with pytest.raises(BadSampleError, match=rf'annotation {ann_path}: class value\(s\) 200 in 1 pixel'):
        dataset[0]


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    image, _ = random_sample(12, 10)
    _, annotation = random_sample(12, 11)
    img_path, ann_path = write_sample(tmp_path, 'mismatch', image, annotation)
    dataset = build(tmp_path, TRAIN_PIPELINE)
    with pytest.raises(BadSampleError) as err:
        dataset[0]
    message = str(err.value)
    assert str(img_path) in message and str(ann_path) in message
    assert '(12, 10)' in message and '(12, 11)' in message


def test_odd_sizes_and_grayscale_images_work(tmp_path):
    image, annotation = random_sample(37, 53, seed=1)
    write_sample(tmp_path, 'color_odd', image, annotation)
    gray_path, _ = write_sample(tmp_path, 'gray_odd', image[..., 0], annotation[:, ::-1].copy())
    assert cv2.imread(str(gray_path), cv2.IMREAD_UNCHANGED).ndim == 2  # really a grayscale JPEG

    for pipeline in (TEST_PIPELINE, TRAIN_PIPELINE):
        dataset = build(tmp_path, pipeline)
        assert len(dataset) == 2
        for i in range(len(dataset)):
            sample = dataset[i]
            inputs, gt = sample['inputs'], sample['data_samples'].gt_sem_seg.data
            assert inputs.shape[0] == 3
            assert inputs.shape[1:] == gt.shape[1:]
            valid = gt[gt != 255]
            assert valid.numel() > 0 and int(valid.max()) < 150
    full = build(tmp_path)[1]  # gray_odd, test pipeline: nothing resized, labels reduced by one
    expected = annotation[:, ::-1].astype(np.int64) - 1
    expected[expected < 0] = 255
    assert torch.equal(full['data_samples'].gt_sem_seg.data[0], torch.from_numpy(expected).to(torch.uint8))


def test_real_samples_load_like_mmseg(ade20k_samples):
    checked, reference = build(ade20k_samples), build(ade20k_samples, dataset_type='ADE20KDataset')
    assert isinstance(checked, CheckedADE20KDataset) and type(reference) is ADE20KDataset
    assert len(checked) == len(reference) == 3
    for i in range(len(checked)):
        ours, theirs = checked[i], reference[i]
        assert torch.equal(ours['inputs'], theirs['inputs'])
        assert torch.equal(ours['data_samples'].gt_sem_seg.data, theirs['data_samples'].gt_sem_seg.data)
