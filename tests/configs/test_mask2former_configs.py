"""The heads beyond the paper's: Mask2Former (ADE20K T/S/B, Cityscapes T), UperNet on Cityscapes and DINO on COCO.

configs/metafile.yaml lists them; tests/configs/test_metafile.py checks their parameter counts and the recipe facts
it declares (lr, weight decay, crop, batch, iterations, drop path, weights). Here: the Mask2Former Swin recipe's
details, the siblings' agreement, and training a tiny form with mmengine's Runner on the real ADE20K samples, as
mmseg's own ``tools/train.py`` would.
"""
import math
from pathlib import Path

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

from mmext.apis.builder import build_segmentor

REPO_ROOT = Path(__file__).resolve().parents[2]
RELEASES = 'https://github.com/sail-sg/inceptionnext/releases/download/model/'


def select_models(model: dict) -> bool:
    return model['In Collection'] == 'Mask2Former'


def test_mask2former_recipe(zoo_model, load_config):
    """mmseg's Mask2Former Swin recipe with the backbone swapped, and mmext's runtime settings written out."""
    name = zoo_model['Name']
    cfg = load_config(zoo_model['Config'])
    arch = cfg.model.backbone.arch
    classes = {'ADE20K': 150, 'Cityscapes': 19}[zoo_model['Metadata']['Training Data']]
    runtime = load_config('configs/_base_/mmext_runtime.py')
    assert cfg.custom_imports.imports == ['mmext', 'mmdet.models'] and not cfg.custom_imports.allow_failed_imports
    assert {k: cfg[k] for k in runtime if k != 'custom_imports'} == {k: v for k, v in runtime.items()
                                                                       if k != 'custom_imports'}
    backbone = cfg.model.backbone
    assert backbone.type == 'InceptionNeXt' and backbone.out_indices == (0, 1, 2, 3)
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=f'{RELEASES}inceptionnext_{arch}.pth')
    assert backbone.out_norm_cfg == dict(type='SyncBN', requires_grad=True)
    head = cfg.model.decode_head
    assert head.type == 'Mask2FormerHead' and head.num_classes == classes
    assert len(head.loss_cls.class_weight) == classes + 1  # mmseg's dataset config, not ADE20K's, for Cityscapes
    assert head.in_channels == ([128, 256, 512, 1024] if arch == 'base' else [96, 192, 384, 768])
    assert cfg.model.data_preprocessor.size == cfg.crop_size and cfg.auto_scale_lr.base_batch_size == 16
    (poly, ) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.end) == ('PolyLR', 0.9, cfg.train_cfg.max_iters)
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.clip_grad == dict(max_norm=0.01,
                                                                                               norm_type=2)
    if name != 'mask2former_inceptionnext_t_ade20k':  # every variant: the -T ADE20K config's optimizer
        assert cfg.optim_wrapper == load_config('configs/mask2former_inceptionnext_t_ade20k.py').optim_wrapper


def test_mask2former_param_groups(load_config):
    """The custom keys give every backbone parameter lr x0.1, and no weight decay to the backbone's BatchNorms and
    layer scales nor to the query/level embeddings; the head's norms get none, its weights the full decay."""
    cfg = load_config('configs/mask2former_inceptionnext_t_ade20k.py')
    model = build_segmentor(cfg, {'model.backbone.arch': 'atto'}, log_dropped=False)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    names = dict(model.named_parameters())
    assert len(group_of) == len(names)
    lr, wd = 1e-4, 0.05
    backbone_norms = ('backbone.stem.1.', '.downsample.0.', '.norm.', '.gamma', 'backbone.out_norms.')
    checked = dict(backbone_norm=0, backbone_weight=0, embed=0, head_weight=0)
    for name, param in names.items():
        group = group_of[id(param)]
        if name.startswith('backbone.'):
            assert group['lr'] == pytest.approx(lr * 0.1), name
            no_decay = any(key in name for key in backbone_norms)
            assert group['weight_decay'] == (0. if no_decay else wd), name
            checked['backbone_norm' if no_decay else 'backbone_weight'] += 1
        elif any(key in name for key in ('query_embed', 'query_feat', 'level_embed')):
            assert (group['lr'], group['weight_decay']) == (lr, 0.), name
            checked['embed'] += 1
        else:
            assert group['lr'] == lr, name
            if name.endswith('.weight') and param.dim() > 1:
                assert group['weight_decay'] == wd, name
                checked['head_weight'] += 1
    assert checked['embed'] == 3 and min(checked.values()) > 0, checked
    # stem BN, 3 downsample BNs, 4 + 4 out-norm/gamma... every BN and gamma of the atto backbone: 2 + 6 + 12 x 3 + 8
    assert checked['backbone_norm'] == 2 + 3 * 2 + 12 * 3 + 4 * 2


def test_cityscapes_configs_match_their_siblings(load_config):
    """Mask2Former-T Cityscapes: the ADE20K -T config's backbone, head widths and optimizer on mmseg's Cityscapes
    setting; UperNet-T Cityscapes: the ADE20K UperNet model and optimizer on mmseg's 80k Cityscapes schedule."""
    m2f_city = load_config('configs/mask2former_inceptionnext_t_cityscapes.py')
    m2f_ade = load_config('configs/mask2former_inceptionnext_t_ade20k.py')
    assert m2f_city.model.backbone == m2f_ade.model.backbone
    assert m2f_city.train_dataloader.dataset.type == 'CityscapesDataset'
    assert m2f_city.train_cfg.val_interval == 5000 and m2f_city.train_cfg.max_iters == 90000

    up_city = load_config('configs/upernet_inceptionnext_t_cityscapes.py')
    up_ade = load_config('configs/upernet_inceptionnext_t_ade20k.py')
    assert up_city.model.backbone == up_ade.model.backbone
    assert up_city.optim_wrapper == up_ade.optim_wrapper
    assert up_city.model.decode_head.num_classes == up_city.model.auxiliary_head.num_classes == 19
    assert up_city.crop_size == (512, 1024) and up_city.model.data_preprocessor.size == (512, 1024)
    assert up_city.train_dataloader.dataset.type == 'CityscapesDataset' and up_city.train_dataloader.batch_size == 2
    assert (up_city.train_cfg.max_iters, up_city.train_cfg.val_interval) == (80000, 8000)
    assert up_city.param_scheduler[-1].end == 80000 and 'optimizer' not in up_city  # no stray SGD from mmseg
    dino = load_config('configs/dino-4scale_inceptionnext_t_coco.py')
    assert dino.model.type == 'DINO' and dino.model.neck.in_channels == [192, 384, 768]
    assert dino.model.backbone.out_indices == (1, 2, 3) and dino.custom_imports.imports == ['mmext']


def tiny_mask2former_options(data_root: Path, work_dir: Path) -> dict:
    """``--cfg-options`` for a 2-iteration Mask2Former run on 64x64 crops of the real ADE20K samples."""
    options = {
        'work_dir': str(work_dir),
        'model.backbone.arch': 'atto', 'model.backbone.init_cfg': None,
        'model.decode_head.in_channels': [40, 80, 160, 320], 'model.decode_head.num_queries': 10,
        'model.decode_head.transformer_decoder.num_layers': 3,
        'model.decode_head.pixel_decoder.encoder.num_layers': 1, 'model.decode_head.train_cfg.num_points': 256,
        'train_dataloader.dataset.data_prefix.img_path': 'images/validation',
        'train_dataloader.dataset.data_prefix.seg_map_path': 'annotations/validation',
        'train_dataloader.dataset.pipeline.2.scales': [64, 80],
        'train_dataloader.dataset.pipeline.2.max_size': 160,
        'train_dataloader.dataset.pipeline.3.crop_size': (64, 64),
        'model.data_preprocessor.size': (64, 64), 'val_dataloader.dataset.pipeline.1.scale': (128, 64),
        'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2, 'default_hooks.logger.interval': 1,
        'val_dataloader.dataset.indices': [2],  # validate on the smallest sample only
        'default_hooks.checkpoint.save_best': None, 'default_hooks.checkpoint.save_last': False,
    }
    for loader in ('train_dataloader', 'val_dataloader'):
        options.update({f'{loader}.dataset.data_root': str(data_root), f'{loader}.num_workers': 0,
                        f'{loader}.persistent_workers': False})
    return options


def test_mask2former_trains_with_runner(ade20k_samples, tmp_path, load_config):
    """2 iterations and a validation of Mask2Former (tiny backbone and head) through mmengine's Runner: what mmseg's
    ``tools/train.py`` does with the same ``--cfg-options`` (run as a subprocess once by hand; see the report)."""
    cfg = load_config('configs/mask2former_inceptionnext_t_ade20k.py')
    cfg.merge_from_dict(tiny_mask2former_options(ade20k_samples, tmp_path))
    runner = Runner.from_cfg(cfg)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in runner.model.modules())
    before = runner.model.backbone.stem[0].weight.detach().clone()
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses), losses
    assert not torch.equal(before, runner.model.backbone.stem[0].weight)
    assert 0 <= runner.message_hub.get_scalar('val/mIoU').current() <= 100
