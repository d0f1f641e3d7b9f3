"""``init_cfg=dict(type='Pretrained')`` in a real mmseg segmentor: loaded strictly, kept through ``runner.train()``."""
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmseg.registry import MODELS


def _segmentor_cfg(checkpoint, data_root, work_dir) -> Config:
    norm_cfg = dict(type='BN', requires_grad=True)
    model = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(64, 64)),
        backbone=dict(type='InceptionNeXt', arch='atto', out_indices=(3,), out_norm_cfg=norm_cfg,
                      init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint))),
        decode_head=dict(type='FCNHead', in_channels=320, channels=16, num_convs=1, concat_input=False,
                         num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='Resize', scale=(64, 64), keep_ratio=False), dict(type='PackSegInputs')]
    return Config(dict(
        default_scope='mmseg', model=model, work_dir=str(work_dir), log_level='WARNING',
        train_dataloader=dict(
            batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=False),
            dataset=dict(type='ADE20KDataset', data_root=str(data_root), pipeline=pipeline,
                         data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'))),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=1),
        # lr 0: any change to the backbone's parameters would come from re-initialisation, not from the step
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.0, momentum=0.0, weight_decay=0.0)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=[dict(type='WeightsOnlyCheckpointHook')]))


def test_pretrained_backbone_survives_init_weights_and_runner_train(timm_atto_state_dict, ade20k_samples, tmp_path):
    checkpoint = tmp_path / 'inceptionnext_atto.pth'
    torch.save(timm_atto_state_dict, checkpoint)
    expected = {k: v for k, v in timm_atto_state_dict.items() if not k.startswith('head.')}
    cfg = _segmentor_cfg(checkpoint, ade20k_samples, tmp_path / 'work_dir')

    with DefaultScope.overwrite_default_scope('mmseg'):
        segmentor = MODELS.build(cfg.model)
    segmentor.init_weights()
    segmentor.init_weights()  # the Runner's second call must not re-initialise
    state = segmentor.backbone.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())

    runner = Runner.from_cfg(cfg)
    runner.train()
    params = dict(runner.model.backbone.named_parameters())
    checked = [k for k in params if k in expected]
    assert sorted(set(params) - set(checked)) == ['out_norms.3.bias', 'out_norms.3.weight']  # new, not released
    assert all(torch.equal(params[k], expected[k]) for k in checked)

    # init_cfg Pretrained at the Runner's own checkpoint: weights_only-loadable, backbone. keys found, heads ignored
    backbone_cfg = dict(cfg.model.backbone, init_cfg=dict(type='Pretrained', checkpoint=str(
        tmp_path / 'work_dir' / 'iter_1.pth')))
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    trained = runner.model.backbone.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in backbone.state_dict().items())


def test_trusted_prefix_through_init_cfg(tiny_arch, randomise_weights, tmp_path):
    """A training checkpoint holding a pickled object (timm saves its ``argparse.Namespace``) is refused by the
    weights-only reader, naming the object; ``trusted://`` in ``init_cfg`` loads it in full."""
    import argparse

    import pytest

    from mmext.checkpoint import UnsafeCheckpointError
    from mmext.models import InceptionNeXt

    source = randomise_weights(InceptionNeXt(tiny_arch), seed=3)
    path = tmp_path / 'train_checkpoint.pth'
    torch.save({'state_dict': source.state_dict(), 'args': argparse.Namespace(lr=0.1)}, path)

    refused = InceptionNeXt(tiny_arch, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(UnsafeCheckpointError, match=r'(?s)train_checkpoint\.pth.*argparse\.Namespace.*trusted://'):
        refused.init_weights()

    model = InceptionNeXt(tiny_arch, init_cfg=dict(type='Pretrained', checkpoint=f'trusted://{path}'))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
