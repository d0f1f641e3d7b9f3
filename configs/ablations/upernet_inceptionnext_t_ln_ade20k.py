# Paper Table 8, "BN -> LN (block norm)": InceptionNeXt-T where each block's BatchNorm is a channels-first LayerNorm.
# Paper (ImageNet-1k top-1, classification): 82.4 vs 82.3 for the baseline. Recipe of the -T config.
_base_ = '../upernet_inceptionnext_t_ade20k.py'
model = dict(backbone=dict(
    arch=dict(_delete_=True, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3)),
    block_norm_cfg=dict(type='LN2d', eps=1e-6),
    # No released ImageNet weights for this variant (set init_cfg=dict(type='Pretrained', checkpoint=...) to your own
    # ImageNet-trained one); trained from scratch as written.
    init_cfg=None))
