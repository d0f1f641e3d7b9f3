# Paper Table 5, "ConvNeXt-S (iso.)": the isotropic MetaNeXt with ConvNeXt's block (7x7 depthwise conv on all
# channels, LayerNorm), 18 blocks of 384 channels; paper ImageNet-1k top-1 79.7. Recipe of the iso-S config.
_base_ = '../upernet_inceptionnext_iso_s_ade20k.py'
model = dict(backbone=dict(
    arch=dict(_delete_=True, depth=18, dim=384, mlp_ratio=4, token_mixer=dict(type='DWConv2d', kernel_size=7)),
    block_norm_cfg=dict(type='LN2d', eps=1e-6)))
