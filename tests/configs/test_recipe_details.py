"""Recipe details of the ADE20K configs: test resize to a multiple of 32 (FPN), a seed, no stray SGD optimizer."""

from mmext.engine.optimizers import LayerDecayOptimWrapperConstructor  # noqa: F401  (registered)


def select_models(model: dict) -> bool:
    """The paper's Tables 6 and 7 (see conftest.py)."""
    return 'Paper Figures' in model and model['Metadata']['Training Data'] == 'ADE20K'


def test_resolved_config_details(zoo_model, load_config):
    cfg = load_config(zoo_model['Config'])
    method = zoo_model['In Collection']
    assert method in ('UPerNet', 'Semantic FPN'), f'{zoo_model["Name"]}: no test-pipeline rule for {method!r}'
    assert cfg.randomness == dict(seed=0)  # the S/B configs inherit the T config's seed
    assert 'optimizer' not in cfg  # mmseg's schedule base left an unused SGD optimizer there
    assert '_delete_' not in str(cfg.optim_wrapper) and cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.default_hooks.checkpoint.by_epoch is False
    types = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    if method == 'Semantic FPN':  # PoolFormer's / PVT's AlignResize: after the resize, both sides to a multiple of 32
        assert types == ['LoadImageFromFile', 'Resize', 'ResizeToMultiple', 'LoadAnnotations', 'PackSegInputs']
        assert cfg.test_dataloader.dataset.pipeline[2] == dict(type='ResizeToMultiple', size_divisor=32)
    else:
        assert 'ResizeToMultiple' not in types


def test_resize_to_multiple_gives_multiples_of_32(load_config, ade20k_samples):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    cfg = load_config('configs/fpn_inceptionnext_t_ade20k.py')
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(ade20k_samples)))
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        h, w = sample.img_shape
        assert h % 32 == 0 and w % 32 == 0 and abs(min(h, w) - 512) < 32, sample.img_shape
        assert sample.gt_sem_seg.data.shape[-2:] == sample.ori_shape  # labels stay at full resolution
