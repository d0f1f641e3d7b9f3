"""tools/test.py --show-dir/--show-interval: paints every N-th batch and says how many images it wrote."""
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS


def test_show_interval_paints_every_nth_batch_and_reports_it(load_tool, write_tiny_seg_config, ade20k_samples,
                                                              tmp_path, monkeypatch, capsys):
    tool = load_tool('tools/test.py')
    cfg_path = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=None)
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(cfg_path).model)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    num_images = len(list((ade20k_samples / 'images' / 'validation').glob('*.jpg')))
    assert num_images == 3

    painted = tmp_path / 'painted'
    monkeypatch.setattr(sys, 'argv', ['test.py', str(cfg_path), str(checkpoint), '--work-dir', str(tmp_path / 'w'),
                                      '--show-dir', str(painted), '--show-interval', '2'])
    tool.main()
    written = list(painted.rglob('*.png'))
    assert len(written) == 1  # batches of one image: the 2nd of 3 (mmseg's hook counts (index + 1) % interval)
    assert f'--show-dir: wrote 1 painted images (one batch in 2) under {painted}' in capsys.readouterr().out


def test_show_interval_must_be_positive(load_tool):
    tool = load_tool('tools/test.py')
    cfg = Config(dict(default_hooks=dict(visualization=dict(type='SegVisualizationHook')), visualizer=dict()))
    with pytest.raises(ValueError, match='--show-interval must be a positive number of batches, got 0'):
        tool.enable_visualization(cfg, False, 'out', 2, interval=0)
