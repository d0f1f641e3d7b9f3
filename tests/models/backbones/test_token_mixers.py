"""Token mixers as data (paper Tables 1, 5, 8) in their registry, the norm options, and the backbone's argument
checks."""
import pytest
import torch
import torch.nn.functional as F

from mmext.models.backbones import InceptionNeXt
from mmext.models.backbones.metanext import LayerNorm2d
from mmext.models.backbones.token_mixers import Attention, DWConv2d, InceptionDWConv2d, build_token_mixer

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), mlp_ratios=(2, 2, 2, 2))


def test_removed_branches_join_identity_and_have_no_weights():
    mixer = InceptionDWConv2d(32, branch_ratio=0.25, branches=('hw', 'h'))
    assert mixer.split_indexes == (16, 8, 8)
    assert not hasattr(mixer, 'dwconv_w') and not mixer.fusable
    x = torch.randn(1, 32, 7, 9)
    y = mixer(x)
    torch.testing.assert_close(y[:, :16], x[:, :16])
    torch.testing.assert_close(y[:, 16:24], mixer.dwconv_hw(x[:, 16:24]))
    torch.testing.assert_close(y[:, 24:], mixer.dwconv_h(x[:, 24:]))


def test_sequential_bands_chain_w_then_h_on_one_part():
    mixer = InceptionDWConv2d(32, branch_ratio=0.25, bands='sequential')
    assert mixer.split_indexes == (16, 8, 8) and not mixer.fusable
    x = torch.randn(1, 32, 7, 9)
    torch.testing.assert_close(mixer(x)[:, 24:], mixer.dwconv_h(mixer.dwconv_w(x[:, 24:])))
    assert InceptionDWConv2d(32).fusable


def test_dwconv_mixer_convolves_a_ratio_of_channels():
    mixer = DWConv2d(16, kernel_size=3, ratio=0.25)
    x = torch.randn(1, 16, 5, 5)
    y = mixer(x)
    torch.testing.assert_close(y[:, :12], x[:, :12])
    torch.testing.assert_close(y[:, 12:], mixer.dwconv(x[:, 12:]))
    assert DWConv2d(16).split_indexes == (0, 16)


def test_attention_is_multi_head_softmax_attention_over_positions():
    torch.manual_seed(0)
    mixer = Attention(16, num_heads=2)
    x = torch.randn(2, 16, 3, 4)
    tokens = x.flatten(2).transpose(1, 2)
    q, k, v = mixer.qkv(tokens).reshape(2, 12, 3, 2, 8).permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1) / 8 ** 0.5).softmax(-1)
    expected = mixer.proj((attn @ v).transpose(1, 2).reshape(2, 12, 16)).transpose(1, 2).reshape(2, 16, 3, 4)
    torch.testing.assert_close(mixer(x), expected)


def test_layer_norm_2d_normalises_channels():
    norm = LayerNorm2d(8)
    x = torch.randn(2, 8, 3, 5)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (8,), eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)


@pytest.mark.parametrize('cfg, match', [
    (dict(type='NoSuchMixer'), "Unknown token_mixer type 'NoSuchMixer'; registered: .*'InceptionDWConv2d'"),
    (dict(type='DWConv2d', band_kernel_size=3), r"DWConv2d has no option\(s\) \['band_kernel_size'\]"),
    (dict(branches=('hw', 'x')), 'branches must be a non-empty subset'),
    (dict(branches=('hw', 'w'), bands='sequential'), "lacks one of them"),
    (dict(bands='serial'), "bands must be 'parallel' or 'sequential'"),
    (dict(type='Attention', num_heads=3), 'num_heads=3 must be a positive integer dividing in_channels=16'),
])
def test_bad_token_mixer_configs(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_token_mixer(cfg, 16)


def test_bad_arch_options_fail_at_build():
    with pytest.raises(ValueError, match="Unknown token_mixer type 'NoSuchMixer'"):
        InceptionNeXt(dict(TINY, token_mixer=dict(type='NoSuchMixer')))
    with pytest.raises(ValueError, match="block_norm must be one of"):
        InceptionNeXt(dict(TINY, block_norm='GN'))


LN2D = dict(type='LN2d', eps=1e-6)


def test_old_block_norm_spelling_warns_and_builds_the_same_network():
    with pytest.warns(FutureWarning, match=r"arch\['block_norm'\]='LN' is deprecated; write block_norm_cfg="):
        old = InceptionNeXt(dict(TINY, block_norm='LN'))
    new = InceptionNeXt(TINY, block_norm_cfg=LN2D)
    assert str(old) == str(new) and isinstance(new.stages[1].blocks[0].norm, LayerNorm2d)
    assert new.stages[1].blocks[0].norm.eps == 1e-6 and isinstance(new.stages[1].downsample[0], torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match='both set'):
        InceptionNeXt(dict(TINY, block_norm='LN'), block_norm_cfg=LN2D)


def test_norm_and_act_cfg_reach_stem_downsamples_and_blocks():
    model = InceptionNeXt(TINY, norm_cfg=LN2D, act_cfg=dict(type='ReLU'))
    norms = [model.stem[1], model.stages[1].downsample[0], model.stages[3].blocks[0].norm]
    assert all(isinstance(n, LayerNorm2d) for n in norms)
    assert isinstance(model.stages[0].blocks[0].mlp.act, torch.nn.ReLU)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize('token_mixer', [dict(type='DWConv2d', kernel_size=3, ratio=0.5), dict(type='Attention'),
                                         dict(type='Identity'), dict(branches=('w', 'h'), bands='sequential')])
def test_variant_backbones_run_and_backprop(token_mixer):
    model = InceptionNeXt(dict(TINY, token_mixer=token_mixer), block_norm_cfg=LN2D).train()
    outs = model(torch.randn(2, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [8, 16, 24, 32]
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_deploy_keeps_outputs_with_layer_norm_blocks():
    torch.manual_seed(0)
    model = InceptionNeXt(TINY, block_norm_cfg=LN2D, layer_scale_init_value=0.5).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.switch_to_deploy()
        after = model(x)
    assert isinstance(model.stages[0].blocks[0].norm, LayerNorm2d) and model.stages[0].blocks[0].gamma is None
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# Issue 12: these were accepted (drop_path_rate=1.0 gave NaN) or failed deep in torch.
@pytest.mark.parametrize('kwargs, error, match', [
    (dict(drop_path_rate=1.0), ValueError, r'drop_path_rate must be a number in \[0, 1\), got 1.0'),
    (dict(drop_path_rate=1.5), ValueError, 'got 1.5'),
    (dict(drop_path_rate=-0.1), ValueError, 'got -0.1'),
    (dict(out_indices=(1.5,)), TypeError, r'out_indices entries must be integers, got 1.5'),
    (dict(out_indices=(True,)), TypeError, 'out_indices entries must be integers'),
    (dict(frozen_stages=True), TypeError, r'frozen_stages must be an integer in \[-1, 4\], got True'),
])
def test_bad_backbone_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        InceptionNeXt(TINY, **kwargs)


def test_too_small_input_states_the_minimum():
    model = InceptionNeXt(TINY).eval()
    assert model.min_input_size == 32
    with pytest.raises(ValueError, match='at least 32x32 pixels .* got 31x64'):
        model(torch.randn(1, 3, 31, 64))
    assert InceptionNeXt(TINY, out_indices=(0, 1)).min_input_size == 8
    assert model(torch.randn(1, 3, 32, 33))[-1].shape[-2:] == (1, 1)


@pytest.mark.gpu
def test_ablated_mixers_take_the_reference_path_on_cuda():
    for kw in (dict(branches=('hw', 'h')), dict(bands='sequential')):
        mixer = InceptionDWConv2d(32, fast_mixer=True, **kw).cuda()
        x = torch.randn(2, 32, 14, 14, device='cuda')
        ref = InceptionDWConv2d(32, fast_mixer=False, **kw).cuda()
        ref.load_state_dict(mixer.state_dict())
        torch.testing.assert_close(mixer(x), ref(x))


def test_a_mixer_registered_by_another_package_builds_inside_the_backbone():
    """``TOKEN_MIXERS`` is an mmengine registry: an outside class registered in it (or in a child registry of the
    outside package's scope) is built by ``dict(type=...)``, under mmseg's default scope as well."""
    from mmengine.registry import MODELS, Registry, init_default_scope

    from mmext.registry import TOKEN_MIXERS

    class AvgPoolMixer(torch.nn.Module):  # an outside package's mixer (PoolFormer's)
        def __init__(self, dim: int, pool_size: int = 3) -> None:
            super().__init__()
            self.pool = torch.nn.AvgPool2d(pool_size, 1, pool_size // 2, count_include_pad=False)

        def forward(self, x):
            return self.pool(x) - x

    assert TOKEN_MIXERS.parent is MODELS and TOKEN_MIXERS.get('InceptionDWConv2d') is InceptionDWConv2d
    TOKEN_MIXERS.register_module(module=AvgPoolMixer, force=True)
    outside = Registry('token mixer', parent=TOKEN_MIXERS, scope='outside_pkg')
    outside.register_module(name='ScopedPool', module=AvgPoolMixer, force=True)
    init_default_scope('mmseg')
    for mixer in (dict(type='AvgPoolMixer', pool_size=5), dict(type='outside_pkg.ScopedPool')):
        model = InceptionNeXt(dict(TINY, token_mixer=mixer)).eval()
        assert isinstance(model.stages[2].blocks[0].token_mixer, AvgPoolMixer)
        assert model(torch.randn(1, 3, 32, 32))[-1].shape == (1, 32, 1, 1)
    with pytest.raises(ValueError, match=r"AvgPoolMixer has no option\(s\) \['kernel'\]; it takes \['pool_size'\]"):
        InceptionNeXt(dict(TINY, token_mixer=dict(type='AvgPoolMixer', kernel=3)))
