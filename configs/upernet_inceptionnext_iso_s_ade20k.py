# UperNet + isotropic InceptionNeXt-S (paper Table 5: 22M params, 4.2G MACs, 79.7 ImageNet top-1; the paper has no
# segmentation result for it). A ViTDet-style simple pyramid turns its stride-16 map into strides 4/8/16/32, all with
# 384 channels. Recipe of the -T config.
_base_ = './upernet_inceptionnext_t_ade20k.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='InceptionNeXtIsotropic',
        arch='small',
        out_indices=(0, 1, 2, 3),
        pyramid_norm_cfg=dict(type='SyncBN', requires_grad=True),
        drop_path_rate=0.1,  # the paper is silent; DeiT-S's rate
        # No released weights (the isotropic networks are not in the official code): set
        # init_cfg=dict(type='Pretrained', checkpoint=...) to your own ImageNet-trained one.
        init_cfg=None),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
