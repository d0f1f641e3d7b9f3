# UperNet + InceptionNeXt-T on ADE20K, 512x512 crops, 160k iterations (paper Table 6: 47.9 mIoU ms+flip).
# The paper follows Swin's mmseg recipe; where it is silent the choice below is Swin's unless a comment says so.
_base_ = [
    './_base_/models/upernet_inceptionnext.py', './_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', './_base_/schedules/schedule_160k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(drop_path_rate=0.2),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    # Swin's recipe exempts its norms from weight decay; here every 1-D parameter (norms, biases, layer scale).
    paramwise_cfg=dict(flat_decay_mult=0.))
# No layer-wise lr decay: the paper's recipes have none. mmseg's ConvNeXt recipe uses stage-wise decay 0.9; to try
# it: optim_wrapper = dict(constructor='LayerDecayOptimWrapperConstructor',
#                          paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise'))
# The mapping is not mmseg's: ours puts the stem at layer 0 and each downsample in its stage (lr scales at 0.9:
# stem 0.59, stages 0.66 / 0.73 / 0.81 / 0.90, the rest 1.0); mmseg's ConvNeXt one puts the stem and every
# downsample at layer 0 and leaves two ids unused (stem and downsamples 0.48, stages 0.53 / 0.59 / 0.66 / 0.73).

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]

# 16 images per iteration as 8 GPUs x 2 images. On N GPUs keep N x batch_size = 16 (e.g. 4 GPUs x 4); the lr
# above is for a total batch of 16.
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# One seed for every variant (the S/B configs inherit it); mmseg's re-runs spread about +-0.5 mIoU across seeds.
randomness = dict(seed=0)
