# Mask2Former + InceptionNeXt-B on ADE20K; recipe of the -T config. mmseg's Swin-B Mask2Former uses 640x640
# crops and ImageNet-22k weights; the released InceptionNeXt-B is ImageNet-1k, so this stays at 512x512.
_base_ = './mask2former_inceptionnext_t_ade20k.py'
checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_base.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4, init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]))
