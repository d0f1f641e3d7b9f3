"""tools/model_converters/inceptionnext2mmseg.py: released formats -> verified mmengine backbone checkpoints."""

import pytest
import safetensors.torch
import torch

from mmext.checkpoint import check_checkpoint_fits
from mmext.models import InceptionNeXt
from mmext.models.backbones.inceptionnext_weights import load_backbone_checkpoint


@pytest.fixture(scope='module')
def converter(load_tool):
    return load_tool('tools/model_converters/inceptionnext2mmseg.py')


@pytest.fixture(scope='module')
def timm_atto_safetensors(tmp_path_factory, timm_state_dict):
    state_dict = timm_state_dict('atto', seed=1)
    path = tmp_path_factory.mktemp('timm') / 'model.safetensors'
    safetensors.torch.save_file(state_dict, path)
    return path, state_dict


def test_converts_timm_safetensors_to_a_strictly_loadable_mmengine_checkpoint(converter, timm_atto_safetensors,
                                                                              tmp_path, capsys):
    src, state_dict = timm_atto_safetensors
    dst = tmp_path / 'out' / 'inceptionnext_atto_mmseg.pth'
    assert converter.main([str(src), str(dst)]) == 0  # arch inferred from the shapes
    out = capsys.readouterr().out
    assert (f"wrote {dst}: 220 tensors of InceptionNeXt-atto (depths 2-2-6-2, dims 40..320); use it as "
            f"model.backbone.init_cfg=dict(type='Pretrained', checkpoint='{dst}')") in out
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]  # no temporary left

    converted = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(converted) == {'state_dict', 'meta'}
    assert converted['meta']['arch'] == 'atto' and converted['meta']['source'] == 'model.safetensors'
    expected = {k: v for k, v in state_dict.items() if not k.startswith('head.')}
    assert converted['state_dict'].keys() == expected.keys()
    assert all(torch.equal(converted['state_dict'][k], v) for k, v in expected.items())

    model = InceptionNeXt('atto')
    assert '  format: safetensors file, plain state dict\n' in load_backbone_checkpoint(model, src).summary()
    assert 'safetensors file' not in load_backbone_checkpoint(model, dst).summary()  # a torch file
    assert load_backbone_checkpoint(model, dst).ok
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_prefix_writes_segmentor_keys(converter, timm_atto_safetensors, tmp_path, capsys):
    src, _ = timm_atto_safetensors
    dst = tmp_path / 'backbone_prefixed.pth'
    assert converter.main([str(src), str(dst), '--arch', 'atto', '--prefix', 'backbone.']) == 0
    assert f"keys prefixed 'backbone.'; use it as load_from='{dst}' (the backbone" in capsys.readouterr().out
    keys = torch.load(dst, map_location='cpu', weights_only=True)['state_dict'].keys()
    assert keys and all(k.startswith('backbone.') for k in keys)
    assert load_backbone_checkpoint(InceptionNeXt('atto'), dst).prefix == 'backbone.'
    # what the message promises (tests/tools/test_train_resume.py runs a whole load_from)
    segmentor = torch.nn.Module()
    segmentor.backbone, segmentor.decode_head = InceptionNeXt('atto'), torch.nn.Conv2d(320, 150, 1)
    note = check_checkpoint_fits(segmentor, dst, resume=False)
    assert 'holds backbone weights only: the backbone is loaded from it (strictly' in note
    assert 'decode_head' in note and 'start from their initialisation' in note


def test_wrong_arch_fails_without_writing(converter, timm_atto_safetensors, tmp_path, capsys):
    src, _ = timm_atto_safetensors
    dst = tmp_path / 'tiny.pth'
    assert converter.main([str(src), str(dst), '--arch', 'tiny']) == 1
    err = capsys.readouterr().err
    assert 'checkpoint looks like InceptionNeXt-atto' in err and 'the model is InceptionNeXt-tiny' in err
    assert not dst.exists()


@pytest.mark.parametrize('spelling', ['same', 'dotted', 'symlink'])
def test_refuses_to_overwrite_its_source(converter, timm_atto_safetensors, tmp_path, spelling, capsys):
    src, _ = timm_atto_safetensors
    before = src.read_bytes()
    if spelling == 'same':
        dst = src
    elif spelling == 'dotted':
        dst = src.parent / '.' / '..' / src.parent.name / src.name
    else:
        dst = tmp_path / 'link.safetensors'
        dst.symlink_to(src)
    assert converter.main([str(src), str(dst), '--arch', 'atto']) == 1
    assert f'DST {dst} is the input SRC {src}' in capsys.readouterr().err
    assert src.read_bytes() == before


def test_refuses_to_replace_an_existing_file_without_overwrite(converter, timm_atto_safetensors, tmp_path, capsys):
    src, _ = timm_atto_safetensors
    dst = tmp_path / 'mine.pth'
    dst.write_bytes(b'not ours')
    assert converter.main([str(src), str(dst), '--arch', 'atto']) == 1
    assert f'DST {dst} exists and this run did not create it' in capsys.readouterr().err
    assert dst.read_bytes() == b'not ours'
    assert converter.main([str(src), str(dst), '--arch', 'atto', '--overwrite']) == 0
    assert torch.load(dst, weights_only=True)['meta']['arch'] == 'atto'
