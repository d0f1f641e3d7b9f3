"""mmext.engine.runner, the tools' shared prologue: CLI options, the config with them applied, the Runner built with
mmext's weights-only checkpoint hook, on a real tiny segmentor config."""
import argparse
import os
import time

import pytest

from mmext.engine.runner import add_runner_args, build_runner, default_work_dir, load_config


def _parse(argv, launcher=True):
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    return add_runner_args(parser, launcher=launcher).parse_args(argv)


def test_add_runner_args_options_and_defaults():
    args = _parse(['cfg.py'])
    assert (args.work_dir, args.cfg_options, args.launcher, args.local_rank) == (None, None, 'none', 0)
    args = _parse(['cfg.py', '--work-dir', 'w', '--cfg-options', 'a.b=1', 'c=[1,2]', '--launcher', 'pytorch',
                   '--local-rank', '3'])
    assert args.cfg_options == {'a.b': 1, 'c': [1, 2]} and args.launcher == 'pytorch' and args.local_rank == 3
    assert not hasattr(_parse(['cfg.py'], launcher=False), 'launcher')
    with pytest.raises(SystemExit):
        _parse(['cfg.py', '--launcher', 'k8s'])


def test_load_config_applies_options_and_the_work_dir_default(write_tiny_seg_config, ade20k_samples, tmp_path,
                                                             monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    path = write_tiny_seg_config(tmp_path / 'tiny_cfg.py', ade20k_samples)
    cfg = load_config(_parse([str(path), '--cfg-options', 'train_cfg.max_iters=7']))
    assert cfg.train_cfg.max_iters == 7 and cfg.launcher == 'none'
    assert cfg.work_dir == default_work_dir(str(path)) == './work_dirs/tiny_cfg'
    assert os.environ['LOCAL_RANK'] == '0'
    monkeypatch.delenv('LOCAL_RANK')
    cfg = load_config(_parse([str(path), '--work-dir', str(tmp_path / 'w'), '--local-rank', '1']))
    assert cfg.work_dir == str(tmp_path / 'w')
    assert os.environ['LOCAL_RANK'] == '1'  # torch.distributed.launch's --local-rank; torchrun sets it itself


def test_build_runner_adds_the_weights_only_hook(write_tiny_seg_config, ade20k_samples, tmp_path):
    path = write_tiny_seg_config(tmp_path / 'tiny_cfg.py', ade20k_samples)
    cfg = load_config(_parse([str(path), '--work-dir', str(tmp_path / 'work')]))
    runner = build_runner(cfg)
    assert runner.work_dir == str(tmp_path / 'work')
    assert 'WeightsOnlyCheckpointHook' in [type(h).__name__ for h in runner.hooks]
    assert runner.model.backbone.channels == (16, 32, 64, 128)


def test_two_runs_of_one_config_in_the_same_second_keep_their_own_log_and_visualizer(
        write_tiny_seg_config, ade20k_samples, tmp_path, monkeypatch):
    # mmengine reuses the logger/visualizer named CONFIG_TIMESTAMP: the second run would write into the first's files
    monkeypatch.setattr(time, 'time', lambda: 1_800_000_000.0)
    path = write_tiny_seg_config(tmp_path / 'same_second.py', ade20k_samples)
    runners = []
    for name in ('a', 'b'):
        cfg = load_config(_parse([str(path), '--work-dir', str(tmp_path / name)]))
        cfg.visualizer['save_dir'] = str(tmp_path / name / 'painted')
        runners.append(build_runner(cfg))
    first, second = runners
    assert first.timestamp == second.timestamp
    assert first.experiment_name != second.experiment_name
    assert second.logger.handlers[-1].baseFilename.startswith(str(tmp_path / 'b'))
    assert second.visualizer._vis_backends['LocalVisBackend']._save_dir.startswith(str(tmp_path / 'b'))
