"""Train a segmentor or detector from an OpenMMLab config (mmseg 1.x / mmdet 3.x style configs).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT] | --auto-resume] [--amp] [--cfg-options k=v ...]
    torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch     (or tools/dist_train.sh CONFIG N)

The Runner type and default scope come from the config, so mmseg and mmdet configs both work. Multi-process runs
without CUDA use gloo with BN instead of SyncBN (see :mod:`mmext.engine.dist`).

``--resume`` without a value resumes from the newest complete and finite checkpoint in the work dir (or under the
checkpoint hook's ``out_dir``) and is an error when there is none (a mistyped ``--work-dir`` must not train from
scratch); ``--auto-resume`` is for preemptible jobs that re-run one command: resume if there is a checkpoint, else
start, logging which. Every run is mmext's Runner (:class:`mmext.engine.runner.SafeRunner`): the safety hooks
(:data:`mmext.engine.hooks.TRAINING_HOOKS`), atomic checkpoints of finite states only, one run per work dir, and a
save-and-stop on SIGTERM / SIGUSR1 (exit status 143 / 138; ``--resume`` continues from that iteration).
"""
import argparse
import logging

import torch
from mmengine.config import Config
from mmengine.logging import print_log

import mmext  # noqa: F401  (registers mmext's components and makes mmseg/mmdet importable on mmcv-lite)
from mmext.checkpoint import checkpoint_candidates, checkpoint_folders
from mmext.engine.hooks import NothingToTrainError
from mmext.engine.runner import add_runner_args, build_runner, load_config
from mmext.engine.work_dir_lock import WorkDirBusyError
from mmext.quiet import quiet_upstream_warnings


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model from an OpenMMLab config')
    parser.add_argument('config', help='config file path')
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or with no value from the newest checkpoint in the work dir (an '
                             'error if there is none)')
    resume.add_argument('--auto-resume', action='store_true',
                        help='resume from the newest checkpoint in the work dir if there is one, else start from '
                             'iteration 0 (for preemptible jobs)')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (AmpOptimWrapper; needs CUDA)')
    return add_runner_args(parser).parse_args()


def enable_amp(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to mmengine's AmpOptimWrapper (fp16 autocast with dynamic loss scaling)."""
    if not torch.cuda.is_available():
        raise RuntimeError('--amp needs a CUDA device: mmengine 0.10.7\'s AmpOptimWrapper (fp16 autocast with loss '
                           'scaling) refuses to build on CPU. Train without --amp on CPU.')
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in the config.', logger='current', level=logging.WARNING)
        return
    if wrapper_type != 'OptimWrapper':
        raise ValueError(f'--amp works on optim_wrapper type OptimWrapper, the config has {wrapper_type!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def main() -> None:
    quiet_upstream_warnings()
    args = parse_args()
    try:
        cfg = load_config(args)
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        out_dir = (cfg.get('default_hooks') or {}).get('checkpoint', {}).get('out_dir')
        folders = checkpoint_folders(cfg.work_dir, out_dir)
        if not checkpoint_candidates(folders):
            raise SystemExit(f'--resume: no checkpoint to resume from in work dir {" or ".join(folders)} (no '
                             'last_checkpoint, iter_*.pth or epoch_*.pth). Check --work-dir, pass --resume CKPT, or '
                             'use --auto-resume to start from scratch when there is nothing to resume.')
        cfg.resume = True
        cfg.load_from = None
    elif args.auto_resume:
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    try:
        build_runner(cfg).train()
    except (NothingToTrainError, WorkDirBusyError) as e:
        raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
    main()
