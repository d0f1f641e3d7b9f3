"""Export an mmext segmentor to ONNX (dynamic height and width) and check onnxruntime against PyTorch.

    python tools/deploy/export_onnx.py CONFIG [CHECKPOINT] --out model.onnx [--shape H W] [--opset N] [--deploy]
        [--check IMG ...]

The graph takes a ``(1, 3, H, W)`` float32 BGR 0..255 image (normalisation inside) and returns
``(1, num_classes, H, W)`` logits at the input resolution. After exporting, the tool runs onnxruntime (CPU) and
PyTorch on each ``--check`` image at its own size (default: a random image of the export shape and one of
another size) and prints the max abs logit difference and the argmax agreement; it exits 1 below 99.9%. An image
that cannot be checked (unreadable, too small) is reported by name and the others are still checked (exit 1).

Before the model is built, an --out that is an input (config, checkpoint, --check image) or an existing file
(unless --overwrite) is refused; the graph is written under a temporary name and renamed when complete.
"""
import argparse
import sys

import numpy as np
import onnx
import onnxruntime
import torch
from mmengine.config import DictAction

from mmext.apis import check_onnx_parity, export_onnx, init_segmentor
from mmext.apis.onnx import DEFAULT_OPSET
from mmext.fileio import atomic_path, check_outputs
from mmext.quiet import quiet_upstream_warnings

MIN_AGREEMENT = 0.999


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export an mmext segmentor to ONNX')
    parser.add_argument('config', help='config file, e.g. configs/upernet_inceptionnext_t_ade20k.py')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='segmentor checkpoint (or backbone-only weights); omitted: random weights')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out file')
    parser.add_argument('--shape', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'),
                        help='example input size for tracing (the graph accepts any size >= 64)')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help='ONNX opset version')
    parser.add_argument('--deploy', action='store_true', help="fold the backbone's BatchNorms first")
    parser.add_argument('--check', nargs='*', default=None, metavar='IMG',
                        help='images to compare onnxruntime with PyTorch on, at their own sizes')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config settings, e.g. model.backbone.arch=atto')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    check_outputs({'--out': args.out}, {'CONFIG': args.config, 'CHECKPOINT': args.checkpoint, '--check': args.check},
                  allow_existing=args.overwrite)
    model = init_segmentor(args.config, args.checkpoint, device='cpu', cfg_options=args.cfg_options)
    with atomic_path(args.out) as temporary:
        export_onnx(model, temporary, shape=tuple(args.shape), opset=args.opset, deploy=args.deploy)
    out = args.out
    print(f'wrote {out} (opset {args.opset}; torch {torch.__version__}, onnx {onnx.__version__}, '
          f'onnxruntime {onnxruntime.__version__})')
    if args.check:
        images = args.check
    else:
        rng = np.random.default_rng(0)
        h, w = args.shape
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                  rng.integers(0, 256, (h * 3 // 4 + 7, w + 37, 3), dtype=np.uint8)]
    ok = True
    names = [str(p) for p in args.check] if args.check else ['random', 'random']
    for name, r in zip(names, check_onnx_parity(model, out, images, raise_errors=False), strict=True):
        if 'error' in r:  # reported by name; the other images are still checked
            print(f'{name}: FAILED {r["error"]}', file=sys.stderr)
            ok = False
            continue
        ok &= r['argmax_agreement'] >= MIN_AGREEMENT
        print(f"{name} {r['shape'][1]}x{r['shape'][0]} (w x h): max |logit diff| {r['max_abs_diff']:.3g} "
              f"(max |logit| {r['max_abs_logit']:.3g}), "
              f"argmax agreement {100 * r['argmax_agreement']:.4f}%")
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
