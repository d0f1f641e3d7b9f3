"""A toy model, dataset and metric on mmengine's real Runner (mmext's SafeRunner by default), shared by the engine
tests: a run of a few iterations takes well under a second."""
import uuid
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmext.engine.runner import SafeRunner


class ToyModel(BaseModel):
    """Linear -> BatchNorm; the loss turns NaN from call ``nan_at`` on, the BN statistics Inf from ``inf_at``."""

    def __init__(self, width: int = 4, nan_at: int | None = None, inf_at: int | None = None):
        super().__init__()
        self.linear = nn.Linear(width, 2)
        self.norm = nn.BatchNorm1d(2)
        self.nan_at, self.inf_at = nan_at, inf_at
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            self.calls += 1
            if self.inf_at is not None and self.calls >= self.inf_at:
                self.norm.running_var.fill_(float('inf'))  # what lr=1e6 does to BN while the loss stays finite
        out = self.norm(self.linear(inputs))
        if mode == 'loss':
            loss = out.pow(2).mean() + self.linear.weight.pow(2).mean()
            if self.nan_at is not None and self.calls >= self.nan_at:
                loss = loss * float('nan')
            return dict(loss=loss)
        return [out]


class ToyData(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((4,), float(i) / 8) + torch.arange(4.) / 10)


class RisingMetric(BaseMetric):
    """``score`` = how many evaluations any instance has run in this session: every validation is a new best, in
    resumed runs too."""

    evaluations = 0

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        RisingMetric.evaluations += 1
        return dict(score=float(RisingMetric.evaluations))


def _make_runner(work_dir, max_iters=4, max_keep=1, resume=False, load_from=None, lr=0.01, model=None,
                 checkpoint=None, runner_cls=SafeRunner, val_interval=None, custom_hooks=None):
    checkpoint_cfg = dict(type='CheckpointHook', interval=2, by_epoch=False, max_keep_ckpts=max_keep,
                          **(checkpoint or {}))
    val = {}
    if val_interval is not None:
        val = dict(val_dataloader=dict(dataset=ToyData(), sampler=dict(type='DefaultSampler', shuffle=False),
                                       batch_size=4, num_workers=0, collate_fn=dict(type='default_collate')),
                   val_cfg=dict(), val_evaluator=[RisingMetric()])
    hooks = [dict(type='PreflightDataCheckHook', splits=())] + list(custom_hooks or [])
    return runner_cls(
        model=model or ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(), sampler=dict(type='InfiniteSampler', shuffle=False),
                              batch_size=2, num_workers=0, collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=val_interval or max_iters + 1),
        default_hooks=dict(checkpoint=checkpoint_cfg, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks, resume=resume, load_from=load_from, default_scope='mmengine',
        log_processor=dict(by_epoch=False),
        experiment_name=f'toy_{uuid.uuid4().hex}', **val)  # mmengine reuses loggers by name


@pytest.fixture(scope='session')
def make_runner() -> Callable[..., Runner]:
    """``make_runner(work_dir, max_iters=4, max_keep=1, resume=False, load_from=None, lr=0.01, model=None,
    checkpoint=None, runner_cls=SafeRunner, val_interval=None, custom_hooks=None)``: a toy run (batch 2, a
    checkpoint every 2 iterations, ``max_keep_ckpts=max_keep``; ``checkpoint`` adds CheckpointHook arguments such
    as ``save_best='score'``; ``val_interval`` adds a validation whose score rises every time)."""
    return _make_runner


@pytest.fixture(scope='session')
def toy_model() -> Callable[..., nn.Module]:
    """``toy_model(width=4, nan_at=None, inf_at=None)``: see :class:`ToyModel`."""
    return ToyModel


def run_log(runner: Runner) -> str:
    import os.path as osp
    return open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()


@pytest.fixture(scope='session')
def read_log() -> Callable[[Runner], str]:
    """``read_log(runner)``: the text of the run's log file."""
    return run_log
