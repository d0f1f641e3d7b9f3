"""Test (and evaluate) a checkpoint with an OpenMMLab config (mmseg 1.x / mmdet 3.x style configs).

    python tools/test.py CONFIG CHECKPOINT [--tta] [--out DIR|FILE.pkl] [--show-dir DIR] [--precision bf16]
        [--cfg-options k=v ...]
    torchrun --nproc_per_node N tools/test.py CONFIG CHECKPOINT --launcher pytorch  (or tools/dist_test.sh)

``--out`` takes a directory (segmentation: the test metric writes one prediction PNG per image, as mmseg's tool
does) or a ``.pkl`` file (any task: raw predictions dumped by mmengine's DumpResults, as mmdet's tool does).
An --out or --show-dir that is, holds or lies inside the config, the checkpoint or the test data (data_root,
image and annotation folders), or that holds files already (unless --overwrite), is refused before anything runs.
"""
import argparse
import inspect
import os.path as osp
import time
from pathlib import Path

from mmengine.config import Config
from mmengine.registry import HOOKS

import mmext  # noqa: F401  (registers mmext's components and makes mmseg/mmdet importable on mmcv-lite)
from mmext.apis import enable_tta
from mmext.apis.precision import add_precision_args, apply_inference_options, options_from_args
from mmext.checkpoint import check_checkpoint_fits
from mmext.datasets.decoding import IMAGE_SUFFIXES
from mmext.datasets.paths import dataset_inputs
from mmext.engine.runner import add_runner_args, build_runner, load_config
from mmext.fileio import check_outputs
from mmext.quiet import quiet_upstream_warnings


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model from an OpenMMLab config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='directory for prediction PNGs (segmentation) or a .pkl file for predictions')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--show-dir', help='directory where every image is saved painted with its prediction')
    parser.add_argument('--show-interval', type=int, default=1,
                        help='--show/--show-dir paint every N-th test batch (default 1: every image; mmseg and mmdet '
                             "hooks' own default is 50)")
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each shown image stays up')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (the config\'s tta_pipeline)')
    parser.add_argument('--overwrite', action='store_true',
                        help='let --out / --show-dir replace files that exist there (never the inputs)')
    add_precision_args(parser, forms=False)  # BN folding would have to follow the Runner's checkpoint loading
    return add_runner_args(parser).parse_args()


def enable_visualization(cfg: Config, show: bool, show_dir: str | None, wait_time: float, interval: int = 1) -> None:
    """Turn on the config's ``default_hooks.visualization`` (mmseg's or mmdet's hook) for ``--show``/``--show-dir``,
    painting every ``interval``-th test batch."""
    if interval < 1:
        raise ValueError(f'--show-interval must be a positive number of batches, got {interval}')
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise KeyError('--show/--show-dir need default_hooks.visualization in the config, e.g. '
                       "visualization=dict(type='SegVisualizationHook')")
    hook['draw'] = True
    hook['interval'] = interval  # 1: every test image, not the hooks' default of every 50th (none on small sets)
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        with HOOKS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
            hook_cls = registry.get(hook['type'])
        if 'test_out_dir' in inspect.signature(hook_cls).parameters:
            hook['test_out_dir'] = show_dir  # mmdet's DetVisualizationHook
        else:
            cfg.visualizer['save_dir'] = show_dir  # mmseg's SegVisualizationHook draws through the visualizer


def painted_dir(cfg: Config, show_dir: str, timestamp: str) -> Path:
    """Where the hook writes: mmdet's joins a relative ``test_out_dir`` to ``work_dir/<timestamp>``."""
    if 'test_out_dir' in cfg.default_hooks.visualization and not osp.isabs(show_dir):
        return Path(cfg.work_dir, timestamp, show_dir)
    return Path(show_dir)


def count_images(folder: Path, since: float) -> int:
    """Image files under ``folder`` written at or after ``since`` (a ``time.time()``)."""
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES and p.stat().st_mtime >= since)


def check_test_outputs(cfg: Config, args: argparse.Namespace) -> None:
    """Refuse, before the Runner is built, an ``--out`` / ``--show-dir`` that is, holds or lies inside the config,
    the checkpoint or the test data, or that holds files already (unless ``--overwrite``): the metric and the
    visualizer write one file per image name there."""
    outputs = {}
    for flag, path in (('--out', args.out), ('--show-dir', args.show_dir)):
        if flag == '--show-dir' and path and 'test_out_dir' in cfg.default_hooks.visualization \
                and not osp.isabs(path):
            continue  # mmdet's hook writes under work_dir/<timestamp>/, a new folder every run
        if path:
            outputs[flag] = [path, *(p for p in Path(path).rglob('*') if p.is_file())] if osp.isdir(path) else path
    check_outputs(outputs, {'CONFIG': args.config, 'CHECKPOINT': args.checkpoint,
                            'test data': dataset_inputs((cfg.get('test_dataloader') or {}).get('dataset'))},
                  allow_existing=args.overwrite)


def add_output(cfg: Config, out: str) -> None:
    """Save predictions: a ``.pkl`` file via AtomicDumpResults, otherwise PNGs from the test metric's ``output_dir``."""
    if out.endswith(('.pkl', '.pickle')):
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type='AtomicDumpResults', out_file_path=out)]
        return
    metric_type = '' if isinstance(cfg.test_evaluator, list) else str(cfg.test_evaluator.get('type', ''))
    if not metric_type.endswith('IoUMetric'):
        raise ValueError('--out DIR needs a single mmseg IoUMetric (it writes the PNGs), the config has '
                         f'{cfg.test_evaluator}; pass a .pkl file instead')
    cfg.test_evaluator['output_dir'] = out
    cfg.test_evaluator['keep_results'] = True


def main() -> None:
    quiet_upstream_warnings()
    args = parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show, args.show_dir, args.wait_time, args.show_interval)
    check_test_outputs(cfg, args)
    if args.tta:
        enable_tta(cfg)
    if args.out is not None:
        add_output(cfg, args.out)
    runner = build_runner(cfg)
    check_checkpoint_fits(runner.model, args.checkpoint)  # the Runner itself loads load_from non-strictly
    options = options_from_args(args)
    if options.precision != 'fp32':  # wraps forwards only: the Runner's loading of load_from is unaffected
        apply_inference_options(runner.model, options)
    start = time.time() - 1  # file systems with 1 s timestamps
    runner.test()
    if args.show_dir:
        folder = painted_dir(cfg, args.show_dir, runner.timestamp)
        every = 'every image' if args.show_interval == 1 else f'one batch in {args.show_interval}'
        runner.logger.info(f'--show-dir: wrote {count_images(folder, start)} painted images ({every}) under {folder}')


if __name__ == '__main__':
    main()
