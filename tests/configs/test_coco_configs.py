"""RetinaNet and Mask R-CNN with InceptionNeXt: the shipped configs, trained and evaluated by mmdet's own Runner,
datasets and CocoMetric on CPU with mmcv-lite (NMS and RoIAlign through mmext's torchvision stand-in)."""
import math
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from synthetic_coco import SYNTHETIC_COCO_CLASSES, generate_synthetic_coco

from mmext.engine.runner import build_runner

REPO_ROOT = Path(__file__).resolve().parents[2]
# Backbone parameters without the classification head (timm's inception_next_* minus head.*), by arch.
BACKBONE_PARAMS = {'tiny': 23_974_296, 'small': 45_292_632, 'base': 80_444_192}


def select_models(model: dict) -> bool:
    """The COCO configs of configs/metafile.yaml (see conftest.py); their Parameters pin the whole detector."""
    return model['Metadata']['Training Data'] == 'COCO'
TINY_ARCH = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2))
IMAGE_SIZE = (160, 128)  # (width, height)


def test_the_shipped_detectors_are_listed(zoo_models):
    names = {m['Name'] for m in zoo_models if select_models(m)}
    assert {f'{method}_inceptionnext_{size}_coco' for method in ('retinanet', 'mask-rcnn') for size in 'tsb'} <= names


def test_full_size_detector_params(zoo_model, zoo, load_config):
    register_all_modules()
    cfg = load_config(zoo_model['Config'])
    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.init_cfg.checkpoint.startswith(
        'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_')
    assert cfg.custom_imports.imports == ['mmext'] and cfg.default_scope == 'mmdet'
    backbone_cfg.init_cfg = None  # build only: no download
    model = MODELS.build(cfg.model)
    backbone = model.backbone
    out_norm_params = 2 * sum(backbone.channels)  # one BN (weight, bias) per returned stage
    arch = zoo.backbone_arch(zoo_model)
    assert sum(p.numel() for p in backbone.parameters()) == BACKBONE_PARAMS[arch] + out_norm_params
    assert list(cfg.model.neck.in_channels) == list(backbone.channels)
    assert sum(p.numel() for p in model.parameters()) == zoo_model['Metadata']['Parameters']


def tiny_detector_cfg(config: Path, data_root: Path, work_dir: Path) -> Config:
    """The shipped config with a tiny backbone, thin heads, small images and a few iterations (cfg-options style)."""
    cfg = Config.fromfile(config)
    is_mask_rcnn = cfg.model.type == 'MaskRCNN'
    num_classes = len(SYNTHETIC_COCO_CLASSES)
    channels = [TINY_ARCH['dims'][i] for i in cfg.model.backbone.out_indices]
    options = {
        'work_dir': str(work_dir),
        'model.backbone.arch': dict(_delete_=True, **TINY_ARCH),
        'model.backbone.init_cfg': None,
        'model.neck.in_channels': channels,
        'model.neck.out_channels': 32,
        'optim_wrapper.optimizer.lr': 1e-3,
        'param_scheduler': [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)],
        'train_cfg.max_epochs': 3,
        'train_cfg.val_begin': 100,  # no validation while training: once, below, through runner.val()
        'default_hooks.logger.interval': 1,
    }
    if is_mask_rcnn:
        options.update({
            'model.rpn_head.in_channels': 32, 'model.rpn_head.feat_channels': 32,
            'model.roi_head.bbox_roi_extractor.out_channels': 32,
            'model.roi_head.bbox_head.in_channels': 32, 'model.roi_head.bbox_head.fc_out_channels': 64,
            'model.roi_head.bbox_head.num_classes': num_classes,
            'model.roi_head.mask_roi_extractor.out_channels': 32,
            'model.roi_head.mask_head.in_channels': 32, 'model.roi_head.mask_head.conv_out_channels': 32,
            'model.roi_head.mask_head.num_convs': 2, 'model.roi_head.mask_head.num_classes': num_classes,
            # fewer proposals and sampled RoIs: RoIAlign's CPU cost grows with both
            'model.train_cfg.rpn_proposal.nms_pre': 300, 'model.train_cfg.rpn_proposal.max_per_img': 100,
            'model.train_cfg.rcnn.sampler.num': 64,
            'model.test_cfg.rpn.nms_pre': 300, 'model.test_cfg.rpn.max_per_img': 100,
            'model.test_cfg.rcnn.score_thr': 0.,  # report every box: an untrained model scores low
        })
    else:
        options.update({
            'model.bbox_head.in_channels': 32, 'model.bbox_head.feat_channels': 32,
            'model.bbox_head.stacked_convs': 2, 'model.bbox_head.num_classes': num_classes,
            'model.test_cfg.score_thr': 0.,
        })
    for split, loader in (('train', 'train_dataloader'), ('val', 'val_dataloader')):
        options.update({
            f'{loader}.batch_size': 2, f'{loader}.num_workers': 0, f'{loader}.persistent_workers': False,
            f'{loader}.dataset.data_root': str(data_root),
            f'{loader}.dataset.ann_file': f'annotations/instances_{split}.json',
            f'{loader}.dataset.data_prefix.img': f'{split}/',
            f'{loader}.dataset.metainfo': dict(classes=SYNTHETIC_COCO_CLASSES),
        })
        pipeline = cfg[loader].dataset.pipeline
        resize = [i for i, t in enumerate(pipeline) if t.type == 'Resize']
        assert len(resize) == 1, pipeline
        options[f'{loader}.dataset.pipeline.{resize[0]}.scale'] = IMAGE_SIZE
    options['val_evaluator.ann_file'] = str(data_root / 'annotations' / 'instances_val.json')
    cfg.merge_from_dict(options)
    return cfg


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory) -> Path:
    return generate_synthetic_coco(tmp_path_factory.mktemp('synthetic_coco'), num_train=8, num_val=4,
                                   size=IMAGE_SIZE, seed=0)


@pytest.mark.parametrize('method,metrics', [('retinanet', ['bbox']), ('mask-rcnn', ['bbox', 'segm'])])
def test_train_and_evaluate_with_runner(method, metrics, coco_root, tmp_path):
    cfg = tiny_detector_cfg(REPO_ROOT / 'configs' / f'{method}_inceptionnext_t_coco.py', coco_root, tmp_path)
    metric = cfg.val_evaluator.metric
    assert cfg.val_evaluator.type == 'CocoMetric' and ([metric] if isinstance(metric, str) else metric) == metrics
    runner = build_runner(cfg)  # the configs' SafeRunner, as tools/train.py and mmdet's own train.py build it
    # Not distributed: the Runner turns the configs' SyncBN output norms into plain BN.
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in runner.model.modules())
    before = [p.detach().clone() for p in runner.model.backbone.parameters()]
    runner.train()

    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 12  # 3 epochs x 4 batches of 2 images
    assert all(math.isfinite(loss) for loss in losses), losses
    changed = [not torch.equal(b, p) for b, p in zip(before, runner.model.backbone.parameters())]
    assert sum(changed) > len(changed) // 2  # the backbone trains through the detector's losses
    lr_scales = [g['lr_scale'] for g in runner.optim_wrapper.optimizer.param_groups]
    assert min(lr_scales) < 1 == max(lr_scales)  # the config's stage-wise decay: heads at the base lr

    results = runner.val()
    for metric in metrics:
        value = results[f'coco/{metric}_mAP']
        assert math.isfinite(value) and 0 <= value <= 1, results
    # the configs' WeightsOnlyCheckpointHook: the checkpoint loads under torch's default weights_only=True
    checkpoint = torch.load(tmp_path / 'epoch_3.pth', map_location='cpu', weights_only=True)
    assert checkpoint['meta']['epoch'] == 3 and 'backbone.stem.0.weight' in checkpoint['state_dict']


@pytest.mark.parametrize('stem', ['retinanet_inceptionnext_t_coco', 'mask-rcnn_inceptionnext_t_coco'])
def test_complexity_tool_counts_detectors(stem, zoo, load_config):
    """tools/analysis/get_flops.py handles mmdet configs, the two-stage tensor path included."""
    from mmext.analysis.complexity import segmentor_complexity

    config = load_config(f'configs/{stem}.py')
    result = segmentor_complexity(config, shape=(192, 256), cfg_options={'model.backbone.init_cfg': None})
    assert result['params'] == zoo.find_model(stem)['Metadata']['Parameters']
    # at least the backbone (~3.9 GMACs at 256x192); Mask R-CNN adds its RoI heads on 1000 proposals (~70 G)
    assert 3e9 < result['macs'] < 1e11
