"""Segment an image or a folder of images and write a picture per image.

    python tools/demo/image_demo.py IMG_OR_FOLDER CONFIG [CHECKPOINT] --out-dir DIR [--ann ANN_OR_FOLDER]
        [--device cpu] [--opacity 0.5] [--precision bf16] [--deploy] [--channels-last] [--compile]

Each picture (``DIR/<image stem>.png``, ``DIR/<stem>_<suffix>.png`` for inputs sharing a
stem) shows the prediction over the image in the dataset's palette with a
legend of the classes present; with ``--ann`` it shows input, ground truth and prediction side by side. Without
CHECKPOINT the model is randomly initialised (nothing is downloaded). In a folder, unreadable images are
reported and skipped; the exit status is 1 if any were. Before the model is built, an --out-dir that is, holds or
lies inside an input (image, folder, --ann) is refused, and so is a picture that would replace a file this run did
not create (unless --overwrite); each picture is written under a temporary name and renamed when complete.
"""
import argparse
import sys

from mmengine.config import DictAction

from mmext.apis import init_segmentor
from mmext.apis.image_demo import plan_demo, run_demo
from mmext.apis.precision import add_precision_args, options_from_args
from mmext.datasets.decoding import reduce_zero_label_of
from mmext.quiet import quiet_upstream_warnings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Segment images with an mmext config and draw the result')
    parser.add_argument('inputs', help='image file or folder of images')
    parser.add_argument('config', help='config file, e.g. configs/upernet_inceptionnext_t_ade20k.py')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='segmentor checkpoint (or backbone-only weights); omitted: random weights')
    parser.add_argument('--out-dir', required=True, help='folder for the pictures')
    parser.add_argument('--ann', default=None,
                        help='ground-truth label map (PNG) for one image, or a folder of <image stem>.png')
    parser.add_argument('--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    parser.add_argument('--opacity', type=float, default=0.5, help='weight of the label colours, 0..1')
    parser.add_argument('--overwrite', action='store_true', help='replace pictures that exist in --out-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config settings, e.g. model.backbone.arch=atto')
    add_precision_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    plan_demo(args.inputs, args.out_dir, args.ann, args.overwrite)  # refuse bad outputs before any work
    model = init_segmentor(args.config, args.checkpoint, device=args.device, cfg_options=args.cfg_options,
                           **options_from_args(args).as_kwargs())
    report = run_demo(model, args.inputs, args.out_dir, ann=args.ann, opacity=args.opacity,
                      reduce_zero_label=reduce_zero_label_of(model.cfg), overwrite=args.overwrite)
    print(f'\nwrote {len(set(report.written))} picture(s) to {args.out_dir}, skipped {len(report.failed)}')
    for path, error in report.failed:
        print(f'FAILED {path}: {error}', file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == '__main__':
    sys.exit(main())
