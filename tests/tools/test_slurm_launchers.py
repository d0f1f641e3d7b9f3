"""tools/slurm_{train,test}.sh build the srun command lines they document (a stand-in srun prints its argv)."""
import os
import subprocess

import pytest


@pytest.fixture
def fake_srun(tmp_path):
    srun = tmp_path / 'srun'
    srun.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    srun.chmod(0o755)
    return {**os.environ, 'PATH': f'{tmp_path}:{os.environ["PATH"]}', 'GPUS': '4', 'SRUN_ARGS': '--qos=low -N1'}


@pytest.mark.parametrize('tool,args,expected', [
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'wd', '--amp'], ['train.py', 'cfg.py', '--work-dir=wd', '--amp']),
    ('slurm_test.sh', ['part', 'job', 'cfg.py', 'ck.pth', '--tta'], ['test.py', 'cfg.py', 'ck.pth', '--tta']),
])
def test_srun_command_line(repo_root, fake_srun, tool, args, expected):
    out = subprocess.run(['bash', str(repo_root / 'tools' / tool), *args], env=fake_srun, capture_output=True,
                         text=True, check=True).stdout.split('\n')
    argv = [a for a in out if a]
    assert argv[:7] == ['-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=4', '--ntasks-per-node=8',
                        '--cpus-per-task=5']
    assert '--kill-on-bad-exit=1' in argv and argv[argv.index('--qos=low'):][:2] == ['--qos=low', '-N1']
    script = next(i for i, a in enumerate(argv) if a.endswith('/' + expected[0]))
    assert argv[script + 1:] == expected[1:] + ['--launcher=slurm']
