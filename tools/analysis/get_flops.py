"""Parameters and MACs of segmentation (and mmdet detection) configs, beside configs/metafile.yaml's figures.

    python tools/analysis/get_flops.py configs/upernet_inceptionnext_t_ade20k.py [--shape 512 2048]

Runs on the CPU (SyncBN becomes BN); one forward of the inference path per config. ``--shape`` is HEIGHT WIDTH, as
in every mmext tool. Without it each config is counted at its metafile ``FLOPs Shape`` (the input of the paper's
figure), else at 512 x 2048. The table shows the metafile's measured and paper figures beside the count; the exit
status is 1 when a count differs from the metafile's (parameters exactly; MACs by more than 1%, at its shape).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from mmengine.config import DictAction

from mmext.analysis.complexity import segmentor_complexity
from mmext.quiet import quiet_upstream_warnings

DEFAULT_SHAPE = (512, 2048)  # (height, width): ADE20K's test scale


def load_model_zoo() -> ModuleType:
    """``tools/misc/model_zoo.py``, the metafile reader (a sibling tool, not part of the installed package)."""
    path = Path(__file__).resolve().parents[1] / 'misc' / 'model_zoo.py'
    spec = importlib.util.spec_from_file_location('mmext_tools_model_zoo', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count parameters and MACs of segmentors and detectors')
    parser.add_argument('configs', nargs='+', help='config file(s)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='input HEIGHT WIDTH (e.g. 512 2048), or one SIZE for a square; default: the config\'s '
                             'FLOPs Shape in configs/metafile.yaml, else 512 2048')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error(f'--shape takes HEIGHT WIDTH or one SIZE, got {args.shape}')
    return args


def _g(macs: float) -> str:
    return f'{macs / 1e9:.1f}G'


def compare(result: dict, model: dict | None) -> tuple[str, str | None]:
    """A markdown row for one :func:`segmentor_complexity` result and its metafile entry, and the difference from
    the metafile's own count (``None`` when they agree or the metafile has no count at this shape)."""
    meta = (model or {}).get('Metadata', {})
    paper = (model or {}).get('Paper Figures', {})
    height, width = result['shape']
    listed_params = f'{meta["Parameters"] / 1e6:.1f}M' if 'Parameters' in meta else '-'
    listed_macs = (f'{meta["FLOPs (G)"]:.1f}G @{meta["FLOPs Shape"][0]}x{meta["FLOPs Shape"][1]}'
                   if 'FLOPs (G)' in meta else '-')
    paper_text = (f'{paper["Parameters (M)"]}M / {paper["FLOPs (G)"]}G @{paper["FLOPs Shape"][0]}x'
                  f'{paper["FLOPs Shape"][1]}' if paper else '-')
    row = (f'| {result["name"]} | {height}x{width} | {result["params"] / 1e6:.1f}M | {_g(result["macs"])} '
           f'| {listed_params} / {listed_macs} | {paper_text} |')
    problems = []
    if 'Parameters' in meta and meta['Parameters'] != result['params']:
        problems.append(f'{result["params"]:,} parameters, the metafile lists {meta["Parameters"]:,}')
    if 'FLOPs (G)' in meta and list(meta['FLOPs Shape']) == [height, width]:
        listed = meta['FLOPs (G)'] * 1e9
        if abs(result['macs'] - listed) > 0.01 * listed:
            problems.append(f'{_g(result["macs"])} MACs at {height}x{width}, the metafile lists {listed_macs}')
    return row, '; '.join(problems) or None


def main(argv=None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    zoo = load_model_zoo()
    models = zoo.load_models()
    rows = ['| config | input (h x w) | params | MACs | metafile params / MACs | paper params / MACs |',
            '|---|---|---|---|---|---|']
    problems = []
    for config in args.configs:
        model = zoo.find_model(config, models)
        if args.shape is not None:
            shape = (args.shape[0], args.shape[-1])
        elif model is not None and 'FLOPs Shape' in model['Metadata']:
            shape = tuple(model['Metadata']['FLOPs Shape'])
        else:
            shape = DEFAULT_SHAPE
        row, problem = compare(segmentor_complexity(config, shape, args.cfg_options), model)
        rows.append(row)
        if problem:
            problems.append(f'{config}: {problem}; update configs/metafile.yaml if the config changed on purpose')
    print('\n'.join(rows))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
