"""Convert an official or timm InceptionNeXt checkpoint into a backbone checkpoint for mmseg / mmdet.

    python tools/model_converters/inceptionnext2mmseg.py inceptionnext_tiny.pth \
        checkpoints/inceptionnext_tiny_mmseg.pth [--arch tiny] [--prefix backbone.] [--overwrite]

SRC may be the official ``.pth``, timm's ``pytorch_model.bin`` or ``model.safetensors``, an mmengine checkpoint or a
URL. DST is ``{'state_dict': ..., 'meta': ...}`` with the backbone's own key names (no classification head), written
only after a strict load into ``InceptionNeXt(arch)`` succeeded, under a temporary name renamed when complete.
Nothing in SRC is unpickled beyond tensors. Where DST goes:

- without ``--prefix``: ``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST)``;
- with ``--prefix backbone.``: ``load_from=DST`` (the backbone is loaded strictly, the heads start from their
  initialisation, and the log says so).

DST must not be SRC and must not exist (``--overwrite`` replaces a file that is not SRC).
"""
from __future__ import annotations

import argparse
import os
import sys

import mmext  # noqa: F401  (installs the mmcv-lite stand-in before the backbone imports mmcv)
from mmext.checkpoint import CheckpointError
from mmext.fileio import OutputPathError, atomic_path, check_outputs
from mmext.models.backbones.inceptionnext_convert import convert_checkpoint
from mmext.quiet import quiet_upstream_warnings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official .pth, timm pytorch_model.bin / model.safetensors, or a URL')
    parser.add_argument('dst', help='output .pth (mmengine format)')
    parser.add_argument('--arch', help='atto, tiny, small or base (base_384 weights are base); inferred from the '
                                       'tensor shapes when omitted')
    parser.add_argument('--prefix', default='', help="prefix for the output keys: none (default) for the backbone's "
                                                     "init_cfg=dict(type='Pretrained', checkpoint=DST); 'backbone.' "
                                                     "for a segmentor's load_from=DST")
    parser.add_argument('--src-prefix', default=None, help="where the backbone's keys live in SRC; detected when "
                                                           "omitted, '' for none")
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists (never SRC)')
    return parser.parse_args(argv)


def is_local(name: str) -> bool:
    """Whether a checkpoint name is a local path (not a URL, model name or ``hf-hub:`` name)."""
    return '://' not in name and not name.startswith('hf-hub:')


def usage_line(dst: str, prefix: str) -> str:
    """Where the converted file goes in a config."""
    if prefix == 'backbone.':
        return (f"use it as load_from='{dst}' (the backbone is loaded strictly; the heads start from their "
                'initialisation)')
    if prefix:
        return f'its keys start with {prefix!r}: load it where the model has a {prefix.rstrip(".")!r} submodule'
    return f"use it as model.backbone.init_cfg=dict(type='Pretrained', checkpoint='{dst}')"


def main(argv: list[str] | None = None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    try:
        if is_local(args.src) and not os.path.isfile(os.path.expanduser(args.src)):
            raise FileNotFoundError(f'SRC {args.src} not found')
        check_outputs({'DST': args.dst}, {'SRC': args.src if is_local(args.src) else None},
                      allow_existing=args.overwrite)
        with atomic_path(args.dst) as temporary:
            report = convert_checkpoint(args.src, temporary, arch=args.arch, src_prefix=args.src_prefix,
                                        out_prefix=args.prefix)
    except (CheckpointError, FileNotFoundError, OutputPathError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'wrote {args.dst}: {len(report.loaded)} tensors of {report.model_arch}'
          + (f', keys prefixed {args.prefix!r}' if args.prefix else '') + f'; {usage_line(args.dst, args.prefix)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
