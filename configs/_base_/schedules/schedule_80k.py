# mmseg's schedule_80k.py (its Cityscapes schedule) without its unused SGD ``optimizer`` (see schedule_160k.py).
_base_ = './schedule_160k.py'
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
