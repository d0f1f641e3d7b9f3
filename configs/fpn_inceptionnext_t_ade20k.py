# Semantic FPN + InceptionNeXt-T on ADE20K, 512x512 crops, 40k iterations (paper Table 7: 43.1 mIoU).
# The paper follows PVT's / PoolFormer's recipe; where it is silent the choice below is PoolFormer's mmseg config.
_base_ = [
    './_base_/models/fpn_inceptionnext.py', './_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_40k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(drop_path_rate=0.1),
    decode_head=dict(num_classes=150))

# PoolFormer's recipe: weight decay on every parameter.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0002, weight_decay=0.0001))
# No layer-wise lr decay: the paper's recipes have none. mmseg's ConvNeXt recipe uses stage-wise decay 0.9; the
# same here: optim_wrapper = dict(constructor='InceptionNeXtLayerDecayOptimizerConstructor',
#                                 paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise'))

param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=40000, by_epoch=False),
]

# 32 images per iteration as 8 GPUs x 4 images. On N GPUs keep N x batch_size = 32 (e.g. 4 GPUs x 8); the lr
# above is for a total batch of 32.
train_dataloader = dict(batch_size=4)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
