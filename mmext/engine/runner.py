"""What every tool does before ``runner.train()`` / ``runner.test()``, written once.

``tools/train.py``, ``tools/test.py``, ``tools/eval_miou.py`` and :func:`mmext.apis.evaluate_segmentation` share
it: the common command-line options, loading the config with them applied (``--cfg-options``, the work dir default
``./work_dirs/CONFIG_NAME``, the launcher), and building the Runner with mmext's safe-checkpoint hook and the CPU
multi-process set-up (:mod:`mmext.engine.dist`).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import time

from mmengine.config import Config, DictAction
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import RUNNERS, DefaultScope
from mmengine.runner import Runner
from mmengine.visualization import Visualizer

from .dist import setup_cpu_distributed
from .hooks import ensure_weights_only_hook


def add_runner_args(parser: argparse.ArgumentParser, launcher: bool = True) -> argparse.ArgumentParser:
    """Add ``--work-dir`` and ``--cfg-options`` (and, with ``launcher``, ``--launcher`` and ``--local-rank``)."""
    parser.add_argument('--work-dir', help='directory for logs and outputs (default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_iters=1000 "model.backbone.arch=small"')
    if launcher:
        parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                            help='job launcher')
        # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead
        parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def default_work_dir(config: str | None) -> str:
    """``./work_dirs/<config file name without .py>``, mmseg's and mmdet's default."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config or 'run'))[0])


def load_config(args: argparse.Namespace) -> Config:
    """``Config.fromfile(args.config)`` with the options of :func:`add_runner_args` applied."""
    cfg = Config.fromfile(args.config)
    if getattr(args, 'launcher', None) is not None:
        cfg.launcher = args.launcher
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    return cfg


def _instance_taken(name: str) -> bool:
    return any(cls.check_instance_created(name) for cls in (MMLogger, Visualizer, MessageHub, DefaultScope))


def _unused(name: str, stamp: str = '') -> str:
    return next(f'{name}_{k}' for k in range(1, 10_000) if not _instance_taken(f'{name}_{k}{stamp}'))


def keep_runs_apart(cfg: Config) -> None:
    """Give this run its own logger and visualizer when an earlier run in this process holds their names.

    mmengine hands back an existing logger, visualizer or message hub of the same name with its old log file and
    ``save_dir``. mmseg's and mmdet's bases name every visualizer ``'visualizer'``, and the Runner names the rest
    ``CONFIG_TIMESTAMP``: without this, a second run in one process (a notebook, a test, :mod:`mmext.apis`) paints
    into the first run's folder, and one started within the same second also logs into the first run's file.
    """
    visualizer = cfg.get('visualizer')
    if isinstance(visualizer, dict) and visualizer.get('name') and _instance_taken(visualizer['name']):
        visualizer['name'] = _unused(visualizer['name'])
    if cfg.get('experiment_name') is None:
        stem = osp.splitext(osp.basename(cfg.filename or ''))[0]
        stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(time.time()))  # as the Runner stamps its name
        if _instance_taken(f'{stem}_{stamp}' if stem else stamp):
            cfg.experiment_name = _unused(stem or 'run', f'_{stamp}')  # the Runner appends _TIMESTAMP


def build_runner(cfg: Config) -> Runner:
    """The config's Runner (``runner_type`` or mmengine's), with :class:`~mmext.engine.hooks.WeightsOnlyCheckpointHook`
    added, the CPU multi-process set-up applied and a logger and visualizer of its own (:func:`keep_runs_apart`).
    Sets ``cfg.work_dir``'s default if the config has none."""
    if cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(cfg.filename)
    ensure_weights_only_hook(cfg)
    setup_cpu_distributed(cfg)
    keep_runs_apart(cfg)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
