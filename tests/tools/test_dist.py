"""Two-process CPU training and testing through tools/dist_train.sh and tools/dist_test.sh (torchrun, gloo)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmext.engine.dist import replace_sync_bn, setup_cpu_distributed

# Records, per rank, the images of every training batch and a checksum of the weights at the end.
PROBE = '''
import json
import os

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        with open(os.path.join(runner.work_dir, f'batches_rank{runner.rank}.jsonl'), 'a') as f:
            f.write(json.dumps([s.img_path for s in data_batch['data_samples']]) + '\\n')

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        total = sum(float(p.detach().double().sum()) for p in model.parameters())
        with open(os.path.join(runner.work_dir, f'weights_rank{runner.rank}.json'), 'w') as f:
            json.dump(dict(sum=total, wrapper=type(runner.model).__name__), f)
'''


def run_script(script: Path, *args: str, cwd: Path, port: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port), PYTHONPATH=str(cwd), OMP_NUM_THREADS='1')
    return subprocess.run(['bash', str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=400)


@pytest.mark.slow
def test_two_process_cpu_train_then_test(repo_root, write_tiny_seg_config, ade20k_samples, tmp_path, free_port):
    if torch.cuda.is_available():
        pytest.skip('exercises the CPU (gloo) path')
    (tmp_path / 'rank_probe.py').write_text(PROBE)
    cfg = write_tiny_seg_config(tmp_path / 'tiny_dist.py', ade20k_samples, max_iters=2, extra=(
        "custom_imports = dict(imports=['mmext', 'rank_probe'])\n"
        "custom_hooks = [dict(type='RankProbeHook')]"))
    work_dir = tmp_path / 'work'

    train = run_script(repo_root / 'tools' / 'dist_train.sh', str(cfg), '2', '--work-dir', str(work_dir),
                       cwd=tmp_path, port=free_port())
    output = train.stdout + train.stderr
    assert train.returncode == 0, output[-4000:]
    assert (work_dir / 'iter_2.pth').is_file()
    assert 'SyncBN setting(s) replaced by BN' in output

    batches = [[json.loads(line) for line in (work_dir / f'batches_rank{r}.jsonl').read_text().splitlines()]
               for r in (0, 1)]
    assert len(batches[0]) == len(batches[1]) == 2 and all(len(b) == 2 for b in batches[0] + batches[1])
    # InfiniteSampler hands rank r positions r, r + 2, ... of one shared permutation: the first images differ
    assert batches[0][0][0] != batches[1][0][0]
    assert batches[0] != batches[1]

    final = [json.loads((work_dir / f'weights_rank{r}.json').read_text()) for r in (0, 1)]
    assert final[0]['wrapper'] == final[1]['wrapper'] == 'MMDistributedDataParallel'
    assert final[0]['sum'] == final[1]['sum']  # gradients were averaged across the ranks

    test = run_script(repo_root / 'tools' / 'dist_test.sh', str(cfg), str(work_dir / 'iter_2.pth'), '2',
                      '--work-dir', str(tmp_path / 'test'), cwd=tmp_path, port=free_port())
    assert test.returncode == 0, (test.stdout + test.stderr)[-4000:]
    assert 'Iter(test) [2/2]' in test.stdout + test.stderr  # 3 images over 2 processes
    assert 'mIoU' in test.stdout + test.stderr


def test_replace_sync_bn_rewrites_nested_norm_configs():
    cfg = dict(backbone=dict(out_norm_cfg=dict(type='SyncBN', requires_grad=True)),
               heads=[dict(norm_cfg=dict(type='SyncBN')), dict(norm_cfg=dict(type='GN', num_groups=2))],
               other=(dict(type='MMSyncBN'),))
    assert replace_sync_bn(cfg) == 3
    assert cfg['backbone']['out_norm_cfg'] == dict(type='BN', requires_grad=True)
    assert [h['norm_cfg']['type'] for h in cfg['heads']] == ['BN', 'GN']
    assert cfg['other'][0]['type'] == 'BN'


def test_setup_cpu_distributed_leaves_single_process_alone():
    cfg = Config(dict(launcher='none', model=dict(norm_cfg=dict(type='SyncBN'))))
    assert setup_cpu_distributed(cfg) is False
    assert cfg.model.norm_cfg.type == 'SyncBN'  # mmengine's Runner reverts it itself for one process


def test_setup_cpu_distributed_refuses_unsupported_launcher():
    if torch.cuda.is_available():
        pytest.skip('CUDA runs leave the launcher to mmengine')
    with pytest.raises(RuntimeError, match="launcher='slurm'"):
        setup_cpu_distributed(Config(dict(launcher='slurm', model=dict())))
