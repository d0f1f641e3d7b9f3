"""``init_cfg=dict(type='Pretrained')`` in a real mmseg segmentor: loaded strictly, kept through ``runner.train()``."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmseg.registry import MODELS

from mmext.models import InceptionNeXt


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

    from mmext.checkpoint import UnsafeCheckpointError

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


# Issue 19: mmseg's model bases set model.pretrained='open-mmlab://...', which EncoderDecoder passes to the backbone.
def _deeplabv3plus_with(tiny_arch: dict, **model_overrides) -> Config:
    """mmseg's own DeepLabV3+ base with InceptionNeXt swapped in by the documented recipe (output_stride 8)."""
    import mmseg
    cfg = Config.fromfile(Path(mmseg.__file__).parent / '.mim/configs/_base_/models/deeplabv3plus_r50-d8.py')
    norm_cfg = dict(type='BN', requires_grad=True)
    dims = tiny_arch['dims']
    cfg.merge_from_dict(dict(model=dict(
        backbone=dict(_delete_=True, type='InceptionNeXt', arch=tiny_arch, output_stride=8, init_cfg=None),
        decode_head=dict(in_channels=dims[3], channels=16, c1_in_channels=dims[0], c1_channels=8, norm_cfg=norm_cfg),
        auxiliary_head=dict(in_channels=dims[2], channels=8, norm_cfg=norm_cfg), **model_overrides)))
    return cfg.model  # a ConfigDict, as the Runner passes it


def test_zoo_base_pretrained_of_another_network_stops_the_build_naming_the_fix(tiny_arch):
    model = _deeplabv3plus_with(tiny_arch)
    assert model['pretrained'] == 'open-mmlab://resnet50_v1c'  # what the swapped backbone receives
    with DefaultScope.overwrite_default_scope('mmseg'), pytest.raises(ValueError) as info:
        MODELS.build(model)
    message = str(info.value)
    assert "model.pretrained='open-mmlab://resnet50_v1c'" in message and 'set model.pretrained=None' in message
    assert "init_cfg=dict(type='Pretrained'" in message and '\n' not in message

    with DefaultScope.overwrite_default_scope('mmseg'):  # the fix: builds, and runs at stride 8 as DeepLabV3+ expects
        segmentor = MODELS.build(_deeplabv3plus_with(tiny_arch, pretrained=None)).eval()
    assert segmentor.backbone.strides == (4, 8, 8, 8)
    with torch.no_grad():
        feats = segmentor.extract_feat(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 8, 8]


@pytest.mark.parametrize('value, match', [
    ('torchvision://resnet50', "names another network's weights"),
    ('https://download.pytorch.org/models/resnet50-0676ba61.pth', 'its name does not say InceptionNeXt'),
    ('FILE', r'cannot be read as InceptionNeXt weights \(.*does not look like an InceptionNeXt checkpoint'),
    ('missing.pth', r'cannot be read as InceptionNeXt weights \(checkpoint missing.pth not found'),
])
def test_pretrained_naming_other_weights_is_refused_at_build(tiny_arch, tmp_path, value, match):
    if value == 'FILE':
        value = str(tmp_path / 'resnet.pth')
        torch.save({'conv1.weight': torch.zeros(1), 'layer1.0.conv1.weight': torch.zeros(1)}, value)
    with pytest.raises(ValueError, match=f'model.pretrained=.*{match}.*set model.pretrained=None'):
        InceptionNeXt(tiny_arch, pretrained=value)


def test_pretrained_inceptionnext_weights_load_like_init_cfg(tiny_arch, randomise_weights, tmp_path):
    source = randomise_weights(InceptionNeXt(tiny_arch), seed=1)
    path = str(tmp_path / 'inceptionnext_tiny_arch.pth')
    torch.save(source.state_dict(), path)
    model = InceptionNeXt(tiny_arch, pretrained=path)
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    model.init_weights()
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())
    hub = InceptionNeXt(tiny_arch, pretrained='hf-hub:timm/inception_next_tiny.sail_in1k')  # read at init_weights
    assert hub.init_cfg['checkpoint'] == 'hf-hub:timm/inception_next_tiny.sail_in1k'
    with pytest.raises(ValueError, match=r'both model.pretrained=.* and backbone.init_cfg=.*set model.pretrained=None'):
        InceptionNeXt(tiny_arch, pretrained=path, init_cfg=dict(type='Pretrained', checkpoint=path))
