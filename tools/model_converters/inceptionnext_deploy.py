"""Fold the BatchNorms of an InceptionNeXt checkpoint into its convs (deploy form, for inference only).

    python tools/model_converters/inceptionnext_deploy.py SRC DST [--arch tiny]

SRC: an official / timm backbone checkpoint, one written by ``inceptionnext2mmseg.py``, or an mmengine checkpoint
of a whole segmentor or detector (its ``backbone.*`` is folded, every other tensor is kept). DST loads into a model
whose backbone is built with ``deploy=True``; the eval-mode outputs equal those of the training form. DST is written
under a temporary name and renamed when complete; it must not be SRC and must not exist (``--overwrite`` replaces a
file that is not SRC).
"""
from __future__ import annotations

import argparse
import os
import sys

import mmext  # noqa: F401  (installs the mmcv-lite stand-in before the backbone imports mmcv)
from mmext.checkpoint import CheckpointError
from mmext.fileio import atomic_path, check_outputs
from mmext.models.backbones.inceptionnext_convert import convert_checkpoint_to_deploy
from mmext.quiet import quiet_upstream_warnings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='training-form checkpoint (.pth, pytorch_model.bin, model.safetensors)')
    parser.add_argument('dst', help='output .pth (mmengine format, deploy form)')
    parser.add_argument('--arch', help='atto, tiny, small or base; inferred from the tensor shapes when omitted')
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists (never SRC)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    try:
        local = '://' not in args.src and not args.src.startswith('hf-hub:')
        if local and not os.path.isfile(os.path.expanduser(args.src)):
            raise FileNotFoundError(f'SRC {args.src} not found')
        check_outputs({'DST': args.dst}, {'SRC': args.src if local else None},
                      allow_existing=args.overwrite)
        with atomic_path(args.dst) as temporary:
            meta = convert_checkpoint_to_deploy(args.src, temporary, arch=args.arch)
    except (CheckpointError, FileNotFoundError, ValueError) as e:  # OutputPathError is a ValueError
        print(f'error: {e}', file=sys.stderr)
        return 1
    prefix = meta['backbone_prefix']
    print(f'wrote {args.dst}: {meta["folded_tensors"]} backbone tensors in deploy form'
          + (f' under {prefix!r}' if prefix else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
