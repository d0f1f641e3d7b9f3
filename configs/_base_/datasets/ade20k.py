# mmseg's ADE20K dataset settings, read through mmext's CheckedADE20KDataset (clear errors for missing or bad
# files) and tested multi-scale + flip at the scales of mmseg 0.x's ``img_scale=(2048, 512)`` x ratios
# 0.5..1.75, the protocol of the paper's ms+flip numbers (mmseg 1.x's base rescales the raw image instead).
_base_ = 'mmseg::_base_/datasets/ade20k.py'
dataset_type = 'CheckedADE20KDataset'
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader

tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale=scale, keep_ratio=True)
                for scale in [(1024, 256), (1536, 384), (2048, 512), (2560, 640), (3072, 768), (3584, 896)]
            ],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
