"""InceptionNeXt weights: every released format loads key for key, arch inference, a clear error per bad input."""
import logging

import pytest
import safetensors.torch
import torch

from mmext.checkpoint import (
    CheckpointError,
    read_checkpoint,
)
from mmext.models import InceptionNeXt
from mmext.models.backbones.inceptionnext_weights import (
    arch_name,
    extract_backbone_state_dict,
    infer_arch,
    load_backbone_checkpoint,
)

HEAD_KEYS = {'head.fc1.weight', 'head.fc1.bias', 'head.norm.weight', 'head.norm.bias', 'head.fc2.weight',
             'head.fc2.bias'}


def _backbone(sd):
    return {k: v for k, v in sd.items() if not k.startswith('head.')}


def _write_official(sd, d):
    torch.save(sd, d / 'inceptionnext_atto.pth')
    return d / 'inceptionnext_atto.pth'


def _write_timm_bin(sd, d):
    torch.save(sd, d / 'pytorch_model.bin')
    return d / 'pytorch_model.bin'


def _write_timm_safetensors(sd, d):
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, d / 'model.safetensors')
    return d / 'model.safetensors'


def _write_mmengine_segmentor(sd, d):
    state_dict = {f'backbone.{k}': v for k, v in _backbone(sd).items()}
    state_dict.update({'decode_head.conv_seg.weight': torch.zeros(150, 16, 1, 1), 'decode_head.conv_seg.bias':
                       torch.zeros(150), 'auxiliary_head.conv_seg.weight': torch.zeros(150, 8, 1, 1)})
    torch.save({'state_dict': state_dict, 'meta': {'iter': 10}}, d / 'iter_10.pth')
    return d / 'iter_10.pth'


def _write_model_wrapper(sd, d):
    torch.save({'model': sd, 'epoch': 300}, d / 'checkpoint.pth')
    return d / 'checkpoint.pth'


def _write_ddp(sd, d):
    torch.save({f'module.{k}': v for k, v in sd.items()}, d / 'ddp.pth')
    return d / 'ddp.pth'


def _write_legacy_torch(sd, d):
    torch.save(sd, d / 'legacy.pth', _use_new_zipfile_serialization=False)
    return d / 'legacy.pth'


WRITERS = [_write_official, _write_timm_bin, _write_timm_safetensors, _write_mmengine_segmentor,
           _write_model_wrapper, _write_ddp, _write_legacy_torch]


@pytest.mark.parametrize('write', WRITERS, ids=[w.__name__[len('_write_'):] for w in WRITERS])
def test_every_released_format_loads_key_for_key(write, timm_atto_state_dict, tmp_path):
    path = write(timm_atto_state_dict, tmp_path)
    model = InceptionNeXt('atto')
    report = load_backbone_checkpoint(model, path)
    assert report.ok
    assert set(report.head_keys) == (set() if write is _write_mmengine_segmentor else HEAD_KEYS)
    assert report.checkpoint_arch == report.model_arch == 'InceptionNeXt-atto (depths 2-2-6-2, dims 40..320)'
    loaded = model.state_dict()
    assert set(loaded) == set(_backbone(timm_atto_state_dict))
    for key, value in _backbone(timm_atto_state_dict).items():
        assert torch.equal(loaded[key], value), key


def test_segmentor_checkpoint_takes_backbone_keys_and_reports_the_rest(timm_atto_state_dict, tmp_path):
    path = _write_mmengine_segmentor(timm_atto_state_dict, tmp_path)
    backbone = extract_backbone_state_dict(read_checkpoint(path), source=str(path))
    assert backbone.prefix == 'backbone.'
    assert backbone.ignored_keys == ['auxiliary_head.conv_seg.weight', 'decode_head.conv_seg.bias',
                                     'decode_head.conv_seg.weight']
    assert extract_backbone_state_dict(read_checkpoint(path), prefix='backbone').state_dict.keys() == \
        backbone.state_dict.keys()
    with pytest.raises(CheckpointError, match=r"no key of .* starts with prefix 'neck\.'.*backbone\.\*: 220"):
        extract_backbone_state_dict(read_checkpoint(path), prefix='neck.', source=str(path))


def test_ambiguous_or_foreign_key_sets_need_an_explicit_prefix(timm_atto_state_dict):
    sd = _backbone(timm_atto_state_dict)
    two = {**{f'backbone.{k}': v for k, v in sd.items()}, **{f'ema.backbone.{k}': v for k, v in sd.items()}}
    with pytest.raises(CheckpointError, match=r"several .* prefixes .*'backbone\.'.*'ema\.backbone\.'.*prefix="):
        extract_backbone_state_dict(two)
    assert extract_backbone_state_dict(two, prefix='ema.backbone.').state_dict.keys() == sd.keys()
    with pytest.raises(CheckpointError, match=r'does not look like an InceptionNeXt checkpoint.*layer1\.\*: 1'):
        extract_backbone_state_dict({'layer1.0.conv1.weight': torch.zeros(1)})


def test_summary_is_one_log_record_and_reports_new_out_norms(timm_atto_state_dict, tmp_path):
    path = _write_official(timm_atto_state_dict, tmp_path)
    records = []
    logger = logging.getLogger('test_checkpoint_summary')
    logger.addHandler(type('H', (logging.Handler,), {'emit': lambda self, r: records.append(r)})())
    logger.setLevel(logging.INFO)
    model = InceptionNeXt('atto', out_norm_cfg=dict(type='BN'))
    report = load_backbone_checkpoint(model, path, logger=logger)
    assert report.ok and len(report.new_keys) == 20
    assert len(records) == 1 and records[0].levelno == logging.INFO
    message = records[0].getMessage()
    assert str(path) in message
    assert 'loaded 220 of 220 backbone tensors' in message
    assert 'dropped 6 classification-head tensors' in message
    assert 'new, initialised fresh: out_norms.0, out_norms.1, out_norms.2, out_norms.3' in message
    assert 'missing: none, unexpected: none, shape mismatches: none' in message


def test_checkpoint_of_another_arch_is_refused_naming_both(tmp_path):
    path = tmp_path / 'inceptionnext_tiny.pth'
    torch.save(InceptionNeXt('tiny').state_dict(), path)
    model = InceptionNeXt('atto')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_backbone_checkpoint(model, path)
    message = str(info.value)
    assert str(path) in message
    assert ('checkpoint looks like InceptionNeXt-tiny (depths 3-3-9-3, dims 96..768) but the model is '
            'InceptionNeXt-atto (depths 2-2-6-2, dims 40..320)') in message
    assert 'stem.0.weight (96, 3, 4, 4) in checkpoint vs (40, 3, 4, 4) in model' in message
    assert 'unexpected in checkpoint' in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing was loaded


def test_missing_keys_raise_unless_strict_false(timm_atto_state_dict, tmp_path):
    sd = {k: v for k, v in timm_atto_state_dict.items() if not k.startswith('stages.3.blocks.1.')}
    path = tmp_path / 'partial.pth'
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        load_backbone_checkpoint(InceptionNeXt('atto'), path)
    assert 'missing from checkpoint (15): stages.3.blocks.1.gamma' in str(info.value)
    assert 'checkpoint looks like a custom InceptionNeXt (depths 2-2-6-1, dims 40..320)' in str(info.value)

    model = InceptionNeXt('atto')
    report = load_backbone_checkpoint(model, path, strict=False)
    assert not report.ok and len(report.missing) == 15 and len(report.loaded) == 204
    assert report.bn_counters == ['stages.3.blocks.1.norm.num_batches_tracked']
    assert 'missing from checkpoint (15)' in report.summary()
    state = model.state_dict()
    assert all(torch.equal(state[k], sd[k]) for k in report.loaded)


def test_unexpected_non_head_key_raises(timm_atto_state_dict, tmp_path):
    path = tmp_path / 'extra.pth'
    torch.save({**timm_atto_state_dict, 'stages.0.blocks.0.extra_scale': torch.ones(40)}, path)
    with pytest.raises(CheckpointError, match=r'unexpected in checkpoint \(1\): stages\.0\.blocks\.0\.extra_scale'):
        load_backbone_checkpoint(InceptionNeXt('atto'), path)


def test_nothing_fitting_raises_even_when_not_strict(tmp_path):
    path = tmp_path / 'tiny.pth'
    torch.save({k: v for k, v in InceptionNeXt('tiny').state_dict().items() if v.dim() > 0 and 'gamma' not in k},
               path)
    with pytest.raises(CheckpointError, match='does not fit'):
        load_backbone_checkpoint(InceptionNeXt(dict(depths=(1, 1), dims=(8, 16), mlp_ratios=(2, 2)),
                                               out_indices=(0, 1)), path, strict=False)


def test_arch_is_read_from_shapes(timm_atto_state_dict):
    assert arch_name(infer_arch(_backbone(timm_atto_state_dict)), InceptionNeXt.arch_settings) == 'atto'
    custom = dict(depths=(1, 2), dims=(16, 32), mlp_ratios=(2, 3), token_mixer=dict(band_kernel_size=5,
                                                                                     branch_ratio=0.25))
    inferred = infer_arch(InceptionNeXt(custom, out_indices=(0, 1)).state_dict())
    assert inferred == dict(depths=(1, 2), dims=(16, 32), mlp_ratios=(2, 3),
                            token_mixer=dict(square_kernel_size=3, band_kernel_size=5, branch_ratio=0.25))
    assert arch_name(inferred, InceptionNeXt.arch_settings) is None
    assert infer_arch({'stem.0.weight': torch.zeros(1)}) is None
