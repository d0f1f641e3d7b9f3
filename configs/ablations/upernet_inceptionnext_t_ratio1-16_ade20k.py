# Paper Table 8, "branch ratio 1/8 -> 1/16": InceptionNeXt-T where branch ratio 1/16 instead of 1/8.
# Paper (ImageNet-1k top-1, classification): 81.8 vs 82.3 for the baseline. Recipe of the -T config.
_base_ = '../upernet_inceptionnext_t_ade20k.py'
model = dict(backbone=dict(
    arch=dict(_delete_=True, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3),
              token_mixer=dict(type='InceptionDWConv2d', branch_ratio=0.0625)),
    # No released ImageNet weights for this variant (set init_cfg=dict(type='Pretrained', checkpoint=...) to your own
    # ImageNet-trained one); trained from scratch as written.
    init_cfg=None))
