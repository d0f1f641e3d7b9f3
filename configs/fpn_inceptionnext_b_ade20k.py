# Semantic FPN + InceptionNeXt-B on ADE20K (paper Table 7: 46.4 mIoU); recipe of the -T config.
_base_ = './fpn_inceptionnext_t_ade20k.py'
checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'
model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
