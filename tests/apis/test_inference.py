"""init_segmentor / inference_segmentor on the real configs (small arch override) and real ADE20K samples."""
import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from torch.nn.modules.batchnorm import SyncBatchNorm

from mmext.apis import inference_segmentor, init_segmentor, load_image
from mmext.checkpoint import CheckpointError, to_weights_only

UPERNET_T = 'configs/upernet_inceptionnext_t_ade20k.py'


def small_upernet(dims=(16, 32, 64, 128)) -> dict:
    """cfg_options shrinking the real UperNet-T config to a 4-stage custom arch that runs in well under a second."""
    return {
        'model.backbone.arch': dict(_delete_=True, depths=(1, 1, 1, 1), dims=dims, mlp_ratios=(2, 2, 2, 2),
                                    token_mixer=dict(band_kernel_size=5, branch_ratio=0.25)),
        'model.decode_head.in_channels': list(dims), 'model.decode_head.channels': 16,
        'model.auxiliary_head.in_channels': dims[2], 'model.auxiliary_head.channels': 16,
    }


@pytest.fixture(scope='module')
def upernet_cfg(repo_root) -> Config:
    cfg = Config.fromfile(str(repo_root / UPERNET_T))  # parsed once: resolving mmseg:: bases takes seconds
    resize = next(step for step in cfg.test_pipeline if step.type == 'Resize')
    resize.scale = (512, 128)  # ADE20K's (2048, 512) test scale, shrunk 4x for speed
    return cfg


@pytest.fixture(scope='module')
def model(upernet_cfg):
    return init_segmentor(upernet_cfg, cfg_options=small_upernet())


@pytest.fixture(scope='module')
def sample_images(ade20k_samples) -> list[Path]:
    images = sorted((ade20k_samples / 'images' / 'validation').glob('*.jpg'))
    assert len(images) == 3
    return images


def test_syncbn_config_runs_on_cpu_at_image_size(model, sample_images):
    assert not any(isinstance(m, SyncBatchNorm) for m in model.modules())
    assert next(model.parameters()).device.type == 'cpu' and not model.training
    label_map, logits = inference_segmentor(model, sample_images[0], return_logits=True)
    height, width = cv2.imread(str(sample_images[0])).shape[:2]
    assert label_map.shape == (height, width) and label_map.dtype == np.int64
    assert logits.shape == (150, height, width) and logits.dtype == np.float32
    assert 0 <= label_map.min() and label_map.max() < 150
    np.testing.assert_array_equal(logits.argmax(0), label_map)
    assert len(model.dataset_meta['classes']) == 150


def test_list_of_mixed_sizes_returns_a_list(model, sample_images):
    arrays = [cv2.imread(str(p))[:96 + 32 * i, :160 - 16 * i] for i, p in enumerate(sample_images)]
    maps = inference_segmentor(model, arrays)
    assert isinstance(maps, list) and [m.shape for m in maps] == [a.shape[:2] for a in arrays]
    np.testing.assert_array_equal(maps[1], inference_segmentor(model, arrays[1]))


def test_config_object_is_not_modified(upernet_cfg):
    before = copy.deepcopy(upernet_cfg.to_dict())
    model = init_segmentor(upernet_cfg, cfg_options=small_upernet())
    inference_segmentor(model, np.zeros((64, 64, 3), dtype=np.uint8))
    assert upernet_cfg.to_dict() == before
    assert upernet_cfg.model.backbone.init_cfg.type == 'Pretrained' and model.cfg.model.backbone.init_cfg is None


def test_grayscale_rgba_and_bgr_inputs_agree(model, sample_images, tmp_path):
    bgr = np.ascontiguousarray(cv2.imread(str(sample_images[2]))[:128, :160])
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    alpha = np.random.default_rng(0).integers(0, 256, gray.shape, dtype=np.uint8)
    bgra = np.dstack([bgr, alpha])
    from_gray = inference_segmentor(model, cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    np.testing.assert_array_equal(inference_segmentor(model, gray), from_gray)
    np.testing.assert_array_equal(inference_segmentor(model, gray[..., None]), from_gray)
    np.testing.assert_array_equal(inference_segmentor(model, bgra), inference_segmentor(model, bgr))
    # The same images as files: a one-channel PNG and a four-channel PNG.
    cv2.imwrite(str(tmp_path / 'gray.png'), gray)
    cv2.imwrite(str(tmp_path / 'rgba.png'), bgra)
    assert cv2.imread(str(tmp_path / 'rgba.png'), cv2.IMREAD_UNCHANGED).shape[2] == 4
    np.testing.assert_array_equal(inference_segmentor(model, tmp_path / 'gray.png'), from_gray)
    np.testing.assert_array_equal(inference_segmentor(model, tmp_path / 'rgba.png'),
                                  inference_segmentor(model, bgr))


def test_bad_images_raise_naming_the_culprit(tmp_path):
    missing = tmp_path / 'missing.jpg'
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        load_image(missing)
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'these bytes are not an image' * 10)
    with pytest.raises(ValueError, match='corrupt.jpg'):
        load_image(corrupt)
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty.png'):
        load_image(empty)
    with pytest.raises(ValueError, match='uint8'):
        load_image(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r'\(8, 8, 2\)'):
        load_image(np.zeros((8, 8, 2), dtype=np.uint8))


def test_training_checkpoint_round_trip(randomise_weights, model, upernet_cfg, sample_images, tmp_path):
    source = init_segmentor(upernet_cfg, cfg_options=small_upernet())
    randomise_weights(source, seed=1)
    dataset_meta = dict(classes=tuple(f'c{i}' for i in range(150)), palette=[[i, i, i] for i in range(150)])
    # What WeightsOnlyCheckpointHook makes of an mmengine Runner checkpoint: numpy values encoded.
    checkpoint = dict(meta=to_weights_only(dict(dataset_meta=dataset_meta, seed=np.int64(0), iter=10)),
                      state_dict=source.state_dict(), message_hub=to_weights_only(dict(runtime_info={})))
    torch.save(checkpoint, tmp_path / 'iter_10.pth')
    loaded = init_segmentor(upernet_cfg, tmp_path / 'iter_10.pth', cfg_options=small_upernet())
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert loaded.dataset_meta['classes'][3] == 'c3'
    crop = cv2.imread(str(sample_images[1]))[:128, :128]
    np.testing.assert_array_equal(inference_segmentor(loaded, crop), inference_segmentor(source, crop))


def test_backbone_only_checkpoint_loads_into_backbone(randomise_weights, upernet_cfg, tmp_path):
    source = init_segmentor(upernet_cfg, cfg_options=small_upernet())
    randomise_weights(source, seed=2)
    official = {k: v for k, v in source.backbone.state_dict().items() if not k.startswith('out_norms.')}
    torch.save(official, tmp_path / 'backbone.pth')  # the released plain-state-dict layout
    loaded = init_segmentor(upernet_cfg, tmp_path / 'backbone.pth', cfg_options=small_upernet())
    for key, value in official.items():
        torch.testing.assert_close(loaded.backbone.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert not torch.equal(loaded.decode_head.conv_seg.weight, source.decode_head.conv_seg.weight)


def test_checkpoint_for_another_arch_is_refused(model, upernet_cfg, tmp_path):
    other = init_segmentor(upernet_cfg, cfg_options=small_upernet(dims=(24, 48, 96, 192)))
    torch.save(dict(state_dict=other.state_dict(), meta={}), tmp_path / 'other_arch.pth')
    with pytest.raises(CheckpointError, match='other_arch.pth') as info:
        init_segmentor(upernet_cfg, tmp_path / 'other_arch.pth', cfg_options=small_upernet())
    message = str(info.value)
    assert 'shape mismatches' in message and 'backbone.stem.0.weight' in message and 'dims 24..192' in message
    torch.save(other.backbone.state_dict(), tmp_path / 'other_backbone.pth')
    with pytest.raises(CheckpointError, match='other_backbone.pth'):
        init_segmentor(upernet_cfg, tmp_path / 'other_backbone.pth', cfg_options=small_upernet())
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        init_segmentor(upernet_cfg, tmp_path / 'nowhere.pth', cfg_options=small_upernet())
