"""SafeRunner's run-level guarantees on a toy model: the hook list, one run per work dir, preemption, the end of the
schedule on resume."""
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook

from mmext.engine.hooks import TRAINING_HOOKS, NothingToTrainError, Preempted
from mmext.engine.work_dir_lock import LOCK_NAME, WorkDirBusyError


def test_safe_runner_adds_every_safety_hook_once(tmp_path, make_runner):
    runner = make_runner(tmp_path)
    names = [type(h).__name__ for h in runner.hooks]
    assert all(names.count(name) == 1 for name in TRAINING_HOOKS), names
    preflight = next(h for h in runner.hooks if type(h).__name__ == 'PreflightDataCheckHook')
    assert preflight.splits == ()  # the config's own entry is kept, not duplicated


def test_a_second_run_into_a_busy_work_dir_refuses_naming_the_first(tmp_path, make_runner):
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        tmp_path.mkdir(exist_ok=True)
        (tmp_path / LOCK_NAME).write_text(json.dumps(dict(pid=other.pid, host=socket.gethostname(),
                                                          started='2026-01-01 00:00:00')))
        with pytest.raises(WorkDirBusyError, match=rf'in use by another training run: pid {other.pid} on host '
                                                   rf'{socket.gethostname()}'):
            make_runner(tmp_path, max_iters=2).train()
        assert not list(tmp_path.glob('*.pth'))
    finally:
        other.kill()
        other.wait()
    # the same lock, now left by a dead process: recognised, replaced with a line, and released after the run
    runner = make_runner(tmp_path, max_iters=2)
    runner.train()
    assert f'pid {other.pid} on host {socket.gethostname()}, which is no longer running; taking it over' in open(
        os.path.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert (tmp_path / 'iter_2.pth').is_file() and not (tmp_path / LOCK_NAME).exists()


class _Signal(Hook):
    def __init__(self, at: int, signum: int) -> None:
        self.at, self.signum = at, signum

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_saves_the_current_iteration_and_exits_non_zero(tmp_path, make_runner, read_log, signum):
    runner = make_runner(tmp_path, max_iters=6, max_keep=2, custom_hooks=[_Signal(3, signum)])
    handler = signal.getsignal(signum)
    with pytest.raises(Preempted) as exc:
        runner.train()
    assert exc.value.code == 128 + signum
    log = read_log(runner)
    assert f'Preempted ({signal.Signals(signum).name}) after iteration 3: saved {tmp_path / "iter_3.pth"}' in log
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_3.pth')
    assert signal.getsignal(signum) == handler and not (tmp_path / LOCK_NAME).exists()  # restored, released
    resumed = make_runner(tmp_path, max_iters=6, max_keep=2, resume=True)
    resumed.train()
    assert 'Iter(train) [4/6]' in read_log(resumed) and resumed.iter == 6


def test_resuming_past_the_end_of_the_schedule(tmp_path, make_runner, read_log):
    make_runner(tmp_path, max_iters=4).train()
    auto = make_runner(tmp_path, max_iters=2, resume=True)
    auto.train()  # re-running a finished job's command: a clear warning, no failure
    assert f'Resume: {tmp_path / "iter_4.pth"} is at iteration 4 and the schedule ends at 2' in read_log(auto)
    assert 'Training is already complete; nothing to do.' in read_log(auto)
    with pytest.raises(NothingToTrainError, match=r'train_cfg.max_iters=4.*--cfg-options train_cfg.max_iters=8'):
        make_runner(tmp_path, max_iters=4, resume=True, load_from=str(tmp_path / 'iter_4.pth')).train()


EVIL = "x = __import__('os').system('touch MARKER')"


def test_resume_never_executes_meta_config(tmp_path, make_runner, read_log, monkeypatch):
    """BAD 1: mmengine's Runner.resume passes checkpoint['meta']['config'] to Config.fromstring, which runs it."""
    make_runner(tmp_path / 'w', max_iters=2).train()
    ckpt = torch.load(tmp_path / 'w' / 'iter_2.pth', weights_only=True)
    ckpt['meta']['config'] = f'gpu_ids = [0]\n{EVIL}'
    torch.save(ckpt, tmp_path / 'evil.pth')
    torch.load(tmp_path / 'evil.pth', weights_only=True)  # passes torch's weights_only check
    monkeypatch.chdir(tmp_path)
    runner = make_runner(tmp_path / 'w', max_iters=3, resume=True, load_from=str(tmp_path / 'evil.pth'))
    runner.train()
    assert not (tmp_path / 'MARKER').exists() and runner.iter == 3
    assert (f"evil.pth['meta']['config']: dropped 1 statement(s) that are not literal assignments (line 2: {EVIL}); "
            'nothing from it was executed') in read_log(runner)
