# Paper Table 8, "band kernel 11 -> 7": InceptionNeXt-T where band kernel 7 instead of 11.
# Paper (ImageNet-1k top-1, classification): 82.1 vs 82.3 for the baseline. Recipe of the -T config.
_base_ = '../upernet_inceptionnext_t_ade20k.py'
model = dict(backbone=dict(
    arch=dict(_delete_=True, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3),
              token_mixer=dict(type='InceptionDWConv2d', band_kernel_size=7)),
    # No released ImageNet weights for this variant (set init_cfg=dict(type='Pretrained', checkpoint=...) to your own
    # ImageNet-trained one); trained from scratch as written.
    init_cfg=None))
