"""Browse what the training pipeline feeds the model: augmented image + label overlay, for N samples.

    python tools/analysis/browse_dataset.py CONFIG --out-dir work_dirs/browse [-n 20] [--split train|val|test]

Writes ``<image stem>_<index>.png`` per sample (mmseg's own browse_dataset.py crashes in OpenCV here). An --out-dir
that is, holds or lies inside the data, or holds files already (unless --overwrite), is refused first.
"""
import argparse
from pathlib import Path

import cv2
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmext  # noqa: F401  (registers CheckedADE20KDataset and mmext's transforms)
from mmext.analysis.browse import browse_samples
from mmext.datasets.paths import dataset_inputs
from mmext.fileio import atomic_path, check_outputs
from mmext.quiet import quiet_upstream_warnings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pictures of augmented training samples and their labels')
    parser.add_argument('config', help='config file')
    parser.add_argument('--out-dir', required=True, help='folder for the pictures')
    parser.add_argument('-n', '--num-samples', type=int, default=20, help='how many samples (from the first)')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train', help='which dataloader')
    parser.add_argument('--opacity', type=float, default=0.5, help='weight of the label colours, 0..1')
    parser.add_argument('--overwrite', action='store_true', help='let pictures replace files in --out-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> list[Path]:
    quiet_upstream_warnings()
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader:
        raise KeyError(f'{args.config} has no {args.split}_dataloader to browse')
    out_dir = Path(args.out_dir)
    existing = [p for p in out_dir.iterdir() if p.is_file()] if out_dir.is_dir() else []
    check_outputs({'--out-dir': [out_dir, *existing]},
                  {'CONFIG': args.config, f'{args.split} data': dataset_inputs(loader.dataset)},
                  allow_existing=args.overwrite)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import DATASETS

    dataset = DATASETS.build(loader.dataset)
    written = []
    for name, picture in browse_samples(dataset, args.num_samples, args.opacity):
        path = out_dir / f'{name}.png'
        with atomic_path(path) as temporary:
            if not cv2.imwrite(str(temporary), picture):
                raise OSError(f'could not write {path}')
        written.append(path)
    print(f'wrote {len(written)} pictures of the {args.split} pipeline ({len(dataset)} samples in all) to {out_dir}')
    return written


if __name__ == '__main__':
    main()
