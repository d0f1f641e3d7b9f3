"""`make demo`: train a small UperNet-InceptionNeXt on CPU on generated ADE20K-layout scenes, evaluate, draw.

Steps: write the synthetic dataset (``tools/synthetic_ade20k.py``) under ``<work-dir>/data``, train
``configs/demo/upernet_inceptionnext_atto_synthetic.py`` with mmext's Runner (built by
:func:`mmext.engine.runner.build_runner`, as every tool's), evaluate on the validation split with mmext's
PerClassIoUMetric (mmseg's IoUMetric whose logged table lists only the classes present), and save
input / ground truth / prediction of one validation image as ``<work-dir>/demo.png``. The terminal gets a progress
bar, warnings and the result (mIoU, mAcc, aAcc against the chance level of the classes present); the full log is
``<work-dir>/<timestamp>/<timestamp>.log`` and the per-class numbers of all 150 classes ``<work-dir>/metrics.json``.

    python tools/demo_train.py [--work-dir work_dirs/demo] [--iters 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from synthetic_ade20k import chance_miou, class_pixel_counts, generate_synthetic_ade20k  # sibling tools/ module
from tqdm import tqdm

from mmext.engine.runner import build_runner
from mmext.quiet import HarmlessLogFilter, quiet_upstream_warnings
from mmext.visualization import draw_prediction

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / 'configs' / 'demo' / 'upernet_inceptionnext_atto_synthetic.py'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo', help='logs, checkpoint, data/ and demo.png go here')
    parser.add_argument('--iters', type=int, default=None, help='training iterations (default: the config\'s)')
    parser.add_argument('--seed', type=int, default=0, help='seeds both the generated data and the training')
    parser.add_argument('--num-train', type=int, default=200, help='generated training scenes')
    parser.add_argument('--num-val', type=int, default=20, help='generated validation scenes')
    parser.add_argument('--batch-size', type=int, default=None, help='training batch (default: the config\'s; >= 2)')
    parser.add_argument('--config', default=str(DEFAULT_CONFIG))
    return parser.parse_args(argv)


def build_config(config: str | Path, work_dir: Path, data_root: Path, iters: int | None = None, seed: int = 0,
                 batch_size: int | None = None) -> Config:
    """The demo config pointed at ``data_root`` and ``work_dir``; ``iters`` and ``batch_size`` override its own."""
    cfg = Config.fromfile(str(config))
    if batch_size is not None:
        if batch_size < 2:
            raise ValueError(f'--batch-size must be at least 2 (BatchNorm in training), got {batch_size}')
        cfg.train_dataloader.batch_size = batch_size
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=seed)
    cfg.val_evaluator = cfg.test_evaluator = dict(cfg.val_evaluator, type='PerClassIoUMetric')
    cfg.default_hooks.pop('visualization', None)  # the demo draws its own picture; an idle hook only warns
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(data_root)
    if iters is not None:
        if iters < 1:
            raise ValueError(f'--iters must be positive, got {iters}')
        cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = cfg.default_hooks.checkpoint.interval = iters
        for scheduler in cfg.param_scheduler:
            scheduler.end = min(scheduler.end, iters) if scheduler.begin == 0 else iters
            scheduler.begin = min(scheduler.begin, scheduler.end - 1)
    return cfg


class ProgressBarHook(Hook):
    """A tqdm bar over the training iterations (loss in its postfix), for a console that shows no log lines."""

    priority = 'VERY_LOW'

    def __init__(self, stream=None) -> None:
        self.stream = stream
        self.bar: tqdm | None = None

    def before_train(self, runner) -> None:
        self.bar = tqdm(total=runner.max_iters, initial=runner.iter, desc='training', unit='it', file=self.stream,
                        dynamic_ncols=True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.bar.update(1)
        if outputs and 'loss' in outputs:
            loss = outputs['loss']
            self.bar.set_postfix(loss=f'{float(loss.detach() if torch.is_tensor(loss) else loss):.3f}', refresh=False)

    def after_train(self, runner) -> None:
        self.bar.close()


def quiet_runner(cfg: Config) -> Runner:
    """Build the Runner with its console handler at WARNING (less :data:`mmext.quiet.HARMLESS_LOG_WARNINGS`): INFO lines
    (environment, config, losses, the per-class table) go to the log file only. mmengine binds the console
    handler to ``sys.stdout`` while building, so build with a throwaway stdout, then point it back at the real one."""
    with contextlib.redirect_stdout(io.StringIO()):
        runner = build_runner(cfg)  # mmext's Runner: the safety hooks, atomic checkpoints, the work dir lock
    for handler in runner.logger.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setStream(sys.stdout)
            handler.setLevel(logging.WARNING)
            handler.addFilter(HarmlessLogFilter())
    runner.register_hook(ProgressBarHook())
    return runner


def draw_val_prediction(runner: Runner, index: int = 0) -> np.ndarray:
    """Input, ground truth and the trained model's prediction for validation image ``index``, as one BGR image."""
    data = runner.val_dataloader.dataset[index]
    runner.model.eval()
    with torch.no_grad():
        result = runner.model.test_step(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]))[0]
    image = cv2.imread(result.img_path)
    gt = result.gt_sem_seg.data[0].numpy()
    pred = result.pred_sem_seg.data[0].numpy()
    return draw_prediction(image, pred, gt, opacity=1.)


def main(argv: list[str] | None = None) -> dict:
    """Run the demo; returns ``mIoU``, ``mAcc``, ``aAcc`` (%), the ``chance`` levels, ``picture`` and ``seconds``."""
    args = parse_args(argv)
    quiet_upstream_warnings()
    start = time.perf_counter()
    work_dir = Path(args.work_dir).resolve()
    data_root = generate_synthetic_ade20k(work_dir / 'data', args.num_train, args.num_val, seed=args.seed)
    cfg = build_config(args.config, work_dir, data_root, args.iters, args.seed, args.batch_size)
    runner = quiet_runner(cfg)
    print(f'mmext demo: training UperNet-InceptionNeXt-atto on {args.num_train} generated scenes on CPU; full log: '
          f'{runner.log_dir}/{runner.timestamp}.log')
    runner.train()  # validates once at the end of training (val_interval == max_iters)
    metrics = {key: float(runner.message_hub.get_scalar(f'val/{key}').current()) for key in ('mIoU', 'mAcc', 'aAcc')}
    (work_dir / 'metrics.json').write_text(json.dumps(runner.val_evaluator.metrics[0].summary, indent=1))
    picture = work_dir / 'demo.png'
    cv2.imwrite(str(picture), draw_val_prediction(runner))
    chance = chance_miou(class_pixel_counts(data_root / 'annotations' / 'validation'))
    summary = dict(**metrics, chance=chance, picture=str(picture), seconds=time.perf_counter() - start)
    per_class = runner.val_evaluator.metrics[0].summary['per_class']
    present = [row for row in per_class if row['IoU'] is not None]
    table = '\n'.join(f"    {row['class']:<14} IoU {row['IoU']:5.1f}  Acc "
                      f"{'  n/a' if row['Acc'] is None else format(row['Acc'], '5.1f')}" for row in present)
    print(f"\nmmext demo: UperNet-InceptionNeXt-atto, {runner.train_loop.max_iters} iterations on CPU, "
          f"{summary['seconds']:.0f} s\n"
          f"  validation ({args.num_val} scenes, {chance['num_classes_present']} classes present): "
          f"mIoU {metrics['mIoU']:.1f}  mAcc {metrics['mAcc']:.1f}  aAcc {metrics['aAcc']:.1f}\n"
          f"  chance mIoU: {chance['uniform']:.1f} (uniform over the classes present), "
          f"{chance['majority']:.1f} (always the most frequent class)\n"
          f"  per class ({len(present)} classes in ground truth or prediction; {len(per_class) - len(present)} "
          f"others omitted, all {len(per_class)} in {work_dir / 'metrics.json'}):\n{table}\n"
          f"  picture (input | ground truth | prediction): {picture}")
    return summary


if __name__ == '__main__':
    main()
