"""Deploy mode: BN folding keeps the eval-mode outputs, and deploy checkpoints load and export."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmext.checkpoint import CheckpointError
from mmext.models.backbones.inceptionnext import InceptionNeXt
from mmext.models.backbones.inceptionnext_convert import convert_checkpoint_to_deploy, deploy_state_dict

TINY_ARCH = dict(depths=(1, 2), dims=(16, 32), mlp_ratios=(4, 3), token_mixer=dict(branch_ratio=0.25))


def _assert_outputs_close(ref, out):
    assert len(ref) == len(out)
    for a, b in zip(ref, out, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * a.abs().max().item())


@pytest.mark.parametrize('arch', ['atto', 'tiny'])
def test_switch_to_deploy_keeps_outputs(randomise_weights, arch):
    torch.manual_seed(0)
    model = randomise_weights(InceptionNeXt(arch, out_norm_cfg=dict(type='BN')))
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
        out = model(x)
    _assert_outputs_close(ref, out)
    assert model.deploy
    assert not any(isinstance(m, nn.BatchNorm2d) for m in (model.stem, model.stages))
    bns = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns == [f'out_norms.{i}' for i in range(4)]
    keys = model.state_dict().keys()
    assert not any(k.endswith('.gamma') or '.norm.' in k or k.startswith('stem.1.') for k in keys)
    assert 'stages.1.downsample.1.bias' in keys and 'stages.1.downsample.0.weight' not in keys
    model.switch_to_deploy()  # idempotent
    with torch.no_grad():
        _assert_outputs_close(ref, model(x))


def test_deploy_model_loads_folded_state_dict_and_keeps_options(randomise_weights):
    model = randomise_weights(InceptionNeXt(TINY_ARCH, out_indices=(0, 1)))
    folded = deploy_state_dict(model.state_dict())
    deployed = InceptionNeXt(TINY_ARCH, out_indices=(0, 1), deploy=True, frozen_stages=1)
    deployed.load_state_dict(folded, strict=True)
    deployed.eval()
    x = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        _assert_outputs_close(model(x), deployed(x))
    assert not any(p.requires_grad for p in deployed.stem.parameters())
    assert all(p.requires_grad for p in deployed.stages[1].parameters())
    with pytest.raises(ValueError, match='already in deploy form'):
        deploy_state_dict(folded)


def test_convert_checkpoint_keeps_heads_and_loads_into_deploy_backbone(randomise_weights, tmp_path):
    """A segmentor-style mmengine checkpoint: ``backbone.*`` folded, other tensors kept, loads via init_cfg."""
    model = randomise_weights(InceptionNeXt('atto', out_norm_cfg=dict(type='BN')))
    head = torch.randn(4, 320)
    src, dst = tmp_path / 'seg.pth', tmp_path / 'seg_deploy.pth'
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    torch.save(dict(state_dict={**state, 'decode_head.conv_seg.weight': head}, meta=dict(epoch=1)), src)
    meta = convert_checkpoint_to_deploy(src, dst)
    assert meta['deploy'] and meta['backbone_prefix'] == 'backbone.'
    saved = torch.load(dst, weights_only=True)['state_dict']
    assert torch.equal(saved['decode_head.conv_seg.weight'], head)
    assert 'backbone.stages.0.blocks.0.norm.weight' not in saved and 'backbone.stem.0.bias' in saved

    deployed = InceptionNeXt('atto', out_norm_cfg=dict(type='BN'), deploy=True,
                             init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.'))
    deployed.init_weights()
    deployed.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        _assert_outputs_close(model(x), deployed(x))


def test_converter_cli(randomise_weights, tmp_path, load_tool, capsys):
    cli = load_tool('tools/model_converters/inceptionnext_deploy.py')
    model = randomise_weights(InceptionNeXt(TINY_ARCH, out_indices=(0, 1)))
    state = dict(model.state_dict(), **{'head.fc2.weight': torch.zeros(10, 96)})  # official layout, with head
    src, dst = tmp_path / 'inceptionnext_custom.pth', tmp_path / 'custom_deploy.pth'
    torch.save(state, src)
    assert cli.main([str(src), str(dst)]) == 0
    assert 'deploy form' in capsys.readouterr().out
    saved = torch.load(dst, weights_only=True)['state_dict']
    assert not any(k.startswith('head.') for k in saved)
    InceptionNeXt(TINY_ARCH, out_indices=(0, 1), deploy=True).load_state_dict(saved, strict=True)
    assert cli.main([str(tmp_path / 'missing.pth'), str(dst)]) == 1
    assert 'missing.pth' in capsys.readouterr().err


def test_deploy_backbone_exports_to_onnx(randomise_weights, tmp_path):
    onnxruntime = pytest.importorskip('onnxruntime')
    model = randomise_weights(InceptionNeXt(TINY_ARCH, out_indices=(0, 1))).switch_to_deploy()
    x = torch.randn(1, 3, 64, 64)
    out_file = tmp_path / 'backbone_deploy.onnx'
    with torch.no_grad():
        ref = model(x)
        torch.onnx.export(model, (x,), str(out_file), dynamo=True, input_names=['image'], external_data=False,
                          verbose=False)
    session = onnxruntime.InferenceSession(str(out_file), providers=['CPUExecutionProvider'])
    outs = session.run(None, {'image': x.numpy()})
    assert len(outs) == 2
    for a, b in zip(ref, outs, strict=True):
        np.testing.assert_allclose(b, a.numpy(), rtol=1e-4, atol=1e-4 * a.abs().max().item())


def test_deploy_converter_refuses_to_overwrite_its_source(tmp_path):
    src = tmp_path / 'inceptionnext_custom.pth'
    torch.save(InceptionNeXt(TINY_ARCH, out_indices=(0, 1)).state_dict(), src)
    before = src.read_bytes()
    link = tmp_path / 'link.pth'
    link.symlink_to(src)
    for dst in (src, link):
        with pytest.raises(CheckpointError, match='refusing to overwrite the source checkpoint'):
            convert_checkpoint_to_deploy(src, dst)
    assert src.read_bytes() == before


def test_deploy_at_a_reduced_output_stride_keeps_outputs(randomise_weights, tiny_arch):
    """A same-padded (dilated) downsample keeps its BN: folding it would be inexact at the zero-padded border."""
    model = randomise_weights(InceptionNeXt(tiny_arch, output_stride=8), seed=2).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
        _assert_outputs_close(ref, model(x))
    assert [type(s.downsample[0]).__name__ for s in model.stages[1:]] == ['Identity', 'BatchNorm2d', 'BatchNorm2d']
