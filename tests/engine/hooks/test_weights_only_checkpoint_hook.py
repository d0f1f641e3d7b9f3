"""mmengine's own training checkpoints under torch's weights_only loading: save, resume, load_from, legacy files."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmext.checkpoint import UnsafeCheckpointError, upgrade_training_checkpoint
from mmext.engine.hooks import TRAINING_HOOKS, WeightsOnlyCheckpointHook, ensure_training_hooks

_names = itertools.count()


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(torch.stack(inputs)).squeeze(-1)
        return dict(loss=((out - torch.stack(labels)) ** 2).mean()) if mode == 'loss' else out


class ToyDataset(Dataset):
    # numpy values in metainfo end up in meta.dataset_meta and in the message hub, as mmseg's palettes can
    metainfo = dict(classes=('a', 'b'), scale=np.float64(0.5), palette=np.array([[1, 2, 3]], dtype=np.uint8))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.0]), labels=torch.tensor(float(i)))


def _runner(work_dir, max_iters, hook=True, **kwargs) -> Runner:
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), experiment_name=f'weights_only_{next(_names)}', log_level='WARNING',
        train_dataloader=dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,
                              num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=[dict(type='WeightsOnlyCheckpointHook')] if hook else [], **kwargs)


def test_checkpoints_load_weights_only_and_resume_restores_iteration_and_message_hub(tmp_path):
    first = _runner(tmp_path, max_iters=2)
    first.train()
    losses = first.message_hub.get_scalar('train/loss').data[0].tolist()

    checkpoint = torch.load(tmp_path / 'iter_1.pth', map_location='cpu', weights_only=True)
    assert checkpoint['meta']['iter'] == 1
    WeightsOnlyCheckpointHook().after_load_checkpoint(None, checkpoint)
    hub = checkpoint['message_hub']
    assert isinstance(hub['log_scalars']['train/loss'], HistoryBuffer)
    assert type(hub['runtime_info']['eta']) is np.float64
    palette = checkpoint['meta']['dataset_meta']['palette']
    assert palette.dtype == np.uint8 and palette.tolist() == [[1, 2, 3]]

    resumed = _runner(tmp_path, max_iters=3, load_from=str(tmp_path / 'iter_1.pth'), resume=True)
    resumed.train()
    assert resumed.iter == 3
    history = resumed.message_hub.get_scalar('train/loss').data[0].tolist()
    # iteration 1 comes from the checkpoint; iteration 2 is recomputed from the restored weights, momentum,
    # scheduler and data position, so it matches the first run's
    assert len(history) == 3 and history[0] == losses[0]
    assert history[1] == pytest.approx(losses[1], rel=1e-6)


def test_load_from_decodes_meta_and_loads_weights(tmp_path):
    _runner(tmp_path / 'a', max_iters=1).train()
    runner = _runner(tmp_path / 'b', max_iters=1)
    checkpoint = runner.load_checkpoint(str(tmp_path / 'a' / 'iter_1.pth'))
    assert checkpoint['meta']['dataset_meta']['palette'].dtype == np.uint8
    assert torch.equal(runner.model.linear.weight, checkpoint['state_dict']['linear.weight'])


def test_legacy_checkpoint_gets_clear_error_then_trusted_or_upgrade_works(tmp_path):
    legacy_dir = tmp_path / 'legacy'
    _runner(legacy_dir, max_iters=1, hook=False).train()
    legacy = str(legacy_dir / 'iter_1.pth')

    with pytest.raises(UnsafeCheckpointError) as info:
        _runner(tmp_path / 'r1', max_iters=2, load_from=legacy, resume=True).train()
    message = str(info.value)
    assert legacy in message and 'HistoryBuffer' in message and 'Nothing from it was executed' in message
    assert f"'trusted://{legacy}'" in message and 'upgrade_training_checkpoint' in message

    with pytest.raises(UnsafeCheckpointError, match='saved without WeightsOnlyCheckpointHook'):
        _runner(legacy_dir, max_iters=2, resume=True).train()  # auto-resume finds the same file

    trusted = _runner(tmp_path / 'r2', max_iters=2, load_from=f'trusted://{legacy}', resume=True)
    trusted.train()
    assert trusted.iter == 2 and len(trusted.message_hub.get_scalar('train/loss').data[0]) == 2

    upgraded = upgrade_training_checkpoint(legacy, tmp_path / 'upgraded.pth')
    torch.load(upgraded, map_location='cpu', weights_only=True)
    resumed = _runner(tmp_path / 'r3', max_iters=2, load_from=upgraded, resume=True)
    resumed.train()
    assert resumed.iter == 2


def test_ensure_training_hooks_appends_each_once_without_mutating_callers_list():
    hooks = [dict(type='EMAHook')]
    cfg = Config(dict(custom_hooks=hooks))
    assert ensure_training_hooks(cfg) is cfg
    assert [h['type'] for h in cfg.custom_hooks] == ['EMAHook', *TRAINING_HOOKS]
    assert hooks == [dict(type='EMAHook')]
    ensure_training_hooks(cfg)
    assert len(cfg.custom_hooks) == 1 + len(TRAINING_HOOKS)

    assert ensure_training_hooks({})['custom_hooks'] == [dict(type=name) for name in TRAINING_HOOKS]
    for present in (dict(type=WeightsOnlyCheckpointHook), dict(type='mmext.WeightsOnlyCheckpointHook'),
                    WeightsOnlyCheckpointHook()):
        added = ensure_training_hooks({'custom_hooks': [present]})['custom_hooks']
        assert added[0] is present and len(added) == len(TRAINING_HOOKS)
