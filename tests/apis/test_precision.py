"""Inference precision and forms (mmext.apis.precision) through init_segmentor / inference_segmentor, the Runner's
wrappers and the tools' flags, on the real UperNet-T config shrunk to a tiny arch and the real ADE20K samples."""
import argparse
import copy

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmext.apis import inference_segmentor, init_segmentor
from mmext.apis import precision as prec
from mmext.apis.precision import InferenceOptions, apply_inference_options

UPERNET_T = 'configs/upernet_inceptionnext_t_ade20k.py'
TINY = {
    'model.backbone.arch': dict(_delete_=True, depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2)),
    'model.decode_head.in_channels': [16, 32, 64, 128], 'model.decode_head.channels': 16,
    'model.auxiliary_head.in_channels': 64, 'model.auxiliary_head.channels': 16,
}
NATIVE_BF16 = prec.precision_support('bf16', 'cpu') is None


@pytest.fixture(scope='module')
def upernet_cfg(repo_root) -> Config:
    cfg = Config.fromfile(str(repo_root / UPERNET_T))
    next(step for step in cfg.test_pipeline if step.type == 'Resize').scale = (512, 128)
    return cfg


@pytest.fixture(scope='module')
def fp32_model(upernet_cfg, randomise_weights):
    model = init_segmentor(upernet_cfg, cfg_options=TINY)
    randomise_weights(model, seed=3)  # decisive logits: random-init logits are near ties everywhere
    return model


@pytest.fixture(scope='module')
def image(ade20k_samples) -> np.ndarray:
    import cv2
    return cv2.imread(str(sorted((ade20k_samples / 'images' / 'validation').glob('*.jpg'))[0]))


def _cpu(monkeypatch, **features):
    monkeypatch.setattr(prec, 'cpu_has', lambda name: features.get(name, False))


def test_precision_support_names_the_missing_feature(monkeypatch):
    _cpu(monkeypatch)
    assert 'AVX512-BF16 nor AMX' in prec.precision_support('bf16', 'cpu')
    assert 'AMX-FP16' in prec.precision_support('fp16', 'cpu')
    assert prec.precision_support('fp32', 'cpu') is None
    _cpu(monkeypatch, avx512_bf16=True)
    assert prec.precision_support('bf16', 'cpu') is None and prec.precision_support('fp16', 'cpu')
    _cpu(monkeypatch, amx_tile=True, amx_fp16=True)
    assert prec.precision_support('bf16', 'cpu') is None and prec.precision_support('fp16', 'cpu') is None
    with pytest.raises(ValueError, match="precision must be one of .*'int4'"):
        prec.precision_support('int4', 'cpu')


def test_unsupported_precision_is_refused_before_building(upernet_cfg, monkeypatch):
    _cpu(monkeypatch, avx512_bf16=True)
    with pytest.raises(ValueError, match=r"precision 'fp16' on cpu: this CPU has no AMX-FP16"):
        init_segmentor(upernet_cfg, cfg_options=TINY, precision='fp16')
    with pytest.raises(ValueError, match='precision must be one of'):
        InferenceOptions('fp8')


def test_default_precision_from_env_needs_measured_agreement(monkeypatch):
    monkeypatch.delenv(prec.PRECISION_ENV, raising=False)
    assert prec.default_precision() == 'fp32'
    monkeypatch.setenv(prec.PRECISION_ENV, 'BF16')
    monkeypatch.setitem(prec.MEASURED_AGREEMENT, 'bf16', 0.995)
    assert prec.default_precision() == 'bf16'
    monkeypatch.setitem(prec.MEASURED_AGREEMENT, 'bf16', 0.97)
    with pytest.raises(ValueError, match=r'MMEXT_PRECISION=bf16: .* 97.00%, below the 99.00%'):
        prec.default_precision()
    monkeypatch.setenv(prec.PRECISION_ENV, 'half')
    with pytest.raises(ValueError, match="'half' is not a precision"):
        prec.default_precision()


@pytest.mark.skipif(not NATIVE_BF16, reason='this CPU has no native bf16 (AVX512-BF16 / AMX); the API refuses it')
def test_bf16_deploy_channels_last_agrees_with_fp32_and_tiles(fp32_model, image):
    """The autocast wrapper, BN folding and NHWC together; the bounded-memory label map under bf16 (tiny tiles
    force the tiled path) equals the direct one."""
    model = apply_inference_options(copy.deepcopy(fp32_model), precision='bf16', deploy=True, channels_last=True)
    assert model.inference_options.describe() == 'bf16+deploy+channels_last' and model.backbone.deploy
    assert fp32_model.inference_options == InferenceOptions() and not fp32_model.backbone.deploy  # the copy only
    reference = inference_segmentor(fp32_model, image)
    label_map, logits = inference_segmentor(model, image, return_logits=True)
    assert logits.dtype == np.float32  # the decode head's logits come back in float32
    assert (label_map == reference).mean() > 0.98
    tiled = inference_segmentor(model, image, max_tile_bytes=2**18)
    assert (tiled == label_map).mean() > 0.9999  # identical up to float-rounding ties
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, 64, 64))
    assert features[0].dtype == torch.bfloat16 and features[0].is_contiguous(memory_format=torch.channels_last)


def test_fp16_emulated_and_the_runner_wrappers(fp32_model, image, monkeypatch):
    """fp16 on a CPU runs only when emulation is allowed (the agreement tool); options reach a segmentor inside
    mmseg's TTA wrapper (tools/test.py --tta) and are applied once; a precision measured below 99% warns."""
    logged = []
    monkeypatch.setattr(prec, 'print_log', lambda msg, **kw: logged.append(msg))
    monkeypatch.setitem(prec.MEASURED_AGREEMENT, 'fp16', 0.9)
    from mmseg.models import SegTTAModel

    if prec.precision_support('fp16', 'cpu'):
        with pytest.raises(ValueError, match='AMX-FP16'):
            apply_inference_options(copy.deepcopy(fp32_model), precision='fp16')
    model = copy.deepcopy(fp32_model)
    tta = SegTTAModel(module=model)
    apply_inference_options(tta, precision='fp16', allow_emulated=True)
    assert model.inference_options.precision == 'fp16' and '90.00%' in logged[-1]
    assert (inference_segmentor(model, image) == inference_segmentor(fp32_model, image)).mean() > 0.98
    with pytest.raises(ValueError, match='applied to this model already'):
        apply_inference_options(model, precision='fp32', channels_last=True)
    with pytest.raises(TypeError, match='mmseg segmentors'):
        apply_inference_options(torch.nn.Linear(2, 2), precision='bf16')


def test_tool_flags_and_checkpoint_key_spelling(fp32_model, upernet_cfg, tmp_path, monkeypatch):
    parser = prec.add_precision_args(argparse.ArgumentParser())
    args = parser.parse_args(['--precision', 'bf16', '--deploy', '--channels-last'])
    assert prec.options_from_args(args) == InferenceOptions('bf16', True, True, False)
    monkeypatch.delenv(prec.PRECISION_ENV, raising=False)
    runner_args = prec.add_precision_args(argparse.ArgumentParser(), forms=False).parse_args([])
    assert prec.options_from_args(runner_args) == InferenceOptions() and not hasattr(runner_args, 'deploy')

    torch.save(dict(ema=fp32_model.state_dict()), tmp_path / 'ema.pth')
    logged = []
    monkeypatch.setattr('mmext.apis.builder.print_log', lambda msg, **kw: logged.append(msg))
    with pytest.warns(DeprecationWarning, match='checkpoint_key'):
        loaded = init_segmentor(upernet_cfg, tmp_path / 'ema.pth', cfg_options=TINY, key='ema')
    torch.testing.assert_close(loaded.decode_head.conv_seg.weight, fp32_model.decode_head.conv_seg.weight)
    assert not logged  # a checkpoint was given: no "No checkpoint given" note (issue 21)
    init_segmentor(upernet_cfg, cfg_options=TINY)
    assert logged and 'No checkpoint given' in logged[0] and 'inceptionnext_tiny.pth' in logged[0]
