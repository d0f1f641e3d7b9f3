# Mask2Former + InceptionNeXt-T on Cityscapes, 512x1024 crops, 90k iterations, batch 16 (8 GPUs x 2 images).
# mmseg's own Mask2Former Cityscapes config with the backbone swapped, trained by the same Swin-T recipe as
# mask2former_inceptionnext_t_ade20k.py (mmseg 1.2.2 single-scale mIoU: Swin-T 81.71, R-50 80.44). The backbone
# and optimizer lines are that config's: a dataset base cannot be swapped under an inherited config, so this one
# inherits mmseg's Cityscapes config instead (tests/configs/test_mask2former_configs.py keeps the two equal).
_base_ = 'mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py'

custom_imports = dict(imports=['mmext', 'mmdet.models'], allow_failed_imports=False)
runner_type = 'SafeRunner'
sync_bn = 'torch'

checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        out_norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[96, 192, 384, 768]))

backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.stem.1': backbone_norm_multi,
    'downsample.0': backbone_norm_multi,
    'backbone.out_norms': backbone_norm_multi,
    'query_embed': embed_multi,
    'query_feat': embed_multi,
    'level_embed': embed_multi,
}
custom_keys.update({
    f'blocks.{block_id}.{name}': backbone_norm_multi
    for block_id in range(27) for name in ('norm', 'gamma')  # 27: the most blocks of any stage (-S, -B)
})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys, norm_decay_mult=0.0))

randomness = dict(seed=0)
