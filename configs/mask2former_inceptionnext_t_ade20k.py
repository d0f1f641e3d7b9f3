# Mask2Former + InceptionNeXt-T on ADE20K, 512x512 crops, 160k iterations, batch 16 (8 GPUs x 2 images).
# mmseg's own Mask2Former config with the backbone swapped, trained by its Swin-T recipe
# (mask2former_swin-t_8xb2-160k_ade20k-512x512.py): AdamW lr 1e-4, wd 0.05, grad-norm clip 0.01, poly 0.9, backbone
# lr x0.1, no weight decay on norms and on the query/level embeddings. mmseg 1.2.2's single-scale mIoU with this
# head: Swin-T 48.66, Swin-S 51.24, R-50 47.87. The paper reports no Mask2Former results.
_base_ = 'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py'

# configs/_base_/mmext_runtime.py's settings (mmext's components, its SafeRunner, SyncBN), written out: mmseg's
# config sets custom_imports too, and mmengine forbids a key in two bases. mmdet.models registers the pixel decoder,
# losses and assigner (the base's own import).
custom_imports = dict(imports=['mmext', 'mmdet.models'], allow_failed_imports=False)
runner_type = 'SafeRunner'
sync_bn = 'torch'

checkpoint_file = 'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_tiny.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='InceptionNeXt',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        # The paper's dense-prediction rates for T/S/B (0.2/0.3/0.4; Swin-T's recipe here uses 0.3): our choice.
        drop_path_rate=0.2,
        # The authors' new norm on each returned output (issues #10/#11 of sail-sg/inceptionnext).
        out_norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[96, 192, 384, 768]))

dataset_type = 'CheckedADE20KDataset'  # mmseg's ADE20K with clear errors for missing or bad files
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader

# As in Swin's recipe, every backbone norm has its own custom key: mmengine applies the longest matching key, and
# norm_decay_mult not at all to a parameter a key matched. InceptionNeXt's BatchNorms are stem.1, each downsample.0,
# each block's norm and the out_norms; its layer scales (gamma) are exempted too (Swin has none; our choice, as the
# UperNet configs exempt every 1-D parameter).
backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1, decay_mult=1.0),
    'backbone.stem.1': backbone_norm_multi,
    'downsample.0': backbone_norm_multi,
    'backbone.out_norms': backbone_norm_multi,
    'query_embed': embed_multi,
    'query_feat': embed_multi,
    'level_embed': embed_multi,
}
custom_keys.update({
    f'blocks.{block_id}.{name}': backbone_norm_multi
    for block_id in range(27) for name in ('norm', 'gamma')  # 27: the most blocks of any stage (-S, -B)
})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys, norm_decay_mult=0.0))

randomness = dict(seed=0)
