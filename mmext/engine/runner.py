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

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

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


def build_runner(cfg: Config) -> Runner:
    """The config's Runner (``runner_type`` or mmengine's), with :class:`~mmext.engine.hooks.WeightsOnlyCheckpointHook`
    added and the CPU multi-process set-up applied. Sets ``cfg.work_dir``'s default if the config has none."""
    if cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(cfg.filename)
    ensure_weights_only_hook(cfg)
    setup_cpu_distributed(cfg)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
