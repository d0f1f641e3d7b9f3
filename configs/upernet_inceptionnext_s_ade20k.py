# UperNet + InceptionNeXt-S on ADE20K (paper Table 6: 50.0 mIoU ms+flip); recipe of the -T config.
_base_ = './upernet_inceptionnext_t_ade20k.py'
checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_small.pth'
model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
