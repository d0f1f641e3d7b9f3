# What every mmext model base adds to mmseg's / mmdet's model: mmext's components, its training safety hooks and
# SyncBN. The model bases list it, so that mmseg's and mmdet's own tools/train.py get all of it too.
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)
# The training safety hooks: weights_only-loadable checkpoints; crash-safe checkpoint writes (takes over
# default_hooks.checkpoint's settings); resume from the newest readable checkpoint, checked against the model first;
# stop on a NaN/Inf loss; check every train/val file before iteration 1.
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
