# Mask R-CNN + InceptionNeXt-T on COCO, 1x schedule (12 epochs), 1333x800. The paper reports no detection results:
# the recipe is mmdet's ConvNeXt-T Mask R-CNN recipe (AdamW, lr decay) on the plain 1x schedule of its Swin-T config.
_base_ = [
    './_base_/models/mask-rcnn_inceptionnext.py', 'mmdet::_base_/datasets/coco_instance.py',
    './_base_/schedules/coco_1x_adamw.py', 'mmdet::_base_/default_runtime.py'
]
# Drop path 0.2/0.3/0.4 for T/S/B: the paper's UperNet rates (Swin's); our choice for detection.
model = dict(backbone=dict(drop_path_rate=0.2))
