"""ADE20K mIoU of a checkpoint: aAcc, mIoU, mAcc and per-class IoU/Acc, single-scale and (--tta) ms+flip.

    python tools/eval_miou.py CONFIG CHECKPOINT [--tta] [--out-json PATH] [--data-root DIR] [--cfg-options k=v ...]

Runs the Runner's test loop on the config's test split (ADE20K validation) with mmseg's IoUMetric, prints a table
per mode and writes them all to one JSON file (default: WORK_DIR/eval_miou.json). The output path is checked
before the evaluation, and the tables are printed before the file is written.
"""
import argparse
import json
import os
import os.path as osp

from mmengine.utils import mkdir_or_exist

import mmext  # noqa: F401  (registers mmext's components and makes mmseg importable on mmcv-lite)
from mmext.apis import evaluate_segmentation, format_seg_results
from mmext.engine.runner import add_runner_args, load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='ADE20K mIoU with a per-class table')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--tta', action='store_true', help='also evaluate multi-scale + flip (the config\'s tta)')
    parser.add_argument('--out-json', help='where to write the results (default: WORK_DIR/eval_miou.json)')
    parser.add_argument('--data-root', help='dataset root, e.g. data/ade/ADEChallengeData2016')
    return add_runner_args(parser, launcher=False).parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    if args.data_root is not None:
        cfg.test_dataloader.dataset.data_root = args.data_root

    out_json = args.out_json or osp.join(cfg.work_dir, 'eval_miou.json')
    check_writable(out_json)  # before the evaluation, not after it

    report = dict(config=args.config, checkpoint=args.checkpoint, data_root=cfg.test_dataloader.dataset.data_root,
                  single_scale=evaluate_segmentation(cfg, args.checkpoint))
    if args.tta:
        report['ms_flip'] = evaluate_segmentation(cfg, args.checkpoint, tta=True)

    for key in ('single_scale', 'ms_flip'):
        if key in report:
            print(format_seg_results(report[key]), end='\n\n', flush=True)
    with open(out_json, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'results written to {out_json}')


def check_writable(path: str) -> None:
    """Create ``path``'s folder and make sure the file can be written; raise ``SystemExit`` naming it if not."""
    folder = osp.dirname(osp.abspath(path))
    try:
        mkdir_or_exist(folder)
    except OSError as e:
        raise SystemExit(f'--out-json {path}: cannot create folder {folder} ({e})') from None
    if osp.isdir(path):
        raise SystemExit(f'--out-json {path} is a directory; give a file name')
    if not os.access(folder, os.W_OK) or (osp.exists(path) and not os.access(path, os.W_OK)):
        raise SystemExit(f'--out-json {path} is not writable')


if __name__ == '__main__':
    main()
