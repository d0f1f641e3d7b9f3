# Mask2Former + InceptionNeXt-S on ADE20K; recipe of the -T config (mmseg's Swin-S: 51.24 mIoU single-scale).
_base_ = './mask2former_inceptionnext_t_ade20k.py'
checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_small.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
