"""Crash-safe checkpoints (periodic, best, out_dir) and the finite-state guard, on mmext's Runner with a toy model."""
import os

import pytest
import torch
from mmengine.runner import Runner

from mmext import fileio
from mmext.checkpoint import find_resumable_checkpoint
from mmext.engine.hooks import NonFiniteLossError
from mmext.engine.save import NonFiniteStateError


def test_kill_between_write_and_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch, make_runner):
    make_runner(tmp_path, max_iters=2).train()
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_2.pth')

    def killed(src, dst):
        if str(dst).endswith('iter_4.pth'):
            raise KeyboardInterrupt('killed before the rename')
        return os.rename(src, dst)
    monkeypatch.setattr(fileio.os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        make_runner(tmp_path, max_iters=4, resume=True).train()
    # mmengine would already have deleted iter_2.pth (max_keep_ckpts=1) and written iter_4.pth in place
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_2.pth']
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_2.pth')
    monkeypatch.undo()
    (tmp_path / 'iter_4.tmp-99999.pth').write_bytes(b'PK\x03\x04')  # what a kill -9 mid-write leaves
    runner = make_runner(tmp_path, max_iters=4, resume=True)
    runner.train()
    assert runner.iter == 4 and sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_4.pth']


def test_kill_while_deleting_old_checkpoints_keeps_the_new_one(tmp_path, monkeypatch, make_runner):
    make_runner(tmp_path, max_iters=2).train()

    def killed(path):
        raise KeyboardInterrupt('killed while deleting')
    monkeypatch.setattr(os, 'remove', killed)
    with pytest.raises(KeyboardInterrupt):
        make_runner(tmp_path, max_iters=4, resume=True).train()
    monkeypatch.undo()
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_4.pth')
    assert find_resumable_checkpoint([str(tmp_path)]).path == str(tmp_path / 'iter_4.pth')


def test_best_checkpoint_survives_a_kill_while_the_new_best_is_written(tmp_path, monkeypatch, make_runner):
    """BAD 2: mmengine removes the previous best_*.pth, then writes the new one in place."""
    best = dict(save_best='score', rule='greater')
    make_runner(tmp_path, max_iters=2, val_interval=2, checkpoint=best).train()
    assert [p.name for p in tmp_path.glob('best_*.pth')] == ['best_score_iter_2.pth']
    real = Runner.save_checkpoint

    def killed_mid_write(runner, out_dir, filename, *args, **kwargs):
        if filename.startswith('best_'):
            (tmp_path / filename).write_bytes(b'PK\x03\x04 half a checkpoint')
            raise KeyboardInterrupt('killed while writing the new best')
        return real(runner, out_dir, filename, *args, **kwargs)
    monkeypatch.setattr(Runner, 'save_checkpoint', killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        make_runner(tmp_path, max_iters=4, val_interval=2, checkpoint=best, resume=True).train()
    monkeypatch.undo()
    assert [p.name for p in tmp_path.glob('best_*.pth')] == ['best_score_iter_2.pth']  # the old best, complete
    torch.load(tmp_path / 'best_score_iter_2.pth', weights_only=True)
    make_runner(tmp_path, max_iters=6, val_interval=2, checkpoint=best, resume=True).train()
    assert [p.name for p in tmp_path.glob('best_*.pth')] == ['best_score_iter_6.pth']  # replaced once complete


def test_non_finite_state_is_never_written_nor_rotated_in(tmp_path, make_runner, toy_model):
    """BAD 4: the loss stays finite while BN running_var is Inf; mmengine would save it and rotate iter_2 away."""
    runner = make_runner(tmp_path, max_iters=6, model=toy_model(inf_at=3))
    with pytest.raises(NonFiniteStateError, match=r'iter_4\.pth.*norm\.running_var \(2 of 2\)'):
        runner.train()
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == ['iter_2.pth']
    resumed = make_runner(tmp_path, max_iters=2, resume=True)
    resumed.train()  # the only file left is good, so it resumes (and has nothing left to train)
    assert resumed.iter == 2


def test_resume_skips_newer_non_finite_and_corrupt_files_saying_why(tmp_path, make_runner, read_log,
                                                                    corrupt_tensor_data):
    make_runner(tmp_path, max_iters=6, max_keep=3).train()
    ckpt = torch.load(tmp_path / 'iter_6.pth', weights_only=True)
    ckpt['state_dict']['norm.running_var'].fill_(float('inf'))
    torch.save(ckpt, tmp_path / 'iter_6.pth')
    corrupt_tensor_data(tmp_path / 'iter_4.pth')
    torch.load(tmp_path / 'iter_4.pth', weights_only=True)  # torch reads it without complaint
    runner = make_runner(tmp_path, max_iters=8, max_keep=3, resume=True)
    runner.train()
    log = read_log(runner)
    assert f'resuming from {tmp_path / "iter_2.pth"}, the newest of 3 checkpoints that is complete and finite' in log
    assert f'skipped {tmp_path / "iter_6.pth"}: ' in log and 'NaN/Inf values in 1 tensor(s): norm.running_var' in log
    assert f'skipped {tmp_path / "iter_4.pth"}: ' in log and 'CRC' in log
    assert 'Iter(train) [3/8]' in log and 'Iter(train) [2/8]' not in log


def test_resume_finds_checkpoints_under_out_dir(tmp_path, make_runner, read_log):
    """BAD 3: with out_dir, mmengine saves to <out_dir>/<work_dir name>/; resume looked only in work_dir."""
    work, out = tmp_path / 'work', tmp_path / 'out'
    make_runner(work, max_iters=4, max_keep=2, checkpoint=dict(out_dir=str(out))).train()
    saved = out / 'work'
    assert sorted(p.name for p in saved.glob('*.pth')) == ['iter_2.pth', 'iter_4.pth']
    data = (saved / 'iter_4.pth').read_bytes()
    (saved / 'iter_4.pth').write_bytes(data[:len(data) // 2])  # cut off while written
    runner = make_runner(work, max_iters=6, max_keep=2, resume=True, checkpoint=dict(out_dir=str(out)))
    runner.train()
    log = read_log(runner)
    assert f'resuming from {saved / "iter_2.pth"}' in log and 'Iter(train) [3/6]' in log
    assert sorted(p.name for p in saved.glob('*.pth')) == ['iter_4.pth', 'iter_6.pth']  # iter_4 rewritten whole
    torch.load(saved / 'iter_4.pth', weights_only=True)


def test_resume_of_another_model_is_one_readable_error(tmp_path, make_runner, toy_model):
    make_runner(tmp_path, max_iters=2).train()
    with pytest.raises(Exception, match=r'does not fit the model(.|\n)*linear.weight'):
        make_runner(tmp_path, max_iters=4, resume=True, model=toy_model(width=6)).train()


def test_changed_lr_on_resume_is_logged(tmp_path, make_runner, read_log):
    make_runner(tmp_path, max_iters=2).train()
    runner = make_runner(tmp_path, max_iters=4, resume=True, lr=0.5)
    runner.train()
    assert 'replaces the config\'s learning rate (0.5 -> 0.01' in read_log(runner)


def test_non_finite_loss_stops_before_a_checkpoint_is_written(tmp_path, make_runner, toy_model):
    with pytest.raises(NonFiniteLossError, match='at iteration 2: loss=nan'):
        make_runner(tmp_path, max_iters=4, model=toy_model(nan_at=2)).train()
    assert not list(tmp_path.glob('iter_*.pth'))
