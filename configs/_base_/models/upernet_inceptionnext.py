# UperNet + InceptionNeXt-T: mmseg's UperNet-R50 model with the backbone swapped (paper Table 6 setting).
_base_ = ['mmseg::_base_/models/upernet_r50.py', '../mmext_runtime.py']

checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        # The authors add a new norm on each returned stage output (issues #10/#11 of sail-sg/inceptionnext).
        out_norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[96, 192, 384, 768], channels=512),
    auxiliary_head=dict(in_channels=384, in_index=2))
