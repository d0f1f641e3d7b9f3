# Mask R-CNN + InceptionNeXt-T: mmdet's Mask R-CNN-R50-FPN model with the backbone swapped.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', '../mmext_runtime.py']

checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        # The authors' new norm on each returned output (issues #10/#11 of sail-sg/inceptionnext). SyncBN because
        # detection trains 2 images per GPU; mmengine's Runner turns it into BN when training is not distributed.
        out_norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[96, 192, 384, 768]))
