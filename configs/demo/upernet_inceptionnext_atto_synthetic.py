# The `make demo` job: UperNet + InceptionNeXt-atto trained from scratch on CPU on the synthetic ADE20K-layout
# scenes of tools/synthetic_ade20k.py (tools/demo_train.py writes them and sets data_root). Changes from the
# paper's recipe are for a few CPU minutes: atto, plain BN, 64-channel heads, 96x96 crops, a short AdamW schedule.
_base_ = [
    '../_base_/models/upernet_inceptionnext.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/schedule_160k.py',
]
data_root = 'work_dirs/demo/data/ADEChallengeData2016'
crop_size = (96, 96)
scene_scale = (512, 192)  # the scenes are 256x192: keep them at that size (x0.5..2 when training)
max_iters = 200
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='atto', out_norm_cfg=norm_cfg, init_cfg=None),  # random init: no download
    decode_head=dict(in_channels=[40, 80, 160, 320], channels=64, num_classes=150, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=160, channels=32, num_classes=150, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=scene_scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scene_scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# mmext's checked ADE20K dataset: missing folders, bad files and out-of-range labels are errors naming the file.
dataset_type = 'CheckedADE20KDataset'
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])  # mmseg's IoUMetric also reports aAcc and mAcc
test_evaluator = val_evaluator

# From scratch, so a higher lr than the paper's fine-tuning 6e-5 (our choice).
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=20, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
