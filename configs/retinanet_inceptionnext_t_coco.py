# RetinaNet + InceptionNeXt-T on COCO, 1x schedule (12 epochs), 1333x800. The paper reports no detection results:
# the recipe is mmdet's AdamW recipe for ConvNeXt/Swin backbones, shortened to 1x as mmdet's Swin-T 1x configs.
_base_ = [
    './_base_/models/retinanet_inceptionnext.py', 'mmdet::_base_/datasets/coco_detection.py',
    './_base_/schedules/coco_1x_adamw.py', 'mmdet::_base_/default_runtime.py'
]
# Drop path 0.2/0.3/0.4 for T/S/B: the paper's UperNet rates (Swin's); our choice for detection.
model = dict(backbone=dict(drop_path_rate=0.2))
