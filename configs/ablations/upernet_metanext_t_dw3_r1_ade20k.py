# Paper Table 1, "DWConv 3x3, conv ratio 1": ConvNeXt-T's block as a MetaNeXt (LayerNorm blocks, MLP ratio 4,
# a 3x3 depthwise conv on 1.0 of the channels, the rest identity; BN stem and downsamples).
# Paper (ImageNet-1k top-1, classification): 81.5. Recipe of the InceptionNeXt-T config.
_base_ = '../upernet_inceptionnext_t_ade20k.py'
model = dict(backbone=dict(
    arch=dict(_delete_=True, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 4),
              token_mixer=dict(type='DWConv2d', kernel_size=3, ratio=1.0)),
    block_norm_cfg=dict(type='LN2d', eps=1e-6),
    # No released ImageNet weights for this variant (set init_cfg=dict(type='Pretrained', checkpoint=...) to your own
    # ImageNet-trained one); trained from scratch as written.
    init_cfg=None))
