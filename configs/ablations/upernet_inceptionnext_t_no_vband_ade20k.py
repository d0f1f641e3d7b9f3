# Paper Table 8, "remove vertical band (k_b x 1)": InceptionNeXt-T where its token mixer lacks the 11 x 1 (vertical
# band) branch; those channels join the identity part.
# Paper (ImageNet-1k top-1, classification): 81.9 vs 82.3 for the baseline. Recipe of the -T config.
_base_ = '../upernet_inceptionnext_t_ade20k.py'
model = dict(backbone=dict(
    arch=dict(_delete_=True, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3),
              token_mixer=dict(type='InceptionDWConv2d', branches=('hw', 'w'))),
    # No released ImageNet weights for this variant (set init_cfg=dict(type='Pretrained', checkpoint=...) to your own
    # ImageNet-trained one); trained from scratch as written.
    init_cfg=None))
