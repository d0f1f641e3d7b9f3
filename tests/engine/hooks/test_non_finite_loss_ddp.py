"""NonFiniteLossHook under DDP: a NaN on one rank stops every rank at the same iteration (two gloo processes)."""
import os
import subprocess
import sys

import pytest
import torch

# Rank 1's loss turns NaN at iteration 2. Each rank writes what it raised and exits 0, so torchrun never tears down
# a rank that is still writing; a rank left waiting in a collective fails at the process group's 60 s timeout and
# leaves no file.
SCRIPT = '''
import datetime
import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmext.engine.hooks import NonFiniteLossError


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode != 'loss':
            return out
        self.calls += 1
        loss = out.pow(2).mean()
        return dict(loss=loss * float('nan') if dist.get_rank() == 1 and self.calls >= 2 else loss)


class ToyData(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((4,), float(i) / 8))


work_dir = sys.argv[1]
dist.init_process_group('gloo', timeout=datetime.timedelta(seconds=60))
runner = Runner(
    model=ToyModel(), work_dir=work_dir, launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='gloo')),
    cfg=dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel', device_ids=None)),  # CPU: no device ids
    train_dataloader=dict(dataset=ToyData(), sampler=dict(type='InfiniteSampler', shuffle=False), batch_size=2,
                          num_workers=0, collate_fn=dict(type='default_collate')),
    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)), train_cfg=dict(by_epoch=False, max_iters=6),
    default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
    custom_hooks=[dict(type='NonFiniteLossHook')], default_scope='mmengine')
try:
    runner.train()
except NonFiniteLossError as e:
    with open(os.path.join(work_dir, f'stopped_rank{dist.get_rank()}.txt'), 'w') as f:
        f.write(str(e))
'''


def test_nan_on_one_rank_stops_both_ranks_before_its_checkpoint(tmp_path, free_port):
    if torch.cuda.is_available():
        pytest.skip('exercises the CPU (gloo) path')
    script = tmp_path / 'nan_on_rank1.py'
    script.write_text(SCRIPT)
    work_dir = tmp_path / 'work'
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(free_port()),
         str(script), str(work_dir)],
        cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]  # both ranks stopped cleanly
    stopped = {r: (work_dir / f'stopped_rank{r}.txt') for r in (0, 1)}
    assert all(p.is_file() for p in stopped.values())
    assert 'at iteration 2: loss=nan' in stopped[1].read_text()
    assert 'on another rank by iteration 2' in stopped[0].read_text()
    assert (work_dir / 'iter_1.pth').is_file() and not (work_dir / 'iter_2.pth').exists()
