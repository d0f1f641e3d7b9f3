# mmseg's schedule_40k.py without its unused SGD ``optimizer`` (see schedule_160k.py).
_base_ = './schedule_160k.py'
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
