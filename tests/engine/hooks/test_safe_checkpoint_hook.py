"""Crash-safe checkpoints, honest resume and the non-finite loss stop, on a real mmengine Runner with a toy model."""
import os
import os.path as osp
import uuid

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmext.checkpoint import CheckpointError
from mmext.engine.hooks import NonFiniteLossError, ensure_training_hooks, find_resumable_checkpoint
from mmext.engine.hooks import safe_checkpoint_hook as hook_module


class ToyModel(BaseModel):
    def __init__(self, width: int = 4, nan_at: int | None = None):
        super().__init__()
        self.linear = nn.Linear(width, 1)
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.linear(x)
        if mode == 'loss':
            self.calls += 1
            loss = out.pow(2).mean()
            if self.nan_at is not None and self.calls >= self.nan_at:
                loss = loss * float('nan')
            return dict(loss=loss)
        return out


class ToyData(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((4,), float(i) / 8))


def make_runner(work_dir, max_iters=4, max_keep=1, resume=False, load_from=None, lr=0.01, model=None):
    cfg = ensure_training_hooks(dict(custom_hooks=[]))
    cfg['custom_hooks'] = [h for h in cfg['custom_hooks'] if h['type'] != 'PreflightDataCheckHook']
    return Runner(
        model=model or ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(), sampler=dict(type='InfiniteSampler', shuffle=False),
                              batch_size=2, num_workers=0, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False,
                                           max_keep_ckpts=max_keep), logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=cfg['custom_hooks'], resume=resume, load_from=load_from,
        default_scope='mmengine', experiment_name=f'toy_{uuid.uuid4().hex}')  # mmengine reuses loggers by name


def test_kill_between_write_and_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    make_runner(tmp_path, max_iters=2).train()
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_2.pth')

    def killed(src, dst):
        if dst.endswith('iter_4.pth'):
            raise KeyboardInterrupt('killed before the rename')
        return os.rename(src, dst)
    monkeypatch.setattr(hook_module.os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        make_runner(tmp_path, max_iters=4, resume=True).train()
    # mmengine would already have deleted iter_2.pth (max_keep_ckpts=1) and written iter_4.pth in place
    assert (tmp_path / 'iter_2.pth').is_file() and not (tmp_path / 'iter_4.pth').exists()
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_2.pth')
    monkeypatch.undo()
    runner = make_runner(tmp_path, max_iters=4, resume=True)
    runner.train()
    assert runner.iter == 4 and (tmp_path / 'iter_4.pth').is_file() and not (tmp_path / 'iter_2.pth').exists()


def test_kill_while_deleting_old_checkpoints_keeps_the_new_one(tmp_path, monkeypatch):
    make_runner(tmp_path, max_iters=2).train()

    def killed(path):
        raise KeyboardInterrupt('killed while deleting')
    monkeypatch.setattr(hook_module.os, 'remove', killed)
    with pytest.raises(KeyboardInterrupt):
        make_runner(tmp_path, max_iters=4, resume=True).train()
    assert open(tmp_path / 'last_checkpoint').read() == str(tmp_path / 'iter_4.pth')
    assert find_resumable_checkpoint(str(tmp_path))[0] == str(tmp_path / 'iter_4.pth')


def test_resume_falls_back_to_the_newest_readable_checkpoint(tmp_path, capsys):
    make_runner(tmp_path, max_iters=4, max_keep=2).train()
    data = (tmp_path / 'iter_4.pth').read_bytes()
    (tmp_path / 'iter_4.pth').write_bytes(data[:len(data) // 2])  # cut off while written
    found, warnings = find_resumable_checkpoint(str(tmp_path))
    assert found == str(tmp_path / 'iter_2.pth')
    assert any('iter_4.pth' in w for w in warnings)
    runner = make_runner(tmp_path, max_iters=4, max_keep=2, resume=True)
    runner.train()
    assert runner.iter == 4
    (tmp_path / 'last_checkpoint').write_text('')
    found, warnings = find_resumable_checkpoint(str(tmp_path))
    assert found == str(tmp_path / 'iter_4.pth') and 'is empty' in warnings[0]


def test_resume_of_another_model_is_one_readable_error(tmp_path):
    make_runner(tmp_path, max_iters=2).train()
    with pytest.raises(CheckpointError, match=r'does not fit the model(.|\n)*linear.weight'):
        make_runner(tmp_path, max_iters=4, resume=True, model=ToyModel(width=6)).train()


def test_changed_lr_on_resume_is_logged(tmp_path, capsys):
    make_runner(tmp_path, max_iters=2).train()
    runner = make_runner(tmp_path, max_iters=4, resume=True, lr=0.5)
    runner.train()
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'replaces the config\'s learning rate (0.5 -> 0.01' in log


def test_load_from_with_nan_is_refused_naming_the_tensor(tmp_path):
    make_runner(tmp_path / 'a', max_iters=2).train()
    ckpt = torch.load(tmp_path / 'a' / 'iter_2.pth', weights_only=True)
    ckpt['state_dict']['linear.bias'][0] = float('nan')
    torch.save(ckpt, tmp_path / 'nan.pth')
    with pytest.raises(CheckpointError, match=r'NaN/Inf values in 1 tensor\(s\): linear.bias'):
        make_runner(tmp_path / 'b', max_iters=2, load_from=str(tmp_path / 'nan.pth')).train()


def test_non_finite_loss_stops_before_a_checkpoint_is_written(tmp_path):
    with pytest.raises(NonFiniteLossError, match='at iteration 2: loss=nan'):
        make_runner(tmp_path, max_iters=4, model=ToyModel(nan_at=2)).train()
    assert not list(tmp_path.glob('iter_*.pth'))
