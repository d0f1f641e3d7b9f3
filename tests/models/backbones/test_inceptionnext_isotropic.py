"""Isotropic InceptionNeXt (paper Table 5) as a dense-prediction backbone."""
import pytest
import torch
from mmengine.registry import init_default_scope

from mmext.checkpoint import CheckpointError
from mmext.models.backbones import InceptionNeXtIsotropic

TINY_ISO = dict(depth=2, dim=16, mlp_ratio=2, token_mixer=dict(branch_ratio=0.25, band_kernel_size=5))


def test_pyramid_strides_and_channels():
    model = InceptionNeXtIsotropic(TINY_ISO).eval()
    outs = model(torch.randn(1, 3, 64, 96))
    assert model.strides == (4, 8, 16, 32) and model.channels == (16,) * 4
    assert [o.shape for o in outs] == [(1, 16, 64 // s, 96 // s) for s in (4, 8, 16, 32)]
    assert [type(m).__name__ for m in model.pyramid['0']] == ['ConvTranspose2d', 'BatchNorm2d', 'GELU',
                                                              'ConvTranspose2d']
    assert model.min_input_size == 32 and InceptionNeXtIsotropic(TINY_ISO, out_indices=(2,)).min_input_size == 16
    with pytest.raises(ValueError, match='at least 32x32'):
        model(torch.randn(1, 3, 16, 64))


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_builds_from_registry(scope):
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    init_default_scope(scope)
    model = registry.build(dict(type='InceptionNeXtIsotropic', arch=dict(TINY_ISO, token_mixer=dict(
        type='Attention', num_heads=2)), out_indices=(1, 2)))
    assert isinstance(model, InceptionNeXtIsotropic) and model.strides == (8, 16)


def test_full_size_archs_match_the_paper_shape():
    with torch.device('meta'):
        small, attn = InceptionNeXtIsotropic('small'), InceptionNeXtIsotropic('attn_small')
    assert len(small.blocks) == 18 and small.stem[0].kernel_size == (16, 16) and small.stem[0].out_channels == 384
    assert small.blocks[0].token_mixer.split_indexes == (240, 48, 48, 48)
    assert small.blocks[0].token_mixer.dwconv_w.kernel_size == (1, 11)
    assert small.blocks[0].mlp.fc1.out_channels == 4 * 384
    assert len(attn.blocks) == 12 and attn.blocks[0].token_mixer.num_heads == 6


def test_openmmlab_options():
    model = InceptionNeXtIsotropic(TINY_ISO, frozen_stages=1, norm_eval=True, drop_path_rate=0.2).train()
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.blocks[0].parameters())
    assert all(p.requires_grad for p in model.blocks[1].parameters())
    assert not model.blocks[1].norm.training
    assert model.blocks[1].drop_path.drop_prob == pytest.approx(0.2)
    assert model.get_layer_depth('backbone.stem.0.weight', 'backbone.') == (0, 4)
    assert model.get_layer_depth('backbone.blocks.1.gamma', 'backbone.') == (2, 4)
    assert model.get_layer_depth('backbone.pyramid.0.0.weight', 'backbone.') == (3, 4)
    assert model.get_layer_depth('decode_head.conv_seg.weight', 'backbone.') == (3, 4)
    with pytest.raises(ValueError, match='frozen_stages must be in'):
        InceptionNeXtIsotropic(TINY_ISO, frozen_stages=3)
    with pytest.raises(ValueError, match='drop_path_rate'):
        InceptionNeXtIsotropic(TINY_ISO, drop_path_rate=1.0)
    with pytest.raises(ValueError, match='out_indices entry 4 is out of range for 4 pyramid levels'):
        InceptionNeXtIsotropic(TINY_ISO, out_indices=(4,))


def test_with_cp_matches_plain_backward():
    torch.manual_seed(0)
    plain, ckpt = InceptionNeXtIsotropic(TINY_ISO), InceptionNeXtIsotropic(TINY_ISO, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for model in (plain, ckpt):
        sum(o.sum() for o in model(x)).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_pretrained_classifier_checkpoint_loads_strictly(load_tool, tmp_path):
    """An ImageNet-trained isotropic classifier (``head.*``, no pyramid) loads; the pyramid is reported as new."""
    forms = load_tool('tools/analysis/paper_variants.py')
    classifier = forms.MetaNeXtClassifier(dict(type='InceptionNeXtIsotropic', arch=TINY_ISO), head='linear')
    state = {k.removeprefix('backbone.'): v for k, v in classifier.state_dict().items()}
    torch.save(state, tmp_path / 'iso.pth')
    model = InceptionNeXtIsotropic(TINY_ISO, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'iso.pth')))
    model.init_weights()
    torch.testing.assert_close(model.blocks[1].mlp.fc1.weight, state['blocks.1.mlp.fc1.weight'])
    other = InceptionNeXtIsotropic(dict(TINY_ISO, dim=24), init_cfg=dict(type='Pretrained',
                                                                          checkpoint=str(tmp_path / 'iso.pth')))
    with pytest.raises(CheckpointError, match='does not fit'):
        other.init_weights()


def test_pretrained_takes_checkpoint_key_and_refuses_nan_like_inceptionnext(tmp_path):
    """The Pretrained options of :class:`InceptionNeXt` (``checkpoint_key``, NaN/Inf refusal) hold here too."""
    state = InceptionNeXtIsotropic(TINY_ISO).state_dict()
    torch.save(dict(model_ema=state), tmp_path / 'ema.pth')
    model = InceptionNeXtIsotropic(TINY_ISO, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'ema.pth'),
                                                           checkpoint_key='model_ema'))
    model.init_weights()
    torch.testing.assert_close(model.blocks[0].mlp.fc2.weight, state['blocks.0.mlp.fc2.weight'])
    state['blocks.0.gamma'][0] = float('inf')
    torch.save(state, tmp_path / 'inf.pth')
    with pytest.raises(CheckpointError, match='NaN/Inf'):
        InceptionNeXtIsotropic(TINY_ISO, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'inf.pth'))
                               ).init_weights()


def test_norm_options_and_the_old_norm_cfg_spelling():
    """``norm_cfg`` is the stem/block norm as in InceptionNeXt; its old meaning (the pyramid norm) is still accepted
    with a FutureWarning naming ``pyramid_norm_cfg``."""
    gn = dict(type='GN', num_groups=2)
    with pytest.warns(FutureWarning, match=r'norm_cfg=.* for the pyramid norm is deprecated; write pyramid_norm_cfg='):
        old = InceptionNeXtIsotropic(TINY_ISO, norm_cfg=gn)
    new = InceptionNeXtIsotropic(TINY_ISO, pyramid_norm_cfg=gn)
    assert str(old) == str(new) and isinstance(new.pyramid['0'][1], torch.nn.GroupNorm)
    assert isinstance(new.stem[1], torch.nn.BatchNorm2d) and isinstance(new.blocks[0].norm, torch.nn.BatchNorm2d)
    both = InceptionNeXtIsotropic(TINY_ISO, norm_cfg=gn, pyramid_norm_cfg=dict(type='BN'), out_norm_cfg=gn,
                                  out_indices=(1, 2), act_cfg=dict(type='ReLU'))
    assert isinstance(both.stem[1], torch.nn.GroupNorm) and isinstance(both.blocks[1].norm, torch.nn.GroupNorm)
    assert isinstance(both.blocks[0].mlp.act, torch.nn.ReLU) and sorted(both.out_norms) == ['1', '2']
    assert both.get_layer_depth('backbone.out_norms.1.weight', 'backbone.') == (3, 4)
