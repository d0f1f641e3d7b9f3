# What every mmext model base adds to mmseg's / mmdet's model: mmext's components, its Runner and SyncBN. The model
# bases list it, so that mmseg's and mmdet's own tools/train.py get all of it too.
custom_imports = dict(imports=['mmext'], allow_failed_imports=False)
# mmext's Runner adds the training safety hooks (declared once, in mmext.engine.hooks.TRAINING_HOOKS), writes every
# checkpoint atomically and only from a finite state, holds a lock on the work dir and saves on SIGTERM/SIGUSR1.
runner_type = 'SafeRunner'
# Distributed runs turn every BatchNorm of the backbone (stem, downsamples, blocks) into SyncBN: 2 images per GPU
# are too few for per-GPU statistics, and mmseg's R50 bases sync theirs too (our choice; the paper is silent).
sync_bn = 'torch'
