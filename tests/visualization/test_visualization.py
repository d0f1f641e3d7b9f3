import numpy as np
import pytest
from mmseg.datasets import ADE20KDataset

from mmext.visualization import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    IGNORE_COLOR,
    colorize,
    draw_legend,
    legend_entries,
    legend_swatch_boxes,
    overlay,
    side_by_side,
)

H, W = 40, 60


def bgr(class_id: int) -> tuple[int, ...]:
    return tuple(int(v) for v in ADE20K_PALETTE[class_id][::-1])


def colors_in(region: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in c) for c in np.unique(region.reshape(-1, 3), axis=0)}


@pytest.fixture
def maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random image, a GT with classes {0, 2, 12} and an ignored band, a prediction with {0, 2, 20}."""
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    gt = np.zeros((H, W), dtype=np.int64)
    gt[:, 20:40] = 2
    gt[:, 40:] = 12
    gt[:5] = 255
    pred = gt.copy()
    pred[:5] = 0
    pred[30:, 40:] = 20
    return image, gt, pred


def test_palette_is_mmseg_ade20k():
    assert ADE20K_PALETTE.shape == (150, 3)
    np.testing.assert_array_equal(ADE20K_PALETTE, np.array(ADE20KDataset.METAINFO['palette']))
    assert ADE20K_CLASSES[0] == 'wall' and ADE20K_CLASSES[7] == 'bed' and len(ADE20K_CLASSES) == 150


def test_colorize_known_pixels(maps):
    _, gt, _ = maps
    out = colorize(gt)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert tuple(out[10, 0]) == bgr(0) == (120, 120, 120)
    assert tuple(out[10, 25]) == bgr(2) == (230, 230, 6)  # sky: RGB (6, 230, 230) drawn as BGR
    assert tuple(out[10, 50]) == bgr(12)
    assert tuple(out[0, 0]) == tuple(IGNORE_COLOR)
    custom = colorize(np.array([[0, 1], [255, 1]]), palette=[[255, 0, 0], [0, 0, 255]], ignore_color=(1, 2, 3))
    np.testing.assert_array_equal(custom, [[[0, 0, 255], [255, 0, 0]], [[3, 2, 1], [255, 0, 0]]])


def test_colorize_rejects_labels_outside_palette():
    with pytest.raises(ValueError, match=r'\[150\] outside 0..149'):
        colorize(np.array([[0, 150]]))
    with pytest.raises(ValueError, match='integer'):
        colorize(np.zeros((2, 2), dtype=np.float32))


def test_legend_lists_exactly_the_classes_present(maps):
    _, gt, pred = maps
    entries = legend_entries([gt, pred])
    assert [e[0] for e in entries] == [0, 2, 12, 20, 255]
    assert [e[1] for e in entries] == ['wall', 'sky', 'person', 'car', 'unlabeled']
    assert [e[0] for e in legend_entries([pred])] == [0, 2, 12, 20]  # no ignored pixels, no 'unlabeled' row

    panel = draw_legend(entries, height=H * 3)
    boxes = legend_swatch_boxes(entries, height=H * 3)
    for (_, _, rgb), (x, y, w, h) in zip(entries, boxes):
        assert colors_in(panel[y:y + h, x:x + w]) == {tuple(rgb[::-1])}
    x0, w0 = boxes[0][0], boxes[0][2]
    # The swatch column holds the white background and exactly the listed colours, nothing else.
    assert colors_in(panel[:, x0:x0 + w0]) == {(255, 255, 255)} | {tuple(e[2][::-1]) for e in entries}


def test_legend_wraps_into_columns_keeping_height():
    entries = legend_entries([np.arange(150).reshape(10, 15)])
    panel = draw_legend(entries, height=100)
    boxes = legend_swatch_boxes(entries, height=100)
    assert panel.shape[0] == 100 and len(boxes) == 150
    assert all(y + h <= 100 and x + w <= panel.shape[1] for x, y, w, h in boxes)
    assert len({x for x, *_ in boxes}) == -(-150 // ((100 - 6) // 18))


def test_overlay_blends_and_keeps_ignored_pixels(maps):
    image, gt, _ = maps
    out = overlay(image, gt, alpha=0.5)
    legend = draw_legend(legend_entries([gt])[:-1], H)
    assert out.shape == (H, W + legend.shape[1], 3)
    np.testing.assert_array_equal(out[:, W:], legend)  # legend of the classes, without the 'unlabeled' row
    np.testing.assert_array_equal(out[:5, :W], image[:5])
    expected = np.round(0.5 * image[10, 25].astype(np.float32) + 0.5 * np.array(bgr(2), np.float32))
    np.testing.assert_array_equal(out[10, 25], expected)
    np.testing.assert_array_equal(overlay(image, gt, alpha=1., legend=False)[5:], colorize(gt)[5:])
    np.testing.assert_array_equal(overlay(image, gt, alpha=0., legend=False), image)
    with pytest.raises(ValueError, match='alpha'):
        overlay(image, gt, alpha=1.5)
    with pytest.raises(ValueError, match='60x40'):
        overlay(image[:, :10], gt)


def test_side_by_side_layout(maps):
    image, gt, pred = maps
    out = side_by_side(image, gt, pred, titles=('a', 'b', 'c'))
    legend = draw_legend(legend_entries([gt, pred]), H)
    title, gap = 24, 6
    assert out.shape == (H + title, 3 * (W + gap) + legend.shape[1], 3)
    body = out[title:]
    np.testing.assert_array_equal(body[:, :W], image)
    np.testing.assert_array_equal(body[:, W + gap:2 * W + gap], colorize(gt))
    np.testing.assert_array_equal(body[:, 2 * (W + gap):3 * W + 2 * gap], colorize(pred))
    np.testing.assert_array_equal(body[:, 3 * (W + gap):], legend)
    assert tuple(body[35, 2 * (W + gap) + 50]) == bgr(20)
    with pytest.raises(ValueError, match='pred is 60x39'):
        side_by_side(image, gt, pred[1:])
