"""Parameters and MACs of segmentation (and mmdet detection) configs, with the paper's numbers beside them.

    python tools/analysis/get_flops.py configs/upernet_inceptionnext_t_ade20k.py [--shape 2048 512]

Runs on the CPU (SyncBN becomes BN); one forward of the inference path per config.
"""
import argparse

from mmengine.config import DictAction

from mmext.analysis.complexity import format_complexity_table, segmentor_complexity


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count parameters and MACs of segmentors and detectors')
    parser.add_argument('configs', nargs='+', help='config file(s)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='input WIDTH HEIGHT (like Resize scale=(2048, 512)) or one SIZE for a square; '
                             "default: the paper's shape for the config (UperNet 2048 512, FPN 512 512)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error(f'--shape takes WIDTH HEIGHT or one SIZE, got {args.shape}')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    shape = None if args.shape is None else (args.shape[0], args.shape[-1])
    results = [segmentor_complexity(config, shape, args.cfg_options) for config in args.configs]
    print(format_complexity_table(results))


if __name__ == '__main__':
    main()
