"""tools/train.py's --resume / --auto-resume and the load_from check, run in-process on the tiny UperNet config."""
import sys
from pathlib import Path

import pytest
import torch
from mmengine.runner import Runner

from mmext.checkpoint import CheckpointError
from mmext.models.backbones import InceptionNeXt


def run_train(load_tool, monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', *args])
    load_tool('tools/train.py').main()


def run_log(work_dir: Path) -> str:
    logs = sorted(work_dir.glob('*/*.log'))
    assert logs, f'no log in {work_dir}'
    return logs[-1].read_text()


def test_resume_without_checkpoint_exits_naming_the_work_dir(load_tool, write_tiny_seg_config, ade20k_samples,
                                                            tmp_path, monkeypatch):
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples)
    work_dir = tmp_path / 'typo_work_dir'
    with pytest.raises(SystemExit) as exc:
        run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(work_dir), '--resume')
    assert exc.value.code not in (0, None)
    assert f'no checkpoint to resume from in work dir {work_dir}' in str(exc.value.code)
    assert not list(tmp_path.rglob('*.pth')) and not list(tmp_path.rglob('*.log'))  # nothing trained


def test_auto_resume_logs_one_line_either_way(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path,
                                              monkeypatch):
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=2)
    work_dir = tmp_path / 'work'
    run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(work_dir), '--auto-resume')
    first = run_log(work_dir)
    assert first.count('Resume: ') == 1
    assert f'Resume: no checkpoint in {work_dir}; training starts from iteration 0.' in first
    assert (work_dir / 'iter_2.pth').is_file()

    run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(work_dir), '--auto-resume',
              '--cfg-options', 'train_cfg.max_iters=3')
    second = run_log(work_dir)
    assert second.count('Resume: ') == 1
    assert f'Resume: resuming from {work_dir / "iter_2.pth"}.' in second
    assert 'Iter(train) [3/3]' in second and 'Iter(train) [1/3]' not in second  # continued, not restarted


def test_load_from_backbone_only_checkpoint_points_to_init_cfg(load_tool, write_tiny_seg_config, ade20k_samples,
                                                               tiny_arch, tmp_path, monkeypatch):
    backbone_file = tmp_path / 'backbone.pth'
    torch.save(InceptionNeXt(arch=tiny_arch).state_dict(), backbone_file)  # official / timm layout: no prefix
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples)
    with pytest.raises(CheckpointError) as exc:
        run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(tmp_path / 'work'),
                  '--cfg-options', f'load_from={backbone_file}')
    message = str(exc.value)
    assert f'load_from={backbone_file} holds backbone weights only' in message
    assert f"model.backbone.init_cfg=dict(type='Pretrained', checkpoint='{backbone_file}')" in message
    assert not list((tmp_path / 'work').glob('*.pth'))


def test_test_run_does_not_read_the_checkpoint_in_resume_check(write_tiny_seg_config, ade20k_samples, tmp_path,
                                                               monkeypatch):
    """tools/test.py fit-checks its checkpoint; ResumeCheckHook must not read the file a second time there."""
    from mmengine.config import Config

    from mmext.engine.hooks import ensure_training_hooks
    from mmext.engine.hooks import safe_checkpoint_hook as hook_module
    cfg = Config.fromfile(str(write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples)))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_cfg.max_iters = 2
    Runner.from_cfg(ensure_training_hooks(cfg)).train()
    reads = []
    real = hook_module.read_checkpoint
    monkeypatch.setattr(hook_module, 'read_checkpoint', lambda *a, **k: reads.append(a) or real(*a, **k))
    cfg.load_from = str(tmp_path / 'work' / 'iter_2.pth')
    cfg.experiment_name = 'test_only'
    Runner.from_cfg(cfg).test()
    assert reads == []
