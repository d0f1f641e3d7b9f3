"""ADE20K mIoU of a checkpoint: aAcc, mIoU, mAcc and per-class IoU/Acc, single-scale and (--tta) ms+flip.

    python tools/eval_miou.py CONFIG CHECKPOINT [--tta] [--out-json PATH] [--data-root DIR] [--cfg-options k=v ...]

Runs the Runner's test loop on the config's test split (ADE20K validation) with mmseg's IoUMetric, prints one table
(the means, then a row per class present in the ground truth or the predictions, a column pair per mode) and
writes every class of every mode to one JSON file (default: WORK_DIR/eval_miou.json). The Runner's own log goes to
its log file under WORK_DIR, only its warnings to the terminal. The output path is checked before the evaluation
(an --out-json that is an input, lies inside the test data, or exists without --overwrite is refused), and the
file is written under a temporary name and renamed when complete.
"""
import argparse
import contextlib
import io
import json
import os
import os.path as osp
import sys

from mmengine.utils import mkdir_or_exist

import mmext  # noqa: F401  (registers mmext's components and makes mmseg importable on mmcv-lite)
from mmext.apis import evaluate_segmentation
from mmext.datasets.paths import dataset_inputs
from mmext.engine.runner import add_runner_args, load_config
from mmext.fileio import atomic_write, check_outputs
from mmext.quiet import quiet_upstream_warnings


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='ADE20K mIoU with a per-class table')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--tta', action='store_true', help='also evaluate multi-scale + flip (the config\'s tta)')
    parser.add_argument('--out-json', help='where to write the results (default: WORK_DIR/eval_miou.json)')
    parser.add_argument('--data-root', help='dataset root, e.g. data/ade/ADEChallengeData2016')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out-json file')
    return add_runner_args(parser, launcher=False).parse_args()


def main() -> None:
    quiet_upstream_warnings()
    args = parse_args()
    cfg = load_config(args)
    if args.data_root is not None:
        cfg.test_dataloader.dataset.data_root = args.data_root

    out_json = args.out_json or osp.join(cfg.work_dir, 'eval_miou.json')
    check_writable(out_json)  # before the evaluation, not after it
    check_outputs({'--out-json': out_json}, {'CONFIG': args.config, 'CHECKPOINT': args.checkpoint,
                                             'test data': dataset_inputs(cfg.test_dataloader.dataset)},
                  allow_existing=args.overwrite or args.out_json is None)  # the default is this tool's own file

    report = dict(config=args.config, checkpoint=args.checkpoint, data_root=cfg.test_dataloader.dataset.data_root)
    for key, tta in (('single_scale', False), ('ms_flip', True))[:2 if args.tta else 1]:
        report[key] = quiet_evaluation(cfg, args.checkpoint, tta)

    print(format_table(report), flush=True)
    with atomic_write(out_json, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'results of all {len(report["single_scale"]["per_class"])} classes written to {out_json}; the full log '
          f'is under {cfg.work_dir}')


def quiet_evaluation(cfg, checkpoint: str, tta: bool) -> dict:
    """:func:`~mmext.apis.evaluate_segmentation` with the Runner's console log held back (its log file keeps all
    of it); its warnings and errors are passed on to stderr."""
    with contextlib.redirect_stdout(io.StringIO()) as console:  # the Runner's log handler writes to sys.stdout
        summary = evaluate_segmentation(cfg, checkpoint, tta=tta)
    for line in console.getvalue().splitlines():
        if ' - WARNING - ' in line or ' - ERROR - ' in line:
            print(line, file=sys.stderr)
    return summary


def format_table(report: dict) -> str:
    """One table for all modes: a line of means per mode, then IoU and Acc per mode for every class present in the
    ground truth or the predictions of any mode (the others are counted, and kept in the JSON file)."""
    modes = [report[key] for key in ('single_scale', 'ms_flip') if key in report]

    def fmt(value: float | None) -> str:
        return '-' if value is None else f'{value:.2f}'

    rows = [[mode['per_class'][i] for mode in modes] for i in range(len(modes[0]['per_class']))]
    present = [row for row in rows if any(r['IoU'] is not None for r in row)]
    width = max([len('class')] + [len(row[0]['class']) for row in present])
    lines = [f'{m["mode"]} on {m["num_images"]} images: aAcc {fmt(m["aAcc"])}  mIoU {fmt(m["mIoU"])}  '
             f'mAcc {fmt(m["mAcc"])}' for m in modes]
    lines.append(f'{"class":<{width}}' + ''.join(f'  {"IoU " + m["mode"]:>{len(m["mode"]) + 4}}  '
                                                   f'{"Acc " + m["mode"]:>{len(m["mode"]) + 4}}' for m in modes))
    for row in present:
        lines.append(f'{row[0]["class"]:<{width}}' + ''.join(
            f'  {fmt(r["IoU"]):>{len(m["mode"]) + 4}}  {fmt(r["Acc"]):>{len(m["mode"]) + 4}}'
            for r, m in zip(row, modes)))
    if len(present) < len(rows):
        lines.append(f'({len(rows) - len(present)} classes neither in the ground truth nor predicted: not shown)')
    return '\n'.join(lines)


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
