"""mmext's Runner, and what every tool does before ``runner.train()`` / ``runner.test()``, written once.

:class:`SafeRunner` is mmengine's Runner with mmext's run-safety guarantees; the configs select it
(``runner_type='SafeRunner'`` in ``configs/_base_/mmext_runtime.py``, so mmseg's and mmdet's own
``tools/train.py`` build it too) and :func:`build_runner` builds it for every mmext tool and API.
``tools/train.py``, ``tools/test.py``, ``tools/demo_train.py``, ``tools/eval_miou.py`` and
:func:`mmext.apis.evaluate_segmentation` share the rest: the common command-line options, loading the config with
them applied (``--cfg-options`` checked against the config's types, the work dir default
``./work_dirs/CONFIG_NAME``, the launcher), and the CPU multi-process set-up (:mod:`mmext.engine.dist`).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import time
from typing import Any

import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.visualization import Visualizer

from mmext.compat.upstream import stop_dataloader_workers
from mmext.registry import RUNNERS

from .dist import setup_cpu_distributed
from .hooks import ensure_training_hooks
from .preemption import preemption_signals
from .save import save_checkpoint_atomic
from .work_dir_lock import work_dir_lock


class ConfigTextOnce(Config):
    """A ``Config`` that formats its text once per content. mmengine's Runner asks for ``pretty_text`` (a yapf pass:
    a tenth of a second to a second) to log the config, to dump it, for the visualizer and for every checkpoint's
    meta; this one formats again only after the config changed."""

    @property
    def pretty_text(self) -> str:
        content = repr(self.to_dict())
        cached = self.__dict__.get('_mmext_text')
        if cached is None or cached[0] != content:
            cached = (content, super().pretty_text)
            object.__setattr__(self, '_mmext_text', cached)  # Config's own __setattr__ writes config keys
        return cached[1]

    @classmethod
    def of(cls, cfg: Any) -> Any:
        """``cfg`` as a :class:`ConfigTextOnce` sharing its contents (anything else unchanged)."""
        if not isinstance(cfg, Config) or isinstance(cfg, cls):
            return cfg
        other = cls.__new__(cls)
        other.__dict__.update(cfg.__dict__)
        return other


@RUNNERS.register_module()
class SafeRunner(Runner):
    """mmengine's ``Runner`` (same arguments) with mmext's run-safety guarantees, each enforced in one place:

    - the safety hooks (:data:`mmext.engine.hooks.TRAINING_HOOKS`) are added to ``custom_hooks`` when missing
      (:func:`~mmext.engine.hooks.ensure_training_hooks`);
    - every checkpoint it saves goes through :func:`~mmext.engine.save.save_checkpoint_atomic` (finite state
      only, written under a temporary name and renamed when complete);
    - ``train()`` holds the work dir's lock (:func:`~mmext.engine.work_dir_lock.work_dir_lock`: a second run
      into it refuses, naming this one's pid and host) and records SIGTERM / SIGUSR1
      (:func:`~mmext.engine.preemption.preemption_signals`), on which :class:`~mmext.engine.hooks.PreemptionHook`
      saves and stops;
    - ``train()``, ``val()`` and ``test()`` stop their DataLoader worker processes when they return
      (:func:`~mmext.compat.upstream.stop_dataloader_workers`): left to the garbage collector, each worker costs
      the calling process a 5 s wait (a notebook, a test, :mod:`mmext.apis`);
    - its config formats its text once (:class:`ConfigTextOnce`), not at every log, dump and checkpoint.

    Checkpoint reads need nothing here: importing mmext routes every mmengine read through
    :func:`mmext.checkpoint.read_checkpoint`.
    """

    def __init__(self, *args: Any, custom_hooks: list | None = None, cfg: Any = None, **kwargs: Any) -> None:
        custom_hooks = ensure_training_hooks({'custom_hooks': custom_hooks})['custom_hooks']
        super().__init__(*args, custom_hooks=custom_hooks, cfg=ConfigTextOnce.of(cfg), **kwargs)

    def train(self) -> nn.Module:
        try:
            with work_dir_lock(self.work_dir), preemption_signals():
                return super().train()
        finally:
            stop_dataloader_workers(self)

    def val(self) -> dict:
        try:
            return super().val()
        finally:
            stop_dataloader_workers(self)

    def test(self) -> dict:
        try:
            return super().test()
        finally:
            stop_dataloader_workers(self)

    def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
        save_checkpoint_atomic(self, out_dir, filename, *args, **kwargs)

    save_checkpoint.mmext_atomic = True


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` for ``--cfg-options``, with a one-line error for an option without ``=``."""

    def __call__(self, parser, namespace, values, option_string=None):
        for value in values:
            if '=' not in value:
                parser.exit(2, f'{parser.prog}: error: {option_string} {value!r}: expected KEY=VALUE, e.g. '
                               f'{value}=<value> (train_cfg.max_iters=1000)\n')
        super().__call__(parser, namespace, values, option_string)


def add_runner_args(parser: argparse.ArgumentParser, launcher: bool = True) -> argparse.ArgumentParser:
    """Add ``--work-dir`` and ``--cfg-options`` (and, with ``launcher``, ``--launcher`` and ``--local-rank``)."""
    parser.add_argument('--work-dir', help='directory for logs and outputs (default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
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


_MISSING = object()


def _config_value(cfg: Config, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, (dict, Config)) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def check_cfg_options(cfg: Config, options: dict) -> None:
    """Refuse a ``--cfg-options`` value whose type cannot replace the config's: a word where the config has a
    number or a boolean (``train_cfg.max_iters=abc``). Raises ``ValueError`` naming the key, the value and the
    fix in one line."""
    for key, value in options.items():
        old = _config_value(cfg, key)
        if old is _MISSING or old is None or not isinstance(value, str):
            continue
        if isinstance(old, bool):
            kind, example = 'True or False', str(old)
        elif isinstance(old, int):
            kind, example = 'an integer', str(old)
        elif isinstance(old, float):
            kind, example = 'a number', repr(old)
        else:
            continue
        raise ValueError(f'--cfg-options {key}={value}: {key} takes {kind} (the config has {old!r}); write e.g. '
                         f'{key}={example}')


def load_config(args: argparse.Namespace) -> Config:
    """``Config.fromfile(args.config)`` with the options of :func:`add_runner_args` applied.

    Raises ``ValueError`` (one line naming the option, the value and the fix) for a ``--cfg-options`` value of
    the wrong type or a ``--work-dir`` that is a file.
    """
    if args.work_dir is not None and osp.exists(args.work_dir) and not osp.isdir(args.work_dir):
        raise ValueError(f'--work-dir {args.work_dir} is a file, not a directory: pass a directory for logs and '
                         'checkpoints (it is created if missing)')
    cfg = Config.fromfile(args.config)
    if getattr(args, 'launcher', None) is not None:
        cfg.launcher = args.launcher
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
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
    """The Runner of every mmext tool: :class:`SafeRunner` (or the config's ``runner_type``, given the safety hooks
    too), with the CPU multi-process set-up applied and a logger and visualizer of its own
    (:func:`keep_runs_apart`). Sets ``cfg.work_dir``'s default if the config has none."""
    if cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(cfg.filename)
    setup_cpu_distributed(cfg)
    keep_runs_apart(cfg)
    if cfg.get('runner_type', 'Runner') in ('Runner', 'SafeRunner', SafeRunner):
        return SafeRunner.from_cfg(cfg)
    return RUNNERS.build(ensure_training_hooks(cfg))
