# UperNet + InceptionNeXt-B on ADE20K (paper Table 6: 50.6 mIoU ms+flip); recipe of the -T config.
_base_ = './upernet_inceptionnext_t_ade20k.py'
checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'
model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.4, init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
