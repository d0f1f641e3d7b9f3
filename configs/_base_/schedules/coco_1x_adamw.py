# COCO 1x (12 epochs) with AdamW for InceptionNeXt detectors: mmdet's schedule_1x with its optimizer replaced.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

# AdamW lr 1e-4, wd 0.05 as mmdet's ConvNeXt and Swin configs. Stage-wise lr decay 0.95 as mmdet's ConvNeXt
# (layer-wise 0.95 over 6 layers); InceptionNeXt reports 6 layers too (stem, 4 stages, rest). No weight decay on
# 1-D parameters (norms, biases, layer scale), as ConvNeXt's constructor. fp32; add `--amp` to train.py for AMP.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(decay_rate=0.95, decay_type='stage_wise'),
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))
# Warm-up of mmdet's AdamW configs (1000 iterations), then schedule_1x's steps at epochs 8 and 11.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
# 16 images per iteration as 8 GPUs x 2 images (mmdet's COCO dataset bases: batch_size=2); the lr above is for 16.
