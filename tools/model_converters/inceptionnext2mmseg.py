"""Convert an official or timm InceptionNeXt checkpoint into a backbone checkpoint for mmseg / mmdet.

    python tools/model_converters/inceptionnext2mmseg.py inceptionnext_tiny.pth \
        checkpoints/inceptionnext_tiny_mmseg.pth [--arch tiny] [--prefix backbone.]

SRC may be the official ``.pth``, timm's ``pytorch_model.bin`` or ``model.safetensors``, an mmengine checkpoint or a
URL. DST is ``{'state_dict': ..., 'meta': ...}`` with the backbone's own key names (no classification head), written
only after a strict load into ``InceptionNeXt(arch)`` succeeded. Nothing in SRC is unpickled beyond tensors.
"""
from __future__ import annotations

import argparse
import sys

import mmext  # noqa: F401  (installs the mmcv-lite stand-in before the backbone imports mmcv)
from mmext.checkpoint import CheckpointError
from mmext.models.backbones.inceptionnext_convert import convert_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official .pth, timm pytorch_model.bin / model.safetensors, or a URL')
    parser.add_argument('dst', help='output .pth (mmengine format)')
    parser.add_argument('--arch', help='atto, tiny, small or base (base_384 weights are base); inferred from the '
                                       'tensor shapes when omitted')
    parser.add_argument('--prefix', default='', help="prefix for the output keys, e.g. 'backbone.' for a file a "
                                                     "segmentor's load_from can read; default: none")
    parser.add_argument('--src-prefix', default=None, help="where the backbone's keys live in SRC; detected when "
                                                           "omitted, '' for none")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = convert_checkpoint(args.src, args.dst, arch=args.arch, src_prefix=args.src_prefix,
                                    out_prefix=args.prefix)
    except (CheckpointError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {args.dst}: {len(report.loaded)} tensors of {report.model_arch}'
          + (f', keys prefixed {args.prefix!r}' if args.prefix else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
