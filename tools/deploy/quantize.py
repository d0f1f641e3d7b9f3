"""Quantize an exported segmentor to int8 (onnxruntime static QDQ, calibrated on your images) and check it.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT --deploy --out model.onnx
    python tools/deploy/quantize.py CONFIG model.onnx --calib-dir IMAGES [--calib-num 32] --out model_int8.onnx \
        [--check IMG_OR_FOLDER ...]

Calibration runs each of the first ``--calib-num`` images of ``--calib-dir`` (sorted; pick images like those the
model will see) through the config's test pipeline and the float32 graph and records the range of every
activation; the int8 graph then runs in onnxruntime (:class:`mmext.apis.onnx.OnnxSegmentor`) on x86 CPUs with
VNNI in integer arithmetic. After writing it, the tool segments each ``--check`` image (default: the calibration
images) with the float32 and the int8 graph and prints the pixel agreement of the label maps; it exits 1 if an
image agrees on fewer than ``--min-agreement`` (default 99%) of its pixels. Measured agreement and speed:
docs/en/advanced_guides/benchmarks.md (``tools/analysis/precision_agreement.py``,
``tools/benchmark.py --preset cpu-seg``).
"""
from __future__ import annotations

import argparse
import sys

import mmext  # noqa: F401  (installs the mmcv-lite stand-in before mmseg is imported)
from mmext.apis.builder import load_model_config
from mmext.apis.onnx import OnnxSegmentor, quantize_onnx
from mmext.datasets.decoding import find_images
from mmext.fileio import atomic_path, check_outputs
from mmext.quiet import quiet_upstream_warnings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the config the model was exported from (its test pipeline is used)')
    parser.add_argument('model', help='float32 .onnx from tools/deploy/export_onnx.py (--deploy quantizes best)')
    parser.add_argument('--calib-dir', required=True, help='folder of calibration images')
    parser.add_argument('--calib-num', type=int, default=32, help='calibration images used (default 32)')
    parser.add_argument('--out', required=True, help='output int8 .onnx file')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out file')
    parser.add_argument('--check', nargs='+', default=None, metavar='IMG',
                        help='images or folders to compare int8 with float32 on (default: the calibration images)')
    parser.add_argument('--min-agreement', type=float, default=0.99, help='exit 1 below this pixel agreement')
    parser.add_argument('--threads', type=int, default=None, help='onnxruntime threads for the check')
    args = parser.parse_args(argv)
    if args.calib_num < 1:
        parser.error(f'--calib-num must be at least 1, got {args.calib_num}')
    return args


def main(argv: list[str] | None = None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    check_outputs({'--out': args.out}, {'CONFIG': args.config, 'MODEL': args.model, '--calib-dir': args.calib_dir,
                                        '--check': args.check}, allow_existing=args.overwrite)
    calib = find_images(args.calib_dir)[:args.calib_num]
    cfg = load_model_config(args.config)  # parsed once (mmseg:: bases take most of a second), copied by each user
    with atomic_path(args.out) as temporary:
        quantize_onnx(args.model, temporary, calib, config=cfg)
    print(f'wrote {args.out} (int8, calibrated on {len(calib)} images of {args.calib_dir})')
    checks = [image for path in args.check for image in find_images(path)] if args.check else calib
    fp32 = OnnxSegmentor(args.model, cfg, threads=args.threads)
    int8 = OnnxSegmentor(args.out, cfg, threads=args.threads)
    ok = True
    for image in checks:
        agreement = float((fp32(image) == int8(image)).mean())
        ok &= agreement >= args.min_agreement
        print(f'{image}: int8 vs float32 pixel agreement {100 * agreement:.3f}%')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
