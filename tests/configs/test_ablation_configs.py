"""Segmentation counterparts of the paper's variants: configs match the variant table, and each trains in a tiny
form (its token mixer and norms, tiny widths) for two steps on the CPU."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from mmext.checkpoint import CheckpointError
from mmext.models.variants import PAPER_VARIANTS

REPO = Path(__file__).resolve().parents[2]
# The variant table names each variant's config; InceptionNeXt-T's own is a paper config (test_ade20k_configs.py).
CONFIGS = sorted({v['config'] for v in PAPER_VARIANTS.values()} - {'configs/upernet_inceptionnext_t_ade20k.py'})


def test_variant_configs_and_the_metafile_agree(zoo_models):
    """Every variant's config is in the metafile, and every config there under configs/ablations/ is a variant's."""
    listed = {m['Config'] for m in zoo_models}
    assert CONFIGS and set(CONFIGS) <= listed, sorted(set(CONFIGS) - listed)
    ablations = {c for c in listed if c.startswith('configs/ablations/')}
    assert ablations and ablations <= set(CONFIGS), sorted(ablations - set(CONFIGS))


def _as_tuples(x):
    if isinstance(x, dict):
        return {k: _as_tuples(v) for k, v in x.items()}
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def _tiny(backbone: dict) -> dict:
    """The same variant at tiny widths: 4-stage dims 16..64 (one block each) or an isotropic 2 x 32."""
    backbone = copy.deepcopy(backbone)
    arch = backbone['arch']
    if backbone['type'] == 'InceptionNeXtIsotropic':
        arch = dict(arch) if isinstance(arch, dict) else dict(mlp_ratio=4, token_mixer=dict(type='Attention') if
                                                              arch == 'attn_small' else None)
        arch.update(depth=2, dim=32)
        if arch.get('token_mixer') and arch['token_mixer'].get('type') == 'Attention':
            arch['token_mixer'] = dict(type='Attention', num_heads=2)
        arch = {k: v for k, v in arch.items() if v is not None}
    else:
        arch = dict(arch, depths=(1, 1, 1, 1), dims=(16, 32, 48, 64))
    backbone.update(arch=arch, init_cfg=None)
    return backbone


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_the_variant_and_trains_in_tiny_form(config, load_config):
    cfg = load_config(config)
    name = next(n for n, v in PAPER_VARIANTS.items() if v['config'] == config)
    variant = PAPER_VARIANTS[name]['backbone']
    backbone = cfg.model.backbone.to_dict()
    assert backbone['type'] == variant['type']
    assert _as_tuples(backbone['arch']) == _as_tuples(variant['arch']), name
    assert backbone.get('block_norm_cfg') == variant.get('block_norm_cfg'), name  # the LN blocks of Tables 1/5/8
    assert backbone['init_cfg'] is None  # no released weights for any variant

    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    model_cfg = cfg.model.to_dict()
    model_cfg['backbone'] = _tiny(backbone)
    channels = [32] * 4 if backbone['type'] == 'InceptionNeXtIsotropic' else [16, 32, 48, 64]
    model_cfg['decode_head'].update(in_channels=channels, channels=16, num_classes=4)
    model_cfg['auxiliary_head'].update(in_channels=channels[2], channels=8, num_classes=4)
    model_cfg['data_preprocessor']['size'] = (64, 64)
    model = revert_sync_batchnorm(MODELS.build(model_cfg)).train()
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1, 64, 64), generator=gen))
        samples.append(s)
    data = dict(inputs=[torch.randint(0, 255, (3, 64, 64), generator=gen).float() for _ in range(2)],
                data_samples=samples)
    before = copy.deepcopy(model.backbone.state_dict())
    losses = [model.train_step(data, wrapper) for _ in range(2)]
    assert all(torch.isfinite(v) for step in losses for k, v in step.items() if 'loss' in k)
    changed = [k for k, v in model.backbone.state_dict().items() if v.dtype.is_floating_point
               and not torch.equal(v, before[k])]
    assert any('token_mixer' in k for k in changed) or 'Identity' in str(backbone), name
    assert any('blocks.0.mlp.fc1' in k for k in changed)


def test_ablation_refuses_the_released_tiny_weights(tmp_path):
    """A variant is not InceptionNeXt-T: pointing it at the T checkpoint fails strictly, naming the culprit."""
    from mmext.models.backbones import InceptionNeXt
    torch.save(InceptionNeXt('tiny', init_cfg=None).state_dict(), tmp_path / 'tiny.pth')
    arch = PAPER_VARIANTS['inceptionnext_t_no_hband']['backbone']['arch']
    model = InceptionNeXt(arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'tiny.pth')))
    with pytest.raises(CheckpointError, match='dwconv_w'):
        model.init_weights()
