# DINO (4 scales) + InceptionNeXt-T on COCO, 12 epochs: mmdet's own DINO-4scale R-50 config (49.0 box AP) with the
# backbone swapped; its recipe unchanged (AdamW lr 1e-4, wd 1e-4, backbone lr x0.1, grad-norm clip 0.1, 16 images
# per iteration). The paper reports no detection results.
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', './_base_/mmext_runtime.py']

checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        # strides 8, 16, 32 as R-50's (1, 2, 3); the neck adds the fourth scale
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,  # the paper's dense-prediction rate for T; our choice for detection
        out_norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[192, 384, 768]))
