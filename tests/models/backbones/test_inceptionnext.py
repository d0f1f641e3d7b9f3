"""InceptionNeXt backbone: parity with timm, parameter counts, OpenMMLab options, registries."""
import subprocess
import sys

import pytest
import timm
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope

from mmext.models.backbones.inceptionnext import InceptionNeXt

# Backbone parameters without the classification head, counted from the released architecture (timm's
# inception_next_* minus head.*); the paper's classification table, head included, rounds them with the head to
# 4.2M / 28.1M / 49.4M / 86.7M (test_parameter_count_with_head_matches_the_paper).
PARAMS = {'atto': 2_885_440, 'tiny': 23_974_296, 'small': 45_292_632, 'base': 80_444_192}
TINY_ARCH = dict(depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2),
                 token_mixer=dict(band_kernel_size=5, branch_ratio=0.25))


def _timm_pair(arch: str) -> tuple[nn.Module, InceptionNeXt]:
    """timm's reference model with random BN statistics, and ours holding the same weights."""
    torch.manual_seed(0)
    ref = timm.create_model(f'inception_next_{arch}', pretrained=False)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        for name, p in ref.named_parameters():
            if name.endswith('gamma'):
                p.uniform_(0.5, 1.5)  # 1e-6 at init would hide errors in the residual branch
    ours = InceptionNeXt(arch)
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith('head.')}
    ours.load_state_dict(state, strict=True)
    return ref, ours


@pytest.mark.parametrize('arch', ['atto', 'tiny'])
@pytest.mark.parametrize('shape', [(1, 3, 224, 224), (1, 3, 229, 317)])
@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_parity_with_timm(arch, shape, mode):
    ref, ours = _timm_pair(arch)
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
def test_parameter_count(arch):
    model = InceptionNeXt(arch)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]


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


def test_with_cp_matches_plain_forward_and_backward():
    torch.manual_seed(0)
    plain = InceptionNeXt(TINY_ARCH)
    ckpt = InceptionNeXt(TINY_ARCH, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, ckpt):
        sum(o.sum() for o in model(x)).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


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
    w = model.stages[2].blocks[0].mlp.fc1.weight
    assert 0.015 < w.std().item() < 0.025
    assert w.abs().max().item() <= 2.0 + 1e-6  # truncated at +-2 (absolute, mmengine's default)
    assert torch.count_nonzero(model.stages[2].blocks[0].mlp.fc1.bias) == 0


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


def test_custom_imports_registers_in_fresh_process(tmp_path):
    """A config with only ``custom_imports`` finds the backbone, as under mmseg's own tools."""
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['mmext'], allow_failed_imports=False)\n"
                   "default_scope = 'mmseg'\n"
                   "backbone = dict(type='InceptionNeXt', arch='atto')\n")
    code = ('from mmengine.config import Config\n'
            'from mmengine.registry import init_default_scope\n'
            f'cfg = Config.fromfile({str(cfg)!r})\n'
            'init_default_scope(cfg.default_scope)\n'
            'import mmseg.models\n'
            'from mmseg.registry import MODELS\n'
            'print(type(MODELS.build(cfg.backbone)).__name__)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == 'InceptionNeXt'


def test_pretrained_inside_a_list_is_refused():
    model = InceptionNeXt(TINY_ARCH, init_cfg=[dict(type='Constant', layer='Conv2d', val=0.),
                                                dict(type='Pretrained', checkpoint='x.pth')])
    with pytest.raises(ValueError, match='not inside a list'):
        model.init_weights()
