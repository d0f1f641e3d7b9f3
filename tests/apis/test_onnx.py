"""ONNX export of UperNet / Semantic FPN segmentors: onnxruntime must match PyTorch at sizes other than the export
size: UperNet-T on the three real ADE20K samples at a quarter of their size (Semantic FPN in deploy form at their
native sizes: ``tests/tools/test_export_onnx.py``)."""
import copy
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from mmext.apis import (
    DynamicAdaptiveAvgPool2d,
    apply_inference_options,
    check_onnx_parity,
    export_onnx,
    init_segmentor,
    prepare_for_export,
)
from mmext.models import InceptionNeXt

SMALL_ARCH = dict(_delete_=True, depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2),
                  token_mixer=dict(band_kernel_size=5, branch_ratio=0.25))


def _sample_images(ade20k_samples: Path) -> list[np.ndarray]:
    images = [cv2.imread(str(p)) for p in sorted((ade20k_samples / 'images' / 'validation').glob('*.jpg'))]
    assert [im.shape[:2] for im in images] == [(512, 683), (364, 500), (300, 400)]
    return images


def _assert_parity(results: list[dict], shapes: list[tuple[int, int]]) -> None:
    assert [r['shape'] for r in results] == shapes
    for r in results:
        assert r['max_abs_diff'] < 1e-5 * r['max_abs_logit'] + 1e-4, r  # float32 rounding, not a bug
        assert r['argmax_agreement'] >= 0.999, r


@pytest.mark.parametrize('in_size', [(7, 9), (12, 12), (17, 32), (1, 5)])
@pytest.mark.parametrize('out_size', [1, 2, 3, 6, (2, 5)])
def test_dynamic_adaptive_pool_equals_torch(in_size, out_size):
    x = torch.randn(2, 3, *in_size)
    torch.testing.assert_close(DynamicAdaptiveAvgPool2d(out_size)(x), nn.AdaptiveAvgPool2d(out_size)(x),
                               rtol=1e-5, atol=1e-6)


def test_deploy_export_folds_a_copy(repo_root):
    """The graph ``export_onnx(deploy=True)`` traces has no BatchNorm in the backbone; the model keeps its own
    (``tests/tools/test_export_onnx.py`` checks the folded graph against the unfolded model)."""
    model = init_segmentor(repo_root / 'configs/fpn_inceptionnext_t_ade20k.py', cfg_options={
        'model.backbone.arch': SMALL_ARCH, 'model.neck.in_channels': list(SMALL_ARCH['dims']),
        'model.neck.out_channels': 16, 'model.decode_head.in_channels': [16] * 4, 'model.decode_head.channels': 16})
    folded = prepare_for_export(model, deploy=True).backbone
    assert not any(isinstance(m, _BatchNorm) for m in [*folded.stem.modules(), *folded.stages.modules()])
    assert isinstance(model.backbone.stem[1], _BatchNorm)


@pytest.mark.slow
def test_upernet_t_onnx_matches_pytorch_on_ade20k_samples(randomise_weights, repo_root, ade20k_samples, tmp_path):
    """The UperNet-T config (tiny backbone's widths and token mixer, 512-channel UperHead, SyncBN), exported at one
    size and run on the samples at a quarter of their size (odd sizes; CPU cost) and two other odd sizes. One block
    per stage: the export's time grows with the block count, and every block of a stage is the same graph."""
    cfg = Config.fromfile(str(repo_root / 'configs/upernet_inceptionnext_t_ade20k.py'))
    assert cfg.model.backbone.arch == 'tiny'
    cfg.model.backbone.arch = dict(InceptionNeXt.arch_settings['tiny'], depths=(1, 1, 1, 1))
    model = init_segmentor(cfg)
    randomise_weights(model, seed=2)
    onnx_file = export_onnx(model, tmp_path / 'upernet_t.onnx', shape=(128, 160))

    graph = onnx.load(str(onnx_file)).graph
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim][:2] == [1, 3]
    assert all(d.dim_param for d in graph.input[0].type.tensor_type.shape.dim[2:])  # symbolic H, W
    assert not any(node.op_type.startswith('AveragePool') for node in graph.node)  # no pooling windows baked in

    rng = np.random.default_rng(1)
    images = [cv2.resize(im, (im.shape[1] // 4, im.shape[0] // 4), interpolation=cv2.INTER_AREA)
              for im in _sample_images(ade20k_samples)]
    images += [rng.integers(0, 256, shape, np.uint8) for shape in ((97, 131, 3), (96, 64, 3))]
    _assert_parity(check_onnx_parity(model, onnx_file, images), [(128, 170), (91, 125), (75, 100), (97, 131),
                                                                 (96, 64)])


def test_export_refuses_bad_requests(repo_root, tmp_path):
    model = init_segmentor(repo_root / 'configs/upernet_inceptionnext_t_ade20k.py', cfg_options={
        'model.backbone.arch': SMALL_ARCH, 'model.decode_head.in_channels': list(SMALL_ARCH['dims']),
        'model.decode_head.channels': 16, 'model.auxiliary_head.in_channels': 64})
    with pytest.raises(ValueError, match='64'):
        export_onnx(model, tmp_path / 'x.onnx', shape=(32, 32))
    with pytest.raises(ValueError, match='export an fp32 model'):
        export_onnx(apply_inference_options(copy.deepcopy(model), precision='bf16', allow_emulated=True),
                    tmp_path / 'x.onnx')
    model.backbone = nn.Identity()  # a backbone without switch_to_deploy()
    with pytest.raises(ValueError, match='switch_to_deploy'):
        prepare_for_export(model, deploy=True)
