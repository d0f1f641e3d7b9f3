"""tools/train.py's --resume / --auto-resume and the load_from check, run in-process on the tiny UperNet config,
and one fast case of tools/analysis/kill_resume_probe.py."""
import re
import sys
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope='module')
def auto_resumed_run(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path_factory) -> tuple[Path, Path, str]:
    """(config, work dir, log) of one ``--auto-resume`` run of the tiny config from scratch to ``iter_2.pth``,
    shared by the tests that need a trained work dir; they only add to it, never change ``iter_2.pth``."""
    root = tmp_path_factory.mktemp('auto_resume')
    cfg = write_tiny_seg_config(root / 'tiny.py', ade20k_samples, max_iters=2)
    work_dir = root / 'work'
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(work_dir), '--auto-resume')
    return cfg, work_dir, run_log(work_dir)


def test_auto_resume_logs_one_line_either_way(load_tool, auto_resumed_run, monkeypatch):
    cfg, work_dir, first = auto_resumed_run
    assert first.count('Resume: ') == 1
    assert f'Resume: no checkpoint in {work_dir}; training starts from iteration 0.' in first
    assert (work_dir / 'iter_2.pth').is_file()

    run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(work_dir), '--auto-resume',
              '--cfg-options', 'train_cfg.max_iters=3')
    second = run_log(work_dir)
    assert second.count('Resume: ') == 1
    assert f'Resume: resuming from {work_dir / "iter_2.pth"}\n' in second
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


def test_load_from_with_backbone_keys_only_loads_the_backbone(load_tool, write_tiny_seg_config, ade20k_samples,
                                                              tiny_arch, tmp_path, monkeypatch):
    """The converter's --prefix backbone. output is meant for load_from: the backbone loads strictly, the heads
    start fresh, and the log says so."""
    backbone = InceptionNeXt(arch=tiny_arch)
    torch.save({'state_dict': {f'backbone.{k}': v + 1 if v.is_floating_point() else v
                               for k, v in backbone.state_dict().items()}}, tmp_path / 'prefixed.pth')
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=1)
    run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(tmp_path / 'work'),
              '--cfg-options', f'load_from={tmp_path / "prefixed.pth"}')
    log = run_log(tmp_path / 'work')
    assert (f'load_from: {tmp_path / "prefixed.pth"} holds backbone weights only: the backbone is loaded from it '
            f'(strictly, {len(backbone.state_dict())} tensors); auxiliary_head, decode_head, backbone.out_norms start '
            'from their initialisation.') in log


def test_lr_1e6_diverged_state_is_never_saved(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path,
                                             monkeypatch):
    """BAD 4 as the probe found it: at iteration 2 the loss is finite (~1e12) while BN running_var is Inf."""
    from mmext.engine.save import NonFiniteStateError
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=3, extra=(
        "optim_wrapper['optimizer']['lr'] = 1e6\n"
        "default_hooks['checkpoint'].update(interval=1, max_keep_ckpts=1)"))
    work_dir = tmp_path / 'work'
    with pytest.raises(NonFiniteStateError, match=r'Not saving .*iter_2\.pth: the training state holds NaN/Inf '
                                                  r'values in \d+ tensor\(s\): .*running_var'):
        run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(work_dir))
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_1.pth']  # not rotated away
    assert 'loss: nan' not in run_log(work_dir)


def test_cli_errors_name_the_option_value_and_fix(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path,
                                                  monkeypatch, capsys):
    cfg = str(write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples))
    with pytest.raises(SystemExit) as exc:
        run_train(load_tool, monkeypatch, cfg, '--cfg-options', 'train_cfg.max_iters=abc')
    assert str(exc.value.code) == ('error: --cfg-options train_cfg.max_iters=abc: train_cfg.max_iters takes an '
                                   'integer (the config has 2); write e.g. train_cfg.max_iters=2')
    with pytest.raises(SystemExit) as exc:
        run_train(load_tool, monkeypatch, cfg, '--cfg-options', 'train_cfg.max_iters')
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().endswith("--cfg-options 'train_cfg.max_iters': expected KEY=VALUE, "
                                                    'e.g. train_cfg.max_iters=<value> (train_cfg.max_iters=1000)')
    (tmp_path / 'a_file').write_text('')
    with pytest.raises(SystemExit) as exc:
        run_train(load_tool, monkeypatch, cfg, '--work-dir', str(tmp_path / 'a_file'))
    assert f'--work-dir {tmp_path / "a_file"} is a file, not a directory' in str(exc.value.code)


@pytest.mark.slow
def test_kill_resume_probe_one_sigterm_round(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path, capsys,
                                             monkeypatch):
    """The loop lives in tools/analysis/kill_resume_probe.py; here one SIGTERM round in a subprocess (the real
    signal), then the resume in-process."""
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=4,
                                extra="default_hooks['checkpoint']['interval'] = 100")
    work_dir = tmp_path / 'work'
    code = load_tool('tools/analysis/kill_resume_probe.py').main(
        [str(cfg), '--work-dir', str(work_dir), '--rounds', '1', '--signal', 'TERM', '--min-delay', '0',
         '--max-delay', '0', '--no-final'])
    out = capsys.readouterr().out
    assert code == 0, out
    match = re.search(r'round 1: SIGTERM .* exit  143, .* resumable iteration (\d+)\n', out)
    assert match and 1 <= int(match.group(1)) < 4, out  # saved mid-schedule (no periodic checkpoint before 100)
    saved = int(match.group(1))
    run_train(load_tool, monkeypatch, str(cfg), '--work-dir', str(work_dir), '--auto-resume')
    log = run_log(work_dir)
    assert f'Iter(train) [{saved + 1}/4]' in log and f'Iter(train) [{saved}/4]' not in log


def test_test_run_does_not_read_the_checkpoint_in_resume_check(auto_resumed_run, tmp_path, monkeypatch):
    """tools/test.py fit-checks its checkpoint; ResumeCheckHook must not read the file a second time there."""
    from mmengine.config import Config

    from mmext.checkpoint import state_dict
    from mmext.engine.runner import build_runner
    cfg_path, trained, _ = auto_resumed_run
    cfg = Config.fromfile(str(cfg_path))
    cfg.work_dir = str(tmp_path / 'work')
    reads = []
    real = state_dict.read_checkpoint
    monkeypatch.setattr(state_dict, 'read_checkpoint', lambda *a, **k: reads.append(a) or real(*a, **k))
    cfg.load_from = str(trained / 'iter_2.pth')
    cfg.experiment_name = 'test_only'
    build_runner(cfg).test()
    assert reads == []
