"""label_map_from_logits (bounded-memory resize + arg-max) against the full bilinear resize + arg-max."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmext.models.segmentors import label_map_from_logits


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('kind', ['smooth', 'noise', 'ties'])
def test_equals_full_resize_on_every_path(kind, align_corners):
    gen = torch.Generator().manual_seed(1)
    if kind == 'smooth':  # class regions: most cells have one possible winner, boundaries 2-3
        logits = F.interpolate(torch.randn(1, 150, 4, 5, generator=gen) * 4, size=(31, 40), mode='bilinear')[0]
    elif kind == 'noise':  # every cell a boundary, many with more than eight contenders
        logits = torch.randn(150, 13, 17, generator=gen)
    else:  # exact ties in the source: a winner may differ only where two classes are within float rounding
        logits = torch.randint(0, 3, (12, 9, 11), generator=gen).float()
    size = (157, 203)
    values = F.interpolate(logits[None], size=size, mode='bilinear', align_corners=align_corners)[0]
    full = values.argmax(0)
    bounded = label_map_from_logits(logits, size, align_corners, max_tile_bytes=64 * 1024)
    assert logits.shape[0] * size[0] * size[1] * 4 > 64 * 1024  # the bounded path, not the direct one
    assert bounded.shape == size and bounded.dtype.name == 'int64'
    differ = torch.from_numpy(bounded) != full
    if kind != 'ties':
        assert not differ.any()
    else:
        chosen = values.gather(0, torch.from_numpy(bounded)[None])[0]
        assert ((values.amax(0) - chosen)[differ] <= 1e-5).all()  # an equally good class, by rounding only
        assert differ.float().mean() < 0.05


@pytest.fixture(scope='module')
def tiny_segmentor(write_tiny_seg_config, ade20k_samples, tmp_path_factory):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(write_tiny_seg_config(tmp_path_factory.mktemp('cfg') / 'tiny.py', ade20k_samples,
                                                max_iters=None))
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).eval()
    return model, cfg


def _batch(cfg, image):
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope

    pipeline = [dict(type='LoadImageFromNDArray')] + [t for t in cfg.test_pipeline[1:]
                                                       if t['type'] != 'LoadAnnotations']
    with DefaultScope.overwrite_default_scope('mmseg'):
        data = Compose(pipeline)(dict(img=image))
    return dict(inputs=[data['inputs']], data_samples=[data['data_samples']])


def _largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation torch made while running ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.cpu_memory_usage for e in prof.events())


def test_test_step_of_a_large_image_stays_bounded(tiny_segmentor):
    """The Runner's val/test loops call ``test_step``; mmseg's postprocess allocates the full-size logits
    (150 x H x W floats: 64.8 GB for 12000x9000). Bounded, the largest allocation is far below that, and the label
    map is the same."""
    from mmext.models.segmentors import bound_postprocess

    model, cfg = tiny_segmentor
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)  # test scale: 64 rows
    full_size_logits = 150 * 300 * 400 * 4
    with torch.no_grad():
        reference = []
        unbounded = _largest_allocation(lambda: reference.extend(model.test_step(_batch(cfg, image))))
        assert unbounded >= full_size_logits  # mmseg's path: what blew up to 64.8 GB

        bound_postprocess(model, max_tile_bytes=2 * 2**20)
        try:
            result = []
            bounded = _largest_allocation(lambda: result.extend(model.test_step(_batch(cfg, image))))
        finally:
            del model.postprocess_result  # back to mmseg's method for the other tests of the module
    assert bounded < full_size_logits / 8, (bounded, full_size_logits)
    assert result[0].pred_sem_seg.shape == (300, 400) and 'seg_logits' not in result[0]
    assert torch.equal(result[0].pred_sem_seg.data, reference[0].pred_sem_seg.data)


def test_images_within_the_test_scale_keep_mmsegs_path(tiny_segmentor):
    from mmext.models.segmentors import bound_postprocess

    model, cfg = tiny_segmentor
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)  # upscaled by the pipeline
    with torch.no_grad():
        reference = model.test_step(_batch(cfg, image))[0]
        bound_postprocess(model)
        try:
            result = model.test_step(_batch(cfg, image))[0]
        finally:
            del model.postprocess_result
    assert torch.equal(result.pred_sem_seg.data, reference.pred_sem_seg.data)
    assert torch.equal(result.seg_logits.data, reference.seg_logits.data)  # full-size logits, as mmseg's


def test_every_runner_tests_through_the_bounded_path(write_tiny_seg_config, ade20k_samples, tmp_path):
    """tools/test.py, eval_miou.py and validation build mmext's Runner: its hooks bound the segmentor before the
    loop (the real samples, 500x364 and larger, exceed the tiny config's 256x64 test scale)."""
    from mmengine.config import Config

    from mmext.engine.runner import build_runner

    cfg = Config.fromfile(write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None))
    cfg.work_dir = str(tmp_path / 'work')
    runner = build_runner(cfg)
    assert 'postprocess_result' not in vars(runner.model)
    metrics = runner.test()
    assert 'postprocess_result' in vars(runner.model) and 0 <= metrics['mIoU'] <= 100
