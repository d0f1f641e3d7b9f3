"""The one checkpoint-read boundary: config texts that upstream executes are reduced to data, archives are CRC-checked,
and every mmengine read path (resume, load_from, the inferencers' weights=) goes through it."""
import os

import pytest
import torch
from mmengine.config import Config

from mmext.checkpoint import CheckpointError, literal_config_text, read_checkpoint

EVIL = "x = __import__('os').system('touch MARKER')"


def test_literal_config_text_keeps_what_mmengine_writes(tmp_path):
    cfg = Config(dict(model=dict(type='EncoderDecoder', backbone=dict(type='InceptionNeXt', dims=(16, 32),
                                                                       drop=-0.5, scale=None)),
                      train_cfg=dict(max_iters=10, by_epoch=False), crop=(64, 64), classes=['a', 'b'],
                      custom_imports=dict(imports=['mmext'], allow_failed_imports=False)))
    kept, dropped = literal_config_text(cfg.pretty_text)
    assert dropped == []
    assert Config.fromstring(kept, '.py').to_dict() == cfg.to_dict()


@pytest.mark.parametrize('statement', [
    EVIL, 'import os', 'x = open("/etc/passwd").read()', 'dict = print', '_base_ = ["other.py"]',
    "custom_imports = dict(imports=['antigravity'])", 'y = [i for i in range(3)]', 'z = (lambda: 1)()',
    'w = os.sep', 'def f(): pass'])
def test_literal_config_text_drops_anything_that_runs_code(statement, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kept, dropped = literal_config_text(f'a = 1\n{statement}\nb = dict(c=2)')
    assert len(dropped) == 1 and dropped[0].startswith('line 2: ')
    assert Config.fromstring(kept, '.py').to_dict() == dict(a=1, b=dict(c=2))
    assert not (tmp_path / 'MARKER').exists()


def test_corrupt_tensor_data_is_refused(tmp_path, corrupt_tensor_data):
    path = tmp_path / 'w.pth'
    torch.save({'state_dict': {'w': torch.arange(64.)}}, path)
    corrupt_tensor_data(path)
    assert torch.load(path, weights_only=True)['state_dict']['w'][0] != 0  # torch loads the damage silently
    with pytest.raises(CheckpointError, match=r"w\.pth is corrupt: the CRC of its entry '.*data/0' does not match"):
        read_checkpoint(path)


def test_inferencer_loads_our_checkpoint_without_running_its_config(tmp_path, write_tiny_seg_config,
                                                                    ade20k_samples, monkeypatch):
    """mmengine's BaseInferencer executes message_hub['runtime_info']['cfg'] (MMSegInferencer(model=None))."""
    import numpy as np
    from mmengine.registry import MODELS
    from mmseg.apis import MMSegInferencer

    cfg = Config.fromfile(str(write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples)))
    cfg.model.backbone.norm_cfg = dict(type='BN')
    model = MODELS.build(cfg.model)
    text = cfg.pretty_text
    torch.save({'state_dict': model.state_dict(), 'meta': {'cfg': text},
                'message_hub': {'runtime_info': {'cfg': f'{text}\n{EVIL}\n'}}}, tmp_path / 'ours.pth')
    monkeypatch.chdir(tmp_path)
    inferencer = MMSegInferencer(model=None, weights=str(tmp_path / 'ours.pth'), device='cpu')
    assert not os.path.exists(tmp_path / 'MARKER')
    result = inferencer(np.zeros((32, 48, 3), np.uint8), return_datasamples=True)
    assert result.pred_sem_seg.data.shape[-2:] == (32, 48)
