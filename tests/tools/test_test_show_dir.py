"""tools/test.py --show-dir/--show-interval: paints every N-th batch and says how many images it wrote."""
import shutil
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from mmext.fileio import OutputPathError


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


def test_outputs_over_the_test_data_are_refused(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path,
                                               monkeypatch):
    """BAD 6: ``--out <annotation folder>`` replaced the labels with predictions (and the next evaluation said mIoU
    100). Refused before the Runner is built; so is a --show-dir holding files already, unless --overwrite."""
    data = tmp_path / 'data'
    shutil.copytree(ade20k_samples, data)  # a copy: if the guard failed, the test would destroy its own data only
    annotations = data / 'annotations' / 'validation'
    before = {p.name: p.read_bytes() for p in annotations.iterdir()}
    cfg_path = write_tiny_seg_config(tmp_path / 'tiny.py', data, max_iters=None)
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'not read: refused before')
    tool = load_tool('tools/test.py')

    def run(*args):
        monkeypatch.setattr(sys, 'argv', ['test.py', str(cfg_path), str(checkpoint), '--work-dir',
                                          str(tmp_path / 'w'), *args])
        tool.main()
    with pytest.raises(OutputPathError, match=f'--out {annotations} lies inside the input test data {data}'):
        run('--out', str(annotations))
    with pytest.raises(OutputPathError, match=f'--out {checkpoint} is the input CHECKPOINT'):
        run('--out', str(checkpoint))
    painted = tmp_path / 'painted'
    painted.mkdir()
    (painted / 'mine.png').write_bytes(b'a picture of somebody else')
    with pytest.raises(OutputPathError, match=f'--show-dir {painted / "mine.png"} exists and this run did not'):
        run('--show-dir', str(painted))
    assert {p.name: p.read_bytes() for p in annotations.iterdir()} == before
    assert not (tmp_path / 'w').exists()


def test_out_pkl_is_written_whole_or_not_at_all(load_tool, tmp_path):
    import pickle

    from mmext.evaluation import AtomicDumpResults

    cfg = Config(dict(test_evaluator=dict(type='IoUMetric')))
    load_tool('tools/test.py').add_output(cfg, str(tmp_path / 'preds.pkl'))
    assert cfg.test_evaluator[-1] == dict(type='AtomicDumpResults', out_file_path=str(tmp_path / 'preds.pkl'))
    metric = AtomicDumpResults(out_file_path=str(tmp_path / 'preds.pkl'))
    metric.compute_metrics([{'pred': 1}])
    with pytest.raises(Exception, match='pickle'):
        metric.compute_metrics([lambda: 0])  # fails while writing
    assert pickle.loads((tmp_path / 'preds.pkl').read_bytes()) == [{'pred': 1}]
    assert [p.name for p in tmp_path.iterdir()] == ['preds.pkl']
