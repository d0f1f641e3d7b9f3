"""Fold the BatchNorms of an InceptionNeXt checkpoint into its convs (deploy form, for inference only).

    python tools/model_converters/inceptionnext_deploy.py SRC DST [--arch tiny]

SRC: an official / timm backbone checkpoint, one written by ``inceptionnext2mmseg.py``, or an mmengine checkpoint
of a whole segmentor or detector (its ``backbone.*`` is folded, every other tensor is kept). DST loads into a model
whose backbone is built with ``deploy=True``; the eval-mode outputs equal those of the training form.
"""
from __future__ import annotations

import argparse
import sys

import mmext  # noqa: F401  (installs the mmcv-lite stand-in before the backbone imports mmcv)
from mmext.checkpoint import CheckpointError
from mmext.models.backbones.inceptionnext_convert import convert_checkpoint_to_deploy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='training-form checkpoint (.pth, pytorch_model.bin, model.safetensors)')
    parser.add_argument('dst', help='output .pth (mmengine format, deploy form)')
    parser.add_argument('--arch', help='atto, tiny, small or base; inferred from the tensor shapes when omitted')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        meta = convert_checkpoint_to_deploy(args.src, args.dst, arch=args.arch)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    prefix = meta['backbone_prefix']
    print(f'wrote {args.dst}: {meta["folded_tensors"]} backbone tensors in deploy form'
          + (f' under {prefix!r}' if prefix else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
