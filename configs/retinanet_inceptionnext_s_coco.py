# RetinaNet + InceptionNeXt-S on COCO; recipe of the -T config.
_base_ = './retinanet_inceptionnext_t_coco.py'
checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_small.pth'
model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)))
