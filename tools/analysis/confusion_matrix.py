"""Pixel confusion matrix of a segmentation model's test predictions (mmseg's own tool is broken at 150 classes).

    python tools/test.py CONFIG CHECKPOINT --out work_dirs/pred          # one prediction PNG per test image
    python tools/analysis/confusion_matrix.py CONFIG work_dirs/pred --out-dir work_dirs/confusion [--top-k 10]

Writes ``confusion_matrix.npy`` / ``.csv`` (all classes, int64 pixel counts, rows = ground truth) and
``confusion_matrix.png`` (row-normalised, the classes present), and prints the most confused class pairs.
"""
import argparse
from pathlib import Path

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmext  # noqa: F401  (registers CheckedADE20KDataset)
from mmext.analysis.confusion_matrix import (
    confusion_from_prediction_dir,
    most_confused_pairs,
    plot_confusion,
    save_confusion,
)
from mmext.datasets.paths import dataset_inputs
from mmext.fileio import check_outputs
from mmext.quiet import quiet_upstream_warnings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pixel confusion matrix of test predictions')
    parser.add_argument('config', help='config whose test_dataloader.dataset holds the ground truth')
    parser.add_argument('prediction_dir', help='prediction PNGs written by tools/test.py --out DIR')
    parser.add_argument('--out-dir', default=None, help='where to write (default: PREDICTION_DIR/../confusion)')
    parser.add_argument('--overwrite', action='store_true', help='replace confusion_matrix.* files in --out-dir')
    parser.add_argument('--top-k', type=int, default=10, help='most confused pairs to print')
    parser.add_argument('--max-classes', type=int, default=30, help='classes in the picture (most pixels first)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    quiet_upstream_warnings()
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import DATASETS

    out_dir = Path(args.out_dir) if args.out_dir else Path(args.prediction_dir).resolve().parent / 'confusion'
    check_outputs({'--out-dir': [out_dir, *(out_dir / f'confusion_matrix.{s}' for s in ('npy', 'csv', 'png'))]},
                  {'CONFIG': args.config, 'PREDICTION_DIR': args.prediction_dir,
                   'test data': dataset_inputs(cfg.test_dataloader.dataset)},
                  allow_existing=args.overwrite or args.out_dir is None)  # the default is this tool's own folder
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    names = list(dataset.metainfo['classes'])
    matrix = confusion_from_prediction_dir(dataset, args.prediction_dir)
    paths = save_confusion(matrix, names, out_dir)
    paths['png'] = out_dir / 'confusion_matrix.png'
    shown = plot_confusion(matrix, names, paths['png'], args.max_classes)
    accuracy = matrix.trace() / max(matrix.sum(), 1) * 100
    print(f'{len(dataset)} images, {matrix.sum()} labelled pixels, pixel accuracy {accuracy:.1f}%; '
          f'picture of {len(shown)} classes present: {paths["png"]}; full matrix: {paths["npy"]}, {paths["csv"]}')
    for pair in most_confused_pairs(matrix, names, args.top_k):
        print(f"  {pair['gt']:>20} -> {pair['pred']:<20} {pair['pixels']:>10} px  "
              f"{pair['fraction'] * 100:5.1f}% of {pair['gt']}")
    return dict(matrix=matrix, paths=paths, shown=shown)


if __name__ == '__main__':
    main()
