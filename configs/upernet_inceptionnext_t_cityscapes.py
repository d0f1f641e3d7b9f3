# UperNet + InceptionNeXt-T on Cityscapes: mmseg's UperNet Cityscapes setting (upernet_r50_4xb2-80k_cityscapes-
# 512x1024.py: 512x1024 crops, 80k iterations, 4 GPUs x 2 images) with the paper's UperNet optimizer for this
# backbone (AdamW lr 6e-5, wd 0.01, 1500-iteration warmup, poly 1.0; mmseg's R-50 uses SGD lr 0.01): our choice.
_base_ = [
    './_base_/models/upernet_inceptionnext.py', 'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py', './_base_/schedules/schedule_80k.py'
]
crop_size = (512, 1024)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(drop_path_rate=0.2),
    decode_head=dict(num_classes=19),
    auxiliary_head=dict(num_classes=19))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(flat_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
randomness = dict(seed=0)
