"""The synthetic COCO-format dataset, read back by pycocotools and mmdet's own CocoDataset."""
import cv2
import numpy as np
import pytest
from mmdet.datasets import CocoDataset
from pycocotools.coco import COCO
from synthetic_coco import CLASS_COLORS, SYNTHETIC_COCO_CLASSES, generate_synthetic_coco, render_image


def test_generated_dataset_reads_back(tmp_path):
    root = generate_synthetic_coco(tmp_path, num_train=4, num_val=2, size=(128, 96), seed=3)
    coco = COCO(str(root / 'annotations' / 'instances_train.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SYNTHETIC_COCO_CLASSES)
    assert len(coco.getImgIds()) == 4
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 4
    for ann in anns:
        mask = coco.annToMask(ann).astype(bool)  # the polygon as pycocotools (and mmdet's poly2mask) rasterise it
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann['bbox']
        assert x <= xs.min() and xs.max() < x + w <= xs.max() + 2
        assert y <= ys.min() and ys.max() < y + h <= ys.max() + 2
        # area counts the painted pixels, outline included; pycocotools samples pixel centres (one ring fewer)
        assert mask.sum() < ann['area'] < 1.4 * mask.sum()
        image = cv2.imread(str(root / 'train' / coco.loadImgs(ann['image_id'])[0]['file_name']))
        assert image.shape == (96, 128, 3)
        # the annotated outline is where the class colour was painted
        color = CLASS_COLORS[SYNTHETIC_COCO_CLASSES[ann['category_id'] - 1]]
        assert np.abs(image[mask].mean(0) - color).max() < 30

    dataset = CocoDataset(data_root=str(root), ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                          metainfo=dict(classes=SYNTHETIC_COCO_CLASSES), pipeline=[], test_mode=True)
    assert len(dataset) == 2
    instances = dataset[0]['instances']
    assert instances and all(0 <= i['bbox_label'] < len(SYNTHETIC_COCO_CLASSES) and i['mask'] for i in instances)


def test_images_are_deterministic_and_classes_look_different():
    first, instances = render_image(np.random.default_rng([7, 0, 1]), (128, 96))
    again, _ = render_image(np.random.default_rng([7, 0, 1]), (128, 96))
    np.testing.assert_array_equal(first, again)
    assert 1 <= len(instances) <= 4
    # each class is painted in its own colour: mean colours inside shapes of different classes differ clearly
    means = {}
    for seed in range(30):
        image, instances = render_image(np.random.default_rng(seed), (128, 96))
        for inst in instances:
            mask = np.zeros(image.shape[:2], np.uint8)
            cv2.fillPoly(mask, [inst['polygon']], 1)
            means.setdefault(inst['label'], []).append(image[mask.astype(bool)].mean(0))
    assert sorted(means) == list(range(len(SYNTHETIC_COCO_CLASSES)))
    centers = [np.mean(v, 0) for _, v in sorted(means.items())]
    assert min(np.abs(a - b).max() for i, a in enumerate(centers) for b in centers[i + 1:]) > 50


def test_bad_sizes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match='too small'):
        render_image(np.random.default_rng(0), (32, 32))
    with pytest.raises(ValueError, match='num_val=0'):
        generate_synthetic_coco(tmp_path, num_train=1, num_val=0)
