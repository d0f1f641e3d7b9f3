"""How far the label maps of each inference precision stray from fp32's: pixel agreement and mIoU difference.

    python tools/analysis/precision_agreement.py CONFIG [CHECKPOINT] --images DIR [--ann-dir DIR]
        [--precisions bf16 fp16 int8] [--calib-dir DIR] [--calib-num N] [--onnx FP32.onnx] [--num N] [--json OUT]

Every image is segmented in fp32 (the reference, :func:`mmext.apis.inference_segmentor`) and in each precision:
``bf16`` / ``fp16`` through :func:`mmext.apis.precision.apply_inference_options` (deploy form and channels_last,
as deployed), ``int8`` through the ONNX export quantized by :func:`mmext.apis.onnx.quantize_onnx` on
``--calib-num`` images of ``--calib-dir`` (default: the evaluated images themselves, which flatters int8) and run
by onnxruntime (:class:`mmext.apis.onnx.OnnxSegmentor`); ``--onnx`` quantizes a graph already exported from this
checkpoint (``tools/deploy/export_onnx.py CONFIG CHECKPOINT --deploy``) instead of exporting it again.

Printed per precision: the pixel agreement with fp32 (all pixels pooled, and the worst image) and, with
``--ann-dir`` (``<image stem>.png`` label maps), the mIoU of fp32 and of the precision against the ground truth and
their difference. ``fp16`` on a CPU runs emulated here (agreement only; the API refuses it there). Exit status 1 if
a precision's worst image agrees on fewer than ``--min-agreement`` (default 99%) of its pixels.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction

import mmext  # noqa: F401  (installs the mmcv-lite stand-in before mmseg is imported)
from mmext.apis import inference_segmentor, init_segmentor
from mmext.apis.precision import MIN_DEFAULT_AGREEMENT, apply_inference_options
from mmext.datasets.decoding import find_images, load_annotation, reduce_zero_label_of
from mmext.fileio import atomic_write, check_outputs
from mmext.quiet import quiet_upstream_warnings

CHOICES = ('bf16', 'fp16', 'int8')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', nargs='?', default=None, help='segmentor checkpoint (omitted: random weights, '
                        'whose near-tied logits make every precision look worse than it is)')
    parser.add_argument('--images', required=True, help='folder of images to compare on')
    parser.add_argument('--ann-dir', help='folder of <image stem>.png ground-truth label maps: adds the mIoU')
    parser.add_argument('--precisions', nargs='+', choices=CHOICES, default=list(CHOICES))
    parser.add_argument('--num', type=int, default=None, help='use the first N images only')
    parser.add_argument('--calib-dir', help='int8 calibration images (default: the --images themselves)')
    parser.add_argument('--calib-num', type=int, default=16, help='int8 calibration images used (default 16)')
    parser.add_argument('--onnx', help='int8: quantize this fp32 export of the checkpoint (export_onnx.py --deploy) '
                        'instead of exporting it here')
    parser.add_argument('--min-agreement', type=float, default=MIN_DEFAULT_AGREEMENT,
                        help='exit 1 if any precision agrees on fewer pixels of some image (default 0.99)')
    parser.add_argument('--json', help='write the per-image and summary figures here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None)
    return parser.parse_args(argv)


def miou(preds: list[np.ndarray], labels: list[np.ndarray], num_classes: int, ignore_index: int = 255) -> float:
    """mIoU (%) of label maps against ground truth over the classes present in either, with mmseg's IoUMetric."""
    from mmseg.evaluation import IoUMetric

    areas = [IoUMetric.intersect_and_union(torch.from_numpy(p), torch.from_numpy(g), num_classes, ignore_index)
             for p, g in zip(preds, labels)]
    intersect, union = (sum(a[i] for a in areas) for i in (0, 1))
    present = union > 0
    return float((intersect[present] / union[present]).mean() * 100)


def export_fp32(model: torch.nn.Module, out_file: Path) -> Path:
    """The fp32 graph int8 starts from: the deploy form (no BatchNorm between convolutions quantizes best)."""
    from mmext.apis.onnx import export_onnx

    return export_onnx(model, out_file, shape=(512, 512), deploy=True)


def int8_segmentor(model: torch.nn.Module, config, calib: list, tmp: Path, fp32: Path | None = None):
    """``fp32`` (default: the model exported by :func:`export_fp32`) quantized on ``calib``, in onnxruntime."""
    from mmext.apis.onnx import OnnxSegmentor, quantize_onnx

    fp32 = fp32 or export_fp32(model, tmp / 'model.onnx')
    int8 = quantize_onnx(fp32, tmp / 'model_int8.onnx', calib, config=config)  # calibrated after the test pipeline
    return OnnxSegmentor(int8, config, threads=torch.get_num_threads())


def main(argv: list[str] | None = None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    if args.onnx and not Path(args.onnx).is_file():
        raise FileNotFoundError(f'--onnx {args.onnx}: no such file (export it with tools/deploy/export_onnx.py '
                                'CONFIG CHECKPOINT --deploy, or leave --onnx out to export here)')
    check_outputs({'--json': args.json}, {'CONFIG': args.config, 'CHECKPOINT': args.checkpoint,
                                          '--images': args.images, '--ann-dir': args.ann_dir,
                                          '--calib-dir': args.calib_dir, '--onnx': args.onnx}, allow_existing=True)
    images = find_images(args.images)[:args.num]
    model = init_segmentor(args.config, args.checkpoint, cfg_options=args.cfg_options)
    reference = [inference_segmentor(model, image) for image in images]
    labels = None
    if args.ann_dir:
        zero = reduce_zero_label_of(model.cfg)
        labels = [load_annotation(Path(args.ann_dir) / f'{image.stem}.png', zero) for image in images]
    num_classes = model.decode_head.num_classes
    rows = [dict(precision='fp32', agreement=1., worst_image=1.,
                 miou=miou(reference, labels, num_classes) if labels else None)]
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precisions:
            if precision == 'int8':
                calib = find_images(args.calib_dir)[:args.calib_num] if args.calib_dir else images[:args.calib_num]
                segment = int8_segmentor(model, model.cfg, calib, Path(tmp), args.onnx and Path(args.onnx))
            else:
                # emulated fp16/bf16 computes the same numbers as native: the agreement holds, only speed differs
                other = apply_inference_options(copy.deepcopy(model), precision=precision, deploy=True,
                                                channels_last=True, allow_emulated=True)
                segment = lambda image, m=other: inference_segmentor(m, image)  # noqa: E731
            maps = [segment(image) for image in images]
            same = [(a == b) for a, b in zip(maps, reference)]
            pooled = sum(s.sum() for s in same) / sum(s.size for s in same)
            rows.append(dict(precision=precision, agreement=float(pooled),
                             worst_image=min(float(s.mean()) for s in same),
                             per_image={image.name: float(s.mean()) for image, s in zip(images, same)},
                             miou=miou(maps, labels, num_classes) if labels else None))
    print(f'{len(images)} images of {args.images}; checkpoint {args.checkpoint or "none (random weights)"}')
    print('| precision | pixel agreement with fp32 | worst image | mIoU | mIoU - fp32 |\n|---|---|---|---|---|')
    for r in rows:
        iou = f"{r['miou']:.2f} | {r['miou'] - rows[0]['miou']:+.2f}" if r['miou'] is not None else ' | '
        print(f"| {r['precision']} | {100 * r['agreement']:.3f}% | {100 * r['worst_image']:.3f}% | {iou} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.json, 'w') as f:
            f.write(json.dumps(dict(config=args.config, checkpoint=args.checkpoint, images=[str(p) for p in images],
                                    rows=rows), indent=1))
    low = [r['precision'] for r in rows if r['worst_image'] < args.min_agreement]
    if low:
        print(f'below {100 * args.min_agreement:.1f}% on some image: {", ".join(low)}', file=sys.stderr)
    return 1 if low else 0


if __name__ == '__main__':
    sys.exit(main())
