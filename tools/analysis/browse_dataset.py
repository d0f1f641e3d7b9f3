"""Browse what the training pipeline feeds the model: augmented image + label overlay, for N samples.

    python tools/analysis/browse_dataset.py CONFIG --out-dir work_dirs/browse [-n 20] [--split train|val|test]

Writes ``<image stem>_<index>.png`` per sample (mmseg's own browse_dataset.py crashes in OpenCV here).
"""
import argparse
from pathlib import Path

import cv2
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmext  # noqa: F401  (registers CheckedADE20KDataset and mmext's transforms)
from mmext.analysis.browse import browse_samples


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pictures of augmented training samples and their labels')
    parser.add_argument('config', help='config file')
    parser.add_argument('--out-dir', required=True, help='folder for the pictures')
    parser.add_argument('-n', '--num-samples', type=int, default=20, help='how many samples (from the first)')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train', help='which dataloader')
    parser.add_argument('--opacity', type=float, default=0.5, help='weight of the label colours, 0..1')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None) -> list[Path]:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    loader = cfg.get(f'{args.split}_dataloader')
    if not loader:
        raise KeyError(f'{args.config} has no {args.split}_dataloader to browse')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import DATASETS

    dataset = DATASETS.build(loader.dataset)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, picture in browse_samples(dataset, args.num_samples, args.opacity):
        path = out_dir / f'{name}.png'
        if not cv2.imwrite(str(path), picture):
            raise OSError(f'could not write {path}')
        written.append(path)
    print(f'wrote {len(written)} pictures of the {args.split} pipeline ({len(dataset)} samples in all) to {out_dir}')
    return written


if __name__ == '__main__':
    main()
