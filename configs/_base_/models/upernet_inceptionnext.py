# UperNet + InceptionNeXt-T: mmseg's UperNet-R50 model with the backbone swapped (paper Table 6 setting).
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)
# mmext's training safety hooks (here so that mmseg's / mmdet's own tools/train.py get them too):
# weights_only-loadable checkpoints; crash-safe checkpoint writes (takes over default_hooks.checkpoint's settings);
# resume from the newest readable checkpoint, checked against the model first; stop on a NaN/Inf loss; check every
# train/val file before iteration 1.
custom_hooks = [
    dict(type='WeightsOnlyCheckpointHook'),
    dict(type='SafeCheckpointHook'),
    dict(type='ResumeCheckHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='PreflightDataCheckHook'),
]
# Distributed runs turn every BatchNorm of the backbone (stem, downsamples, blocks) into SyncBN: 2 images per GPU
# are too few for per-GPU statistics, and mmseg's R50 bases sync theirs too (our choice; the paper is silent).
sync_bn = 'torch'

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
