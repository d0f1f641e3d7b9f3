"""LayerDecayOptimWrapperConstructor: stage-/layer-wise lr scales, no decay on 1-D params, DDP, clear errors, the
deprecated InceptionNeXt name."""
import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmext.engine.optimizers import InceptionNeXtLayerDecayOptimizerConstructor, LayerDecayOptimWrapperConstructor
from mmext.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

CONSTRUCTOR = 'LayerDecayOptimWrapperConstructor'
BASE_LR, BASE_WD, DECAY = 1e-3, 0.05, 0.5


def _tiny_segmentor(backbone: dict | None = None, in_channels=(8, 16, 32, 64), **backbone_kwargs) -> torch.nn.Module:
    """A small FPN segmentor; the default backbone is a 4-stage InceptionNeXt with per-output norms."""
    init_default_scope('mmseg')
    norm_cfg = dict(type='BN', requires_grad=True)
    backbone = backbone or dict(
        type='InceptionNeXt', out_norm_cfg=norm_cfg, **backbone_kwargs,
        arch=dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64), mlp_ratios=(2, 2, 2, 2),
                  token_mixer=dict(branch_ratio=0.25)))
    return MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.] * 3, std=[1.] * 3),
        backbone=backbone,
        neck=dict(type='FPN', in_channels=list(in_channels), out_channels=8, num_outs=4),
        decode_head=dict(type='FPNHead', in_channels=[8] * 4, in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32],
                         channels=8, num_classes=3, norm_cfg=norm_cfg)))


def _optim_cfg(**paramwise_cfg) -> dict:
    return dict(type='OptimWrapper', constructor=CONSTRUCTOR,
                optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD),
                paramwise_cfg=dict(decay_rate=DECAY, **paramwise_cfg))


def _groups_by_param(optimizer) -> dict[str, dict]:
    return {name: group for group in optimizer.param_groups for name in group['param_names']}


def _expected_layer(name: str) -> int:
    """The stage-wise depth written out by hand: stem 0, stage i (and its output norm) i + 1, the rest 5."""
    if name.startswith('backbone.stem.'):
        return 0
    if name.startswith(('backbone.stages.', 'backbone.out_norms.')):
        return int(name.split('.')[2]) + 1
    return 5


def test_registered_and_old_name_still_builds_with_a_deprecation_warning():
    assert OPTIM_WRAPPER_CONSTRUCTORS.get(CONSTRUCTOR) is LayerDecayOptimWrapperConstructor
    model = _tiny_segmentor()
    with pytest.warns(FutureWarning, match="write constructor='LayerDecayOptimWrapperConstructor'"):
        old = build_optim_wrapper(model, dict(_optim_cfg(), constructor='InceptionNeXtLayerDecayOptimizerConstructor'))
    new = build_optim_wrapper(model, _optim_cfg())
    assert [g['lr'] for g in old.optimizer.param_groups] == [g['lr'] for g in new.optimizer.param_groups]
    assert issubclass(InceptionNeXtLayerDecayOptimizerConstructor, LayerDecayOptimWrapperConstructor)


TINY_ISO = dict(type='InceptionNeXtIsotropic', arch=dict(depth=3, dim=8, mlp_ratio=2, token_mixer=dict(
    branch_ratio=0.25)), out_indices=(0, 1, 2, 3))


def test_isotropic_backbone_is_layer_wise_and_refuses_stage_wise():
    """Its depth is one layer per block: 'stage_wise' there was a misnomer and is refused, naming the fix."""
    model = _tiny_segmentor(backbone=TINY_ISO, in_channels=[8] * 4)
    by_name = _groups_by_param(build_optim_wrapper(model, _optim_cfg()).optimizer)
    assert by_name['backbone.blocks.0.mlp.fc1.weight']['lr_scale'] == pytest.approx(DECAY ** 3)
    assert by_name['backbone.blocks.2.mlp.fc1.weight']['lr_scale'] == pytest.approx(DECAY)
    assert by_name['backbone.pyramid.0.0.weight']['lr_scale'] == 1.
    assert build_optim_wrapper(model, _optim_cfg(decay_type='layer_wise'))
    with pytest.raises(ValueError, match="reports 'layer_wise' depths; set decay_type='layer_wise'"):
        build_optim_wrapper(model, _optim_cfg(decay_type='stage_wise'))


def test_stage_wise_lr_scale_and_no_decay_on_flat_params():
    model = _tiny_segmentor()
    optimizer = build_optim_wrapper(model, _optim_cfg()).optimizer
    by_name = _groups_by_param(optimizer)
    names = [name for name, _ in model.named_parameters()]
    assert sorted(by_name) == sorted(names)  # every parameter exactly once
    assert sum(len(g['params']) for g in optimizer.param_groups) == len(names)
    params = dict(model.named_parameters())
    for name, group in by_name.items():
        scale = DECAY ** (5 - _expected_layer(name))
        assert group['lr_scale'] == pytest.approx(scale), name
        assert group['lr'] == pytest.approx(BASE_LR * scale), name
        assert group['weight_decay'] == (0. if params[name].ndim == 1 else BASE_WD), name
    # Spot checks in words: the stem learns 32x slower than the heads; gamma and norms are not decayed.
    assert by_name['backbone.stem.0.weight']['lr'] == pytest.approx(BASE_LR / 32)
    assert by_name['backbone.stages.2.blocks.1.mlp.fc1.weight']['lr'] == pytest.approx(BASE_LR / 4)
    assert by_name['backbone.out_norms.3.weight']['lr'] == pytest.approx(BASE_LR / 2)
    assert by_name['decode_head.conv_seg.weight']['lr'] == BASE_LR
    for flat in ('backbone.stages.0.blocks.0.gamma', 'backbone.stem.1.weight', 'neck.lateral_convs.0.conv.bias'):
        assert by_name[flat]['weight_decay'] == 0.
    assert {g['group_name'] for g in optimizer.param_groups} == {
        f'layer_{i}_{kind}' for i in range(6) for kind in ('decay', 'no_decay')}


def test_flat_decay_mult_and_frozen_stages():
    model = _tiny_segmentor(frozen_stages=1)
    optimizer = build_optim_wrapper(model, _optim_cfg(flat_decay_mult=0.5)).optimizer
    by_name = _groups_by_param(optimizer)
    assert not any(name.startswith(('backbone.stem.', 'backbone.stages.0.', 'backbone.out_norms.0.'))
                   for name in by_name)
    assert by_name['backbone.stages.1.blocks.0.gamma']['weight_decay'] == pytest.approx(BASE_WD / 2)
    assert by_name['backbone.stages.1.blocks.0.mlp.fc1.weight']['weight_decay'] == BASE_WD


def test_ddp_wrapped_model_gives_the_same_groups(tmp_path):
    """The Runner builds the optimizer on the DDP-wrapped model; a DDP-wrapped backbone works too."""
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        plain = _groups_by_param(build_optim_wrapper(_tiny_segmentor(), _optim_cfg()).optimizer)
        wrapped_model = MMDistributedDataParallel(_tiny_segmentor(), device_ids=None)
        wrapped = _groups_by_param(build_optim_wrapper(wrapped_model, _optim_cfg()).optimizer)
        inner = _tiny_segmentor()
        inner.backbone = torch.nn.parallel.DistributedDataParallel(inner.backbone)
        inner_groups = build_optim_wrapper(inner, _optim_cfg()).optimizer.param_groups
    finally:
        dist.destroy_process_group()
    assert sorted(wrapped) == sorted(plain)
    assert all(wrapped[n]['lr_scale'] == plain[n]['lr_scale'] for n in plain)
    inner_scales = {n.replace('backbone.module.', 'backbone.'): g['lr_scale']
                    for g in inner_groups for n in g['param_names']}
    assert inner_scales == {n: g['lr_scale'] for n, g in plain.items()}


def test_refuses_backbone_without_layer_depth():
    resnet = dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN'))
    model = _tiny_segmentor(backbone=resnet)
    with pytest.raises(TypeError, match='ResNetV1c.*get_layer_depth|get_layer_depth.*ResNetV1c'):
        build_optim_wrapper(model, _optim_cfg())


@pytest.mark.parametrize('paramwise_cfg, match', [
    (dict(decay_type='stage_wise'), 'needs decay_rate'),
    (dict(decay_rate=0.9, decay_type='block_wise'), "decay_type='block_wise'"),
    (dict(decay_rate=1.5), 'decay_rate must be in'),
    (dict(decay_rate=0.9, num_layers=6), r"\['num_layers'\]"),
])
def test_bad_paramwise_cfg(paramwise_cfg, match):
    with pytest.raises(ValueError, match=match):
        LayerDecayOptimWrapperConstructor(dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.)), paramwise_cfg)


def test_switch_on_from_a_config(repo_root):
    """The switch the configs' comment describes, as ``--cfg-options`` would apply it, on the full UperNet-T."""
    cfg = Config.fromfile(repo_root / 'configs' / 'upernet_inceptionnext_t_ade20k.py')
    cfg.merge_from_dict({'optim_wrapper.constructor': CONSTRUCTOR, 'optim_wrapper.paramwise_cfg.decay_rate': 0.9})
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)  # SyncBN layers are fine: no forward here
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    by_name = _groups_by_param(optimizer)
    assert by_name['backbone.stem.0.weight']['lr'] == pytest.approx(6e-5 * 0.9 ** 5)
    assert by_name['backbone.stages.3.blocks.2.mlp.fc2.weight']['lr'] == pytest.approx(6e-5 * 0.9)
    assert by_name['auxiliary_head.conv_seg.weight']['lr'] == pytest.approx(6e-5)
    assert by_name['backbone.stages.3.blocks.2.gamma']['weight_decay'] == 0.
    assert by_name['decode_head.fpn_bottleneck.conv.weight']['weight_decay'] == 0.01
