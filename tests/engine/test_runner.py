"""mmext.engine.runner, the tools' shared prologue: CLI options, the config with them applied (and checked), mmext's
Runner with its safety hooks, on a real tiny segmentor config."""
import argparse
import multiprocessing
import os
import re
import time

import pytest

from mmext.engine.hooks import TRAINING_HOOKS
from mmext.engine.runner import (
    ConfigTextOnce,
    SafeRunner,
    add_runner_args,
    build_runner,
    default_work_dir,
    load_config,
)


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


def test_build_runner_is_the_safe_runner_with_every_safety_hook(write_tiny_seg_config, ade20k_samples, tmp_path):
    path = write_tiny_seg_config(tmp_path / 'tiny_cfg.py', ade20k_samples)
    cfg = load_config(_parse([str(path), '--work-dir', str(tmp_path / 'work')]))
    cfg.pop('runner_type')  # a config without mmext's runtime base gets it too
    runner = build_runner(cfg)
    assert type(runner) is SafeRunner and runner.work_dir == str(tmp_path / 'work')
    names = [type(h).__name__ for h in runner.hooks]
    assert all(name in names for name in TRAINING_HOOKS), names
    assert runner.model.backbone.channels == (16, 32, 64, 128)

    # the config's text is formatted once (log, dump, checkpoint meta), again only after a change
    text = runner.cfg.pretty_text
    assert isinstance(runner.cfg, ConfigTextOnce) and runner.cfg.pretty_text is text
    assert (tmp_path / 'work' / 'tiny_cfg.py').read_text() == text  # the dump the Runner wrote
    runner.cfg.train_cfg.max_iters = 7
    assert 'max_iters=7' in runner.cfg.pretty_text and runner.cfg.pretty_text != text


def test_train_and_test_stop_their_dataloader_workers(write_tiny_seg_config, ade20k_samples, tmp_path):
    """Left to the garbage collector, each worker of a finished run cost the caller's process a 5 s wait."""
    path = write_tiny_seg_config(tmp_path / 'tiny_cfg.py', ade20k_samples, max_iters=1)
    workers = dict(num_workers=1, persistent_workers=True)
    cfg = load_config(_parse([str(path), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                              *(f'{loader}.{k}={v}' for loader in ('train_dataloader', 'test_dataloader')
                                for k, v in workers.items())]))
    runner = build_runner(cfg)
    runner.train()
    assert runner.train_dataloader.persistent_workers and multiprocessing.active_children() == []
    runner.test()
    assert multiprocessing.active_children() == []
    assert runner.test()['mIoU'] >= 0  # a later run starts new workers, and stops them again
    assert multiprocessing.active_children() == []


def test_cfg_options_of_the_wrong_type_name_the_key_value_and_fix(write_tiny_seg_config, ade20k_samples, tmp_path):
    path = str(write_tiny_seg_config(tmp_path / 'tiny_cfg.py', ade20k_samples))
    for option, message in [
            ('train_cfg.max_iters=abc', 'train_cfg.max_iters takes an integer (the config has 2); write e.g. '
                                        'train_cfg.max_iters=2'),
            ('optim_wrapper.optimizer.lr=fast', 'takes a number (the config has 0.001)'),
            ('randomness.deterministic=yes', 'takes True or False (the config has True)')]:
        with pytest.raises(ValueError, match=rf'^--cfg-options {re.escape(option)}: .*{re.escape(message)}'):
            load_config(_parse([path, '--cfg-options', option]))
    assert load_config(_parse([path, '--cfg-options', 'model.backbone.arch=small'])).model.backbone.arch == 'small'
    with pytest.raises(SystemExit) as exc:
        _parse([path, '--cfg-options', 'train_cfg.max_iters'])
    assert exc.value.code == 2


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
