# UperNet + MetaNeXt-Attn (paper Table 5: the isotropic MetaNeXt with self-attention as token mixer, 22M params,
# 4.6G MACs like DeiT-S, so 12 blocks of 6 heads; it failed to train on ImageNet there, 3.9 top-1). Attention over
# all stride-16 positions: memory grows with the square of the image area.
_base_ = './upernet_inceptionnext_iso_s_ade20k.py'
model = dict(backbone=dict(arch='attn_small'))
