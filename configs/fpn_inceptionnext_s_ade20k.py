# Semantic FPN + InceptionNeXt-S on ADE20K (paper Table 7: 45.6 mIoU); recipe of the -T config.
_base_ = './fpn_inceptionnext_t_ade20k.py'
checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_small.pth'
model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
