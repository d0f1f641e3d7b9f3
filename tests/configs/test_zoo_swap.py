"""InceptionNeXt swapped into one config of every model family in mmseg 1.2.2's zoo (``.mim/configs``), and into
mmdet 3.3's Mask2Former (panoptic) and DINO, each trained one step on CPU.

:data:`ZOO_SWAPS` is the user guide's table: per family the zoo config, and the exact ``--cfg-options`` lines that
swap the backbone in (channels written for InceptionNeXt-T; ``C0..C3`` are the stage widths), or why the family
cannot take a 4-stage CNN. The test applies those lines with a tiny backbone (``TINY_ARCH``, its widths in place of
``C0..C3``) plus test-only shrinking (:data:`TINY_HEADS`: thinner heads, no ImageNet weights), 64x64 inputs built in
memory, and takes one ``train_step`` on the real model.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import mmdet
import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

from mmext.registry import MODELS

MMSEG_CONFIGS = Path(mmseg.__file__).parent / '.mim' / 'configs'
MMDET_CONFIGS = Path(mmdet.__file__).parent / '.mim' / 'configs'
TINY_ARCH = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2))
T_DIMS = (96, 192, 384, 768)  # InceptionNeXt-T (and -S); -B: 128, 256, 512, 1024
RELEASES = 'https://github.com/sail-sg/inceptionnext/releases/download/model/'


def backbone(output_stride: int = 32, out_indices: tuple[int, ...] = (0, 1, 2, 3)) -> dict:
    """``model.backbone`` for InceptionNeXt-T: the authors' per-output norm, the released ImageNet weights."""
    cfg = dict(_delete_=True, type='InceptionNeXt', arch='tiny', out_indices=out_indices,
               out_norm_cfg=dict(type='SyncBN', requires_grad=True),
               init_cfg=dict(type='Pretrained', checkpoint=f'{RELEASES}inceptionnext_tiny.pth'))
    if output_stride != 32:
        cfg['output_stride'] = output_stride  # the head's native stride: stages 3 (and 2) dilate instead
    return cfg


C0, C1, C2, C3 = 'C0', 'C1', 'C2', 'C3'
# A ResNet-V1c "-d8" config (stride 8, head on stage 3, FCN auxiliary on stage 2); its base names ResNet weights
# in model.pretrained, which InceptionNeXt refuses: the swap clears it (the backbone's init_cfg loads its own).
D8 = {'model.pretrained': None, 'model.backbone': backbone(8), 'model.decode_head.in_channels': C3,
      'model.auxiliary_head.in_channels': C2}
FOUR = [C0, C1, C2, C3]

# family -> (config under .mim/configs, swap lines) or (config or None, reason it is not swapped).
ZOO_SWAPS: dict[str, tuple[str | None, dict | str]] = {
    'ann': ('ann/ann_r50-d8_4xb4-160k_ade20k-512x512.py', {**D8, 'model.decode_head.in_channels': [C2, C3]}),
    'apcnet': ('apcnet/apcnet_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'ccnet': ('ccnet/ccnet_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'danet': ('danet/danet_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'deeplabv3': ('deeplabv3/deeplabv3_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'deeplabv3plus': ('deeplabv3plus/deeplabv3plus_r50-d8_4xb4-160k_ade20k-512x512.py',
                      {**D8, 'model.decode_head.c1_in_channels': C0}),
    'dmnet': ('dmnet/dmnet_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'dnlnet': ('dnlnet/dnl_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'emanet': ('emanet/emanet_r50-d8_4xb2-80k_cityscapes-512x1024.py', D8),
    'encnet': ('encnet/encnet_r50-d8_4xb4-160k_ade20k-512x512.py',
               {**D8, 'model.decode_head.in_channels': [C1, C2, C3]}),
    'fastfcn': ('fastfcn/fastfcn_r50-d32_jpu_aspp_4xb4-160k_ade20k-512x512.py',
                {'model.pretrained': None, 'model.backbone': backbone(out_indices=(1, 2, 3)),
                 'model.neck.in_channels': (C1, C2, C3), 'model.auxiliary_head.in_channels': C2}),
    'fcn': ('fcn/fcn_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'gcnet': ('gcnet/gcnet_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'hrnet': ('hrnet/fcn_hr18_4xb4-160k_ade20k-512x512.py',
              {'model.pretrained': None, 'model.backbone': backbone(), 'model.decode_head.in_channels': FOUR}),
    'isanet': ('isanet/isanet_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'knet': ('knet/knet-s3_r50-d8_deeplabv3_8xb2-adamw-80k_ade20k-512x512.py',
             {**{k: v for k, v in D8.items() if k != 'model.decode_head.in_channels'},
              'model.decode_head.kernel_generate_head.in_channels': C3}),
    'mask2former': ('mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
                    {'model.backbone': backbone(), 'model.decode_head.in_channels': FOUR}),
    'maskformer': ('maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',
                   {'model.backbone': backbone(), 'model.decode_head.in_channels': FOUR}),
    'mobilenet_v3': ('mobilenet_v3/mobilenet-v3-d8-s_lraspp_4xb4-320k_cityscapes-512x1024.py',
                     {'model.pretrained': None, 'model.backbone': backbone(8),
                      'model.decode_head.in_channels': [C0, C1, C3], 'model.decode_head.in_index': [0, 1, 3]}),
    'nonlocal_net': ('nonlocal_net/nonlocal_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'ocrnet': ('ocrnet/ocrnet_hr18_4xb4-160k_ade20k-512x512.py',
               {'model.pretrained': None, 'model.backbone': backbone(), 'model.decode_head.0.in_channels': FOUR,
                'model.decode_head.1.in_channels': FOUR}),
    'point_rend': ('point_rend/pointrend_r50_4xb4-160k_ade20k-512x512.py',
                   {'model.pretrained': None, 'model.backbone': backbone(), 'model.neck.in_channels': FOUR}),
    'psanet': ('psanet/psanet_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'pspnet': ('pspnet/pspnet_r50-d8_4xb4-160k_ade20k-512x512.py', D8),
    'segformer': ('segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
                  {'model.backbone': backbone(), 'model.decode_head.in_channels': FOUR}),
    'segmenter': ('segmenter/segmenter_vit-b_mask_8xb1-160k_ade20k-512x512.py',
                  {'model.pretrained': None, 'model.backbone': backbone(), 'model.decode_head.in_channels': C3,
                   'model.decode_head.in_index': 3}),
    'segnext': ('segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py',
                {'model.backbone': backbone(), 'model.decode_head.in_channels': [C1, C2, C3]}),
    'sem_fpn': ('sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',
                {'model.pretrained': None, 'model.backbone': backbone(), 'model.neck.in_channels': FOUR}),
    'setr': ('setr/setr_vit-l_pup_8xb2-160k_ade20k-512x512.py',
             {'model.pretrained': None, 'model.backbone': backbone(), 'model.decode_head.in_channels': C3,
              'model.decode_head.in_index': 3, 'model.auxiliary_head.0.in_channels': C0,
              'model.auxiliary_head.1.in_channels': C1, 'model.auxiliary_head.2.in_channels': C2}),
    'upernet': ('upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
                {'model.pretrained': None, 'model.backbone': backbone(), 'model.decode_head.in_channels': FOUR,
                 'model.auxiliary_head.in_channels': C2}),
    # Backbone families: the directory shows a backbone; its heads are the families above.
    'beit': (None, 'a backbone (BEiT); its UPerHead is the upernet family'),
    'convnext': (None, 'a backbone (ConvNeXt, from mmpretrain); its UPerHead is the upernet family'),
    'mae': (None, 'a backbone (MAE ViT); its UPerHead is the upernet family'),
    'mobilenet_v2': (None, 'a backbone (MobileNetV2); its FCN/PSP/ASPP heads are the fcn/pspnet/deeplabv3 families'),
    'poolformer': (None, 'a backbone (PoolFormer, from mmpretrain); its FPN head is the sem_fpn family'),
    'resnest': (None, 'a backbone (ResNeSt); its FCN/PSP/ASPP heads are the fcn/pspnet/deeplabv3 families'),
    'swin': (None, 'a backbone (Swin); its UPerHead is the upernet family'),
    'twins': (None, 'a backbone (Twins); its UPerHead/FPN heads are the upernet/sem_fpn families'),
    'vit': (None, "a backbone (ViT + MultiLevelNeck, which turns one token map into four); its UPerHead is the "
                  "upernet family"),
    'dsdl': (None, 'a dataset description format (DSDL), not a model'),
    # Networks that are their own backbone: the decode head reads branches of that network, not a generic pyramid.
    'bisenetv1': (None, "the network is the backbone (spatial + context paths; the context path's ResNet sits in "
                        "backbone_cfg with fixed context_channels): swapping it is a backbone change, not a swap"),
    'bisenetv2': (None, 'the network is the backbone (detail + semantic branches); its heads read those branches'),
    'cgnet': (None, 'the network is the backbone (CGNet); its FCN head reads its 3-stage output'),
    'ddrnet': (None, "the network is the backbone (dual-resolution branches); DDRHead reads its two branches"),
    'erfnet': (None, 'the network is the backbone (an encoder-decoder); its FCN head reads the decoded map'),
    'fastscnn': (None, 'the network is the backbone (Fast-SCNN, a two-branch real-time net)'),
    'icnet': (None, "the network is the backbone (ICNet's image cascade calls ResNet's stem and layer1-4 by name)"),
    'pidnet': (None, 'the network is the backbone (three branches); PIDHead reads P, I and D'),
    'stdc': (None, "the network is the backbone (STDC's context path); STDCHead reads its detail branch"),
    'unet': (None, 'the network is the backbone (a 5-level UNet decoder); its heads read decoder levels'),
    # Heads that need a ViT's tokens or another model's internals.
    'dpt': (None, "needs ViT tokens: DPTHead's readout takes each level as (patch tokens, class token)"),
    'san': (None, 'needs CLIP ViT: the side adapter reads the CLIP image encoder layer by layer (open vocabulary)'),
    'vpd': (None, "needs Stable Diffusion's UNet features (VPD, depth estimation on NYU)"),
}

# Test-only shrinking (not part of a user's swap): thinner heads, fewer queries and layers, 64x64 inputs.
TINY_HEADS: dict[str, dict] = {
    'emanet': {'model.decode_head.ema_channels': 16},
    'fastfcn': {'model.neck.mid_channels': 16, 'model.decode_head.in_channels': 64},
    'mask2former': {'model.decode_head.num_queries': 10, 'model.decode_head.transformer_decoder.num_layers': 3,
                    'model.decode_head.pixel_decoder.encoder.num_layers': 1,
                    'model.decode_head.train_cfg.num_points': 256},
    'maskformer': {'model.decode_head.num_queries': 10, 'model.decode_head.transformer_decoder.num_layers': 1},
    'ocrnet': {'model.decode_head.0.channels': 16, 'model.decode_head.1.channels': 16,
               'model.decode_head.1.ocr_channels': 16},
    'point_rend': {'model.neck.out_channels': 16, 'model.decode_head.0.in_channels': [16] * 4,
                   'model.decode_head.0.channels': 16, 'model.decode_head.1.in_channels': [16],
                   'model.decode_head.1.channels': 16, 'model.train_cfg.num_points': 64},
    'psanet': {'model.decode_head.mask_size': (7, 7)},  # 64 px at stride 8, halved by shrink_factor: 4x4 -> 7x7
    'segmenter': {'model.decode_head.channels': 128, 'model.decode_head.embed_dims': 128,
                  'model.decode_head.num_heads': 2},
    'segnext': {'model.decode_head.ham_channels': 32, 'model.decode_head.channels': 32},  # GroupNorm(32)
    'sem_fpn': {'model.neck.out_channels': 16, 'model.decode_head.in_channels': [16] * 4},
    'setr': {'model.decode_head.num_convs': 1, 'model.decode_head.channels': 16,
             **{f'model.auxiliary_head.{i}.channels': 16 for i in range(3)}},
    'ann': {'model.decode_head.channels': 16, 'model.decode_head.project_channels': 16},
    'knet': {'model.decode_head.kernel_generate_head.channels': 64,
             'model.decode_head.kernel_update_head': [
                 dict(type='KernelUpdateHead', num_classes=150, num_ffn_fcs=2, num_heads=2, num_mask_fcs=1,
                      feedforward_channels=64, in_channels=64, out_channels=64, dropout=0.0, conv_kernel_size=1,
                      ffn_act_cfg=dict(type='ReLU', inplace=True), with_ffn=True, feat_transform_cfg=dict(
                          conv_cfg=dict(type='Conv2d'), act_cfg=None),
                      kernel_updator_cfg=dict(type='KernelUpdator', in_channels=64, feat_channels=64,
                                              out_channels=64, act_cfg=dict(type='ReLU', inplace=True),
                                              norm_cfg=dict(type='LN')))] * 3},
    'upernet': {'model.decode_head.channels': 16},
}
# LRASPPHead pools with a fixed 49-pixel window: its map at stride 8 must be at least that large.
TINY_SIZE = {'mobilenet_v3': 392}
RUNNABLE = sorted(f for f, (_, swap) in ZOO_SWAPS.items() if isinstance(swap, dict))


def resolve(value, dims: tuple[int, ...]):
    """``value`` with every ``'C<i>'`` replaced by stage ``i``'s width."""
    if isinstance(value, str) and value in (C0, C1, C2, C3):
        return dims[int(value[1])]
    if isinstance(value, (list, tuple)):
        return type(value)(resolve(v, dims) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v, dims) for k, v in value.items()}
    return value


def swap_lines(family: str, dims: tuple[int, ...] = T_DIMS) -> list[str]:
    """The ``--cfg-options``-style lines of a family's swap, for the docs (InceptionNeXt-T widths by default)."""
    _, swap = ZOO_SWAPS[family]
    return [f'{key}={resolve(value, dims)!r}' for key, value in swap.items()]


def zoo_families() -> list[str]:
    return sorted(p.name for p in MMSEG_CONFIGS.iterdir() if p.is_dir() and not p.name.startswith(('_', '.')))


def test_every_mmseg_family_is_swapped_or_explained():
    families = zoo_families()
    assert len(families) > 40
    assert sorted(ZOO_SWAPS) == families  # a new mmseg version's family must be added here
    for family, (config, swap) in ZOO_SWAPS.items():
        if isinstance(swap, dict):
            assert (MMSEG_CONFIGS / config).is_file(), config
        else:
            assert config is None and len(swap) > 20, family
    assert swap_lines('pspnet')[:3] == ["model.pretrained=None", f"model.backbone={backbone(8)!r}",
                                        'model.decode_head.in_channels=768']


def _tiny_options(family: str) -> dict:
    _, swap = ZOO_SWAPS[family]
    options = resolve(copy.deepcopy(swap), TINY_ARCH['dims'])
    options['model.backbone'] = dict(options['model.backbone'], arch=dict(TINY_ARCH), init_cfg=None)
    size = TINY_SIZE.get(family, 64)
    options.update({'model.data_preprocessor.size': (size, size), **TINY_HEADS.get(family, {})})
    return options


def _seg_batch(num_classes: int, size: int = 64) -> dict:
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        labels = torch.randint(0, num_classes, (1, size, size), generator=g)
        labels[:, :8] = 255  # some ignored pixels
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g) for _ in range(2)],
                data_samples=samples)


def _build(cfg: Config) -> torch.nn.Module:
    """The config's model, initialised as the Runner does (``init_weights()``: DINO's ``level_embed`` is allocated
    uninitialised until then), from seed 0 whatever the tests before left in the global RNG."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return revert_sync_batchnorm(model).train()


def _train_step(model: torch.nn.Module, data: dict) -> dict:
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    stem = model.backbone.stem[0].weight.detach().clone()
    log_vars = model.train_step(data, optim_wrapper)
    assert math.isfinite(log_vars['loss'].item()), log_vars
    assert not torch.equal(stem, model.backbone.stem[0].weight)  # gradients reached the backbone
    return log_vars


@pytest.mark.parametrize('family', RUNNABLE)
def test_mmseg_family_trains_one_step(family):
    config, _ = ZOO_SWAPS[family]
    cfg = Config.fromfile(MMSEG_CONFIGS / config)
    cfg.merge_from_dict(_tiny_options(family))
    model = _build(cfg)
    assert type(model.backbone).__name__ == 'InceptionNeXt'
    heads = model.decode_head if isinstance(model.decode_head, torch.nn.ModuleList) else [model.decode_head]
    _train_step(model, _seg_batch(heads[-1].num_classes, TINY_SIZE.get(family, 64)))


def test_swap_without_clearing_pretrained_names_the_fix():
    """A ResNet base's model.pretrained reaching InceptionNeXt stops the build with the key to change."""
    config, _ = ZOO_SWAPS['pspnet']
    cfg = Config.fromfile(MMSEG_CONFIGS / config)
    options = _tiny_options('pspnet')
    del options['model.pretrained']
    cfg.merge_from_dict(options)
    with pytest.raises(Exception, match='model.pretrained'):
        _build(cfg)


# mmdet: (config under mmdet's .mim/configs, swap lines)
MMDET_SWAPS = {
    'mask2former_panoptic': ('mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',
                             {'model.backbone': backbone(), 'model.panoptic_head.in_channels': FOUR}),
    'dino': ('dino/dino-4scale_r50_8xb2-12e_coco.py',
             {'model.backbone': backbone(out_indices=(1, 2, 3)), 'model.neck.in_channels': [C1, C2, C3]}),
}
MMDET_TINY = {
    'mask2former_panoptic': {'model.panoptic_head.num_queries': 10,
                             'model.panoptic_head.transformer_decoder.num_layers': 3,
                             'model.panoptic_head.pixel_decoder.encoder.num_layers': 1,
                             'model.train_cfg.num_points': 256, 'model.data_preprocessor.batch_augments': None},
    'dino': {'model.num_queries': 20, 'model.encoder.num_layers': 1, 'model.decoder.num_layers': 2,
             'model.dn_cfg.group_cfg.num_dn_queries': 10},
}


def _det_batch(panoptic: bool, size: int = 64) -> dict:
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    g = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(2):
        meta = dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size), scale_factor=(1., 1.),
                    batch_input_shape=(size, size))
        sample = DetDataSample(metainfo=meta)
        boxes = torch.tensor([[4., 6., 30., 40.], [20., 10., 60., 58.]])
        masks = torch.zeros(2, size, size, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([1, 7]),
                                           masks=BitmapMasks(masks.numpy(), size, size))
        if panoptic:
            sem = torch.full((1, size, size), 255, dtype=torch.long)
            sem[0, 40:, :] = 90  # a stuff class below the things
            sample.gt_sem_seg = PixelData(sem_seg=sem)
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g) for _ in range(2)],
                data_samples=samples)


@pytest.mark.parametrize('name', sorted(MMDET_SWAPS))
def test_mmdet_model_trains_one_step(name):
    config, swap = MMDET_SWAPS[name]
    cfg = Config.fromfile(MMDET_CONFIGS / config)
    options = resolve(copy.deepcopy(swap), TINY_ARCH['dims'])
    options['model.backbone'] = dict(options['model.backbone'], arch=dict(TINY_ARCH), init_cfg=None)
    cfg.merge_from_dict({**options, **MMDET_TINY[name]})
    model = _build(cfg)
    assert type(model.backbone).__name__ == 'InceptionNeXt'
    _train_step(model, _det_batch(panoptic=name.startswith('mask2former')))
