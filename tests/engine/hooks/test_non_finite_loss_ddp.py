"""NonFiniteLossHook under DDP: a NaN on one rank stops every rank at the same iteration (two gloo processes)."""
import os
import subprocess
import sys

import pytest
import torch

# Rank 1's loss turns NaN at iteration 2. Each rank writes what it raised and exits 0; a rank left waiting in a
# collective fails at the process group's 60 s timeout and leaves no file.
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


@pytest.mark.slow
def test_nan_on_one_rank_stops_both_ranks_before_its_checkpoint(tmp_path, free_port):
    if torch.cuda.is_available():
        pytest.skip('exercises the CPU (gloo) path')
    script = tmp_path / 'nan_on_rank1.py'
    script.write_text(SCRIPT)
    work_dir = tmp_path / 'work'
    # the two ranks started directly with torchrun's environment variables: no launcher process to import torch
    port = str(free_port())
    ranks = [subprocess.Popen(
        [sys.executable, str(script), str(work_dir)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=dict(os.environ, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1', MASTER_PORT=port,
                            WORLD_SIZE='2', RANK=str(r), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE='2')) for r in (0, 1)]
    try:
        outputs = [rank.communicate(timeout=300)[0] for rank in ranks]
    finally:
        for rank in ranks:
            rank.kill()  # only one still running after a timeout
    assert [rank.returncode for rank in ranks] == [0, 0], '\n'.join(o[-2000:] for o in outputs)  # stopped cleanly
    stopped = {r: (work_dir / f'stopped_rank{r}.txt') for r in (0, 1)}
    assert all(p.is_file() for p in stopped.values())
    assert 'at iteration 2: loss=nan' in stopped[1].read_text()
    assert 'on another rank by iteration 2' in stopped[0].read_text()
    assert (work_dir / 'iter_1.pth').is_file() and not (work_dir / 'iter_2.pth').exists()
