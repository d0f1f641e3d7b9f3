"""InceptionNeXt backbone: parity with timm, parameter counts, OpenMMLab options, registries."""

import pytest
import timm
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope

from mmext.models.backbones.inceptionnext import InceptionNeXt

# Backbone parameters without the classification head, counted from the released architecture (timm's
# inception_next_* minus head.*).
PARAMS = {'atto': 2_885_440, 'tiny': 23_974_296, 'small': 45_292_632, 'base': 80_444_192}
# Whole classifiers, head included, as the paper's ImageNet-1K results list them (Params (M) column; atto is the
# paper's InceptionNeXt-A): 4.2M / 28M (28.1M) / 49M (49.4M) / 87M (86.7M), one decimal.
PAPER_CLS_PARAMS_M = {'atto': 4.2, 'tiny': 28.1, 'small': 49.4, 'base': 86.7}
TINY_ARCH = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2),
                 token_mixer=dict(band_kernel_size=5, branch_ratio=0.25))


@pytest.fixture(scope='module')
def timm_pairs(randomise_weights) -> dict[str, tuple[nn.Module, InceptionNeXt]]:
    """Per arch, timm's reference model with order-1 random weights, BN statistics and layer scales (1e-6 at init
    would hide errors in the residual branch), and ours holding the same weights; built once for the module."""
    pairs = {}
    for arch in ('atto', 'tiny'):  # branch ratio 1/4 with band 9, and 1/8 with band 11
        ref = randomise_weights(timm.create_model(f'inception_next_{arch}', pretrained=False), seed=0)
        ours = InceptionNeXt(arch)
        ours.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith('head.')}, strict=True)
        pairs[arch] = ref, ours
    return pairs


@pytest.mark.parametrize('arch', ['atto', 'tiny'])
@pytest.mark.parametrize('shape', [(1, 3, 64, 64), (1, 3, 69, 97)])  # odd sizes floor differently per stage
@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_parity_with_timm(timm_pairs, arch, shape, mode):
    ref, ours = timm_pairs[arch]
    ref.train(mode == 'train')
    ours.train(mode == 'train')
    x = torch.randn(2, *shape[1:]) if mode == 'train' else torch.randn(shape)  # train-mode BN needs batch > 1
    with torch.no_grad():
        expected = ref.forward_intermediates(x, intermediates_only=True)
        got = ours(x)
    assert len(got) == len(expected) == 4
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape, f'stage {i}'
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5, msg=f'stage {i}')


@pytest.mark.parametrize('arch', sorted(PARAMS))
def test_parameter_count_built_under_a_meta_device(arch):
    """Full-size arches are built only to count: on the meta device, no memory, no init."""
    with torch.device('meta'):
        model = InceptionNeXt(arch, drop_path_rate=0.3)
        classifier = timm.create_model(f'inception_next_{arch}', pretrained=False)
    assert {p.device.type for p in model.parameters()} == {'meta'}
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]
    assert round(sum(p.numel() for p in classifier.parameters()) / 1e6, 1) == PAPER_CLS_PARAMS_M[arch]
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for stage in model.stages for b in stage.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.3, len(rates)).tolist())  # real numbers, not meta tensors


def test_released_key_layout():
    ref = timm.create_model('inception_next_atto', pretrained=False)
    expected = {k for k in ref.state_dict() if not k.startswith('head.')}
    ours = InceptionNeXt('atto', out_norm_cfg=dict(type='BN'))
    keys = set(ours.state_dict())
    assert keys - expected == {k for k in keys if k.startswith('out_norms.')} != set()
    assert expected <= keys
    assert 'stages.0.blocks.0.token_mixer.dwconv_hw.weight' in keys
    assert ours.stages[0].blocks[0].token_mixer.split_indexes == (10, 10, 10, 10)  # atto: ratio 1/4 of 40
    assert InceptionNeXt('tiny').stages[0].blocks[0].token_mixer.split_indexes == (60, 12, 12, 12)


def test_identity_first_split():
    """The first ``C - 3g`` channels pass through the token mixer unchanged."""
    model = InceptionNeXt('atto').eval()
    mixer = model.stages[0].blocks[0].token_mixer
    x = torch.randn(1, 40, 9, 11)
    y = mixer(x)
    torch.testing.assert_close(y[:, :10], x[:, :10])
    assert not torch.allclose(y[:, 10:], x[:, 10:])


@pytest.mark.parametrize('out_indices', [(0,), (1, 3), (-1,), (0, 1, 2, 3)])
def test_out_indices_channels_strides(out_indices):
    model = InceptionNeXt(TINY_ARCH, out_indices=out_indices, out_norm_cfg=dict(type='BN'))
    outs = model(torch.randn(2, 3, 64, 96))
    idx = [i % 4 for i in out_indices]
    assert len(outs) == len(idx)
    assert model.channels == tuple(TINY_ARCH['dims'][i] for i in idx)
    assert model.strides == tuple(4 * 2 ** i for i in idx)
    for out, c, s in zip(outs, model.channels, model.strides):
        assert out.shape == (2, c, 64 // s, 96 // s)
    assert sorted(model.out_norms) == [str(i) for i in idx]


def test_out_norm_is_applied():
    model = InceptionNeXt(TINY_ARCH, out_indices=(3,), out_norm_cfg=dict(type='BN')).train()
    out = model(torch.randn(4, 3, 64, 64))[0]
    per_channel_mean = out.mean(dim=(0, 2, 3))
    torch.testing.assert_close(per_channel_mean, torch.zeros_like(per_channel_mean), atol=1e-4, rtol=0)


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='huge'), "Unknown InceptionNeXt arch 'huge'"),
    (dict(arch=dict(depths=(1, 1), dims=(8, 16))), r"missing keys \['mlp_ratios'\]"),
    (dict(arch=dict(depths=(1, 1), dims=(8, 16), mlp_ratios=(4,))), 'one entry per stage'),
    (dict(arch=dict(depths=(1,), dims=(8,), mlp_ratios=(4,), kernel=3)), r"unknown keys \['kernel'\]"),
    (dict(out_indices=(4,)), 'out_indices entry 4 is out of range for 4 stages'),
    (dict(out_indices=(-5,)), 'out_indices entry -5 is out of range'),
    (dict(out_indices=(2, 1)), 'increasing'),
    (dict(out_indices=()), 'non-empty'),
    (dict(frozen_stages=5), r'frozen_stages must be in \[-1, 4\]'),
    (dict(arch=dict(depths=(1,), dims=(4,), mlp_ratios=(4,), token_mixer=dict(branch_ratio=0.1)), out_indices=(0,)),
     'branch_ratio'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InceptionNeXt(**kwargs)


@pytest.mark.parametrize('frozen_stages', [0, 2])
def test_frozen_stages(frozen_stages):
    model = InceptionNeXt(TINY_ARCH, frozen_stages=frozen_stages, out_norm_cfg=dict(type='BN'))
    model.train()
    frozen = [model.stem] + [model.stages[i] for i in range(frozen_stages)]
    frozen += [model.out_norms[str(i)] for i in range(frozen_stages)]
    trainable = [model.stages[i] for i in range(frozen_stages, 4)]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(not m.training for m in module.modules())
    for module in trainable:
        assert all(p.requires_grad for p in module.parameters())
        assert all(m.training for m in module.modules())
    before = model.stem[1].running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(model.stem[1].running_mean, before)


def test_norm_eval():
    model = InceptionNeXt(TINY_ARCH, norm_eval=True, out_norm_cfg=dict(type='BN')).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert model.stages[0].blocks[0].mlp.fc1.weight.requires_grad


def test_drop_path_rates_increase_linearly():
    model = InceptionNeXt(TINY_ARCH, drop_path_rate=0.4)
    rates = [b.drop_path.drop_prob if hasattr(b.drop_path, 'drop_prob') else 0.
             for stage in model.stages for b in stage.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.4, 5))


def test_with_cp_matches_plain_forward_and_backward(assert_same_gradients):
    torch.manual_seed(0)
    assert_same_gradients(InceptionNeXt(TINY_ARCH), InceptionNeXt(TINY_ARCH, with_cp=True), torch.randn(2, 3, 64, 64))


def test_get_layer_depth():
    model = InceptionNeXt(TINY_ARCH, out_norm_cfg=dict(type='BN'))
    assert model.get_layer_depth('backbone.stem.0.weight', 'backbone.') == (0, 6)
    assert model.get_layer_depth('backbone.stages.0.blocks.0.gamma', 'backbone.') == (1, 6)
    assert model.get_layer_depth('backbone.stages.3.downsample.1.weight', 'backbone.') == (4, 6)
    assert model.get_layer_depth('backbone.out_norms.2.weight', 'backbone.') == (3, 6)
    assert model.get_layer_depth('decode_head.conv_seg.weight', 'backbone.') == (5, 6)
    depths = {model.get_layer_depth(n)[0] for n, _ in model.named_parameters()}
    assert depths == {0, 1, 2, 3, 4}


def test_default_init_is_trunc_normal():
    model = InceptionNeXt(TINY_ARCH)
    model.init_weights()
    # Every conv and linear weight drawn from N(0, 0.02) (mmengine's truncation at +-2 is absolute: it never bites
    # at this std), biases zero. PyTorch's default (kaiming uniform) would give std 1/sqrt(3 fan_in), 0.07 for fc1
    # of stage 2, and a uniform law puts 58 % of its mass within one std where a normal puts 68 %.
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 5 * sum(TINY_ARCH['depths']) + 4  # 3 mixer + 2 MLP convs per block; stem, 3 downsamples
    w = torch.cat([m.weight.flatten() for m in layers])
    assert w.numel() > 10_000
    assert abs(w.mean().item()) < 1e-3 and 0.019 < w.std().item() < 0.021
    assert 0.66 < (w.abs() < 0.02).float().mean().item() < 0.70
    assert all(torch.count_nonzero(m.bias) == 0 for m in layers if m.bias is not None)


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_builds_from_registry_under_default_scope(scope):
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    init_default_scope(scope)
    model = MODELS.build(dict(type='InceptionNeXt', arch='atto', out_indices=(1, 2)))
    assert isinstance(model, InceptionNeXt)
    assert model.channels == (80, 160)


def test_pretrained_inside_a_list_is_refused():
    model = InceptionNeXt(TINY_ARCH, init_cfg=[dict(type='Constant', layer='Conv2d', val=0.),
                                                dict(type='Pretrained', checkpoint='x.pth')])
    with pytest.raises(ValueError, match='not inside a list'):
        model.init_weights()


@pytest.mark.parametrize('output_stride, strides', [(32, (4, 8, 16, 32)), (16, (4, 8, 16, 16)), (8, (4, 8, 8, 8))])
def test_output_stride_matches_timm_with_unchanged_keys(timm_pairs, output_stride, strides):
    """Dilated last stages (issue 19): same state dict key for key and shape for shape, the numbers of timm's
    ``output_stride`` (2x2 downsample at stride 1, same padding, odd kernels dilated)."""
    ref, ours = timm_pairs['atto']
    dilated = InceptionNeXt('atto', output_stride=output_stride, init_cfg=None)
    assert {k: v.shape for k, v in dilated.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    dilated.load_state_dict(ours.state_dict())
    assert dilated.strides == strides
    timm_dilated = timm.create_model('inception_next_atto', pretrained=False, output_stride=output_stride)
    timm_dilated.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        got, expected = dilated.eval()(x), timm_dilated.eval().forward_intermediates(x, intermediates_only=True)
    for g, e, s in zip(got, expected, strides):
        assert g.shape[-2:] == (64 // s, 96 // s)
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='output_stride must be one of'):
        InceptionNeXt(TINY_ARCH, output_stride=4)


def test_device_and_dtype_factory_arguments():
    model = InceptionNeXt(TINY_ARCH, out_norm_cfg=dict(type='BN'), device='meta', dtype=torch.float64)
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    assert {t.device.type for t in tensors} == {'meta'} and {t.dtype for t in tensors} == {torch.float64}
