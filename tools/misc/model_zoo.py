"""Read ``configs/metafile.yaml``, the one source of model facts, and print the model-zoo tables from it.

    python tools/misc/model_zoo.py                  # the README's zoo table (markdown)
    python tools/misc/model_zoo.py --all            # every config (configs/README.md's table)
    python tools/misc/model_zoo.py --check README.md           # exit 1 if README.md lacks the current table

The tests and ``tools/analysis/get_flops.py`` read the metafile through :func:`load_models`, which checks the schema
(described at the top of the metafile) and names the model and key that break it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
METAFILE = REPO_ROOT / 'configs' / 'metafile.yaml'
REQUIRED_METADATA = ('Training Data', 'Architecture', 'Batch Size', 'Parameters')
# Architecture names of the released backbones -> InceptionNeXt(arch=...)
ARCHS = {'InceptionNeXt-A': 'atto', 'InceptionNeXt-T': 'tiny', 'InceptionNeXt-S': 'small', 'InceptionNeXt-B': 'base'}


def load_models(path: str | Path = METAFILE) -> list[dict]:
    """The ``Models`` of the metafile, each checked: unique ``Name`` equal to its config's file stem, a declared
    ``In Collection``, an existing ``Config``, the :data:`REQUIRED_METADATA` keys, an ``Iterations`` or ``Epochs``."""
    path = Path(path)
    data = yaml.safe_load(path.read_text())
    collections = {c['Name'] for c in data.get('Collections', [])}
    models, names = data.get('Models') or [], set()
    if not models:
        raise ValueError(f'{path} lists no Models')
    for model in models:
        name = model.get('Name')
        where = f'{path}: model {name!r}'
        if not name or name in names:
            raise ValueError(f'{where}: every model needs a unique Name')
        names.add(name)
        config = REPO_ROOT / model.get('Config', '')
        if not model.get('Config') or not config.is_file():
            raise ValueError(f'{where}: Config {model.get("Config")!r} is not a file of the repository')
        if config.stem != name:
            raise ValueError(f'{where}: Name must be the config file stem {config.stem!r}')
        if model.get('In Collection') not in collections:
            raise ValueError(f'{where}: In Collection {model.get("In Collection")!r} is not one of the Collections '
                             f'{sorted(collections)}')
        metadata = model.get('Metadata') or {}
        missing = [k for k in REQUIRED_METADATA if k not in metadata]
        if not ('Iterations' in metadata or 'Epochs' in metadata):
            missing.append('Iterations or Epochs')
        if missing:
            raise ValueError(f'{where}: Metadata lacks {", ".join(missing)}')
        if not isinstance(metadata['Parameters'], int):
            raise ValueError(f'{where}: Metadata.Parameters must be the exact count (an integer), got '
                             f'{metadata["Parameters"]!r}')
    return models


def find_model(config: str | Path, models: list[dict] | None = None) -> dict | None:
    """The metafile entry of a config file (matched by file stem), or ``None``."""
    stem = Path(config).stem
    return next((m for m in (models or load_models()) if m['Name'] == stem), None)


def backbone_arch(model: dict) -> str | None:
    """``'tiny'`` etc. for a model on a released InceptionNeXt backbone (``Architecture`` names it), else ``None``."""
    return next((ARCHS[a] for a in model['Metadata']['Architecture'] if a in ARCHS), None)


def paper_miou(model: dict) -> dict[str, float]:
    """The paper's mIoU figures of a model by metric name (``mIoU``, ``mIoU(ms+flip)``, ``mIoU(as reported)``)."""
    figures = {}
    for result in model.get('Results', []):
        if result.get('Source', '').startswith('paper'):
            figures.update(result['Metrics'])
    return figures


def _millions(n: float) -> str:
    return f'{n / 1e6:.1f}M'


def _flops(model: dict) -> str:
    meta = model['Metadata']
    if 'FLOPs (G)' not in meta:
        return '-'
    h, w = meta['FLOPs Shape']
    return f'{meta["FLOPs (G)"]:.1f}G @{h}x{w}'


def zoo_table(models: list[dict], everything: bool = False) -> str:
    """A markdown table: config, method, data, schedule, params, FLOPs, paper mIoU (single-scale / ms+flip), and
    what was verified here. Without ``everything``: the models with a released backbone (``Pretrained``), linked
    from the repository root (README.md); with it, every model, linked from configs/ (configs/README.md)."""
    rows = ['| config | method | data | schedule | params | FLOPs (MACs) | paper mIoU ss / ms+flip | verified here |',
            '|---|---|---|---|---|---|---|---|']
    for model in models:
        meta = model['Metadata']
        if not everything and not meta.get('Pretrained'):
            continue
        schedule = (f'{meta["Iterations"] // 1000}k it' if 'Iterations' in meta else f'{meta["Epochs"]} ep')
        schedule += f', batch {meta["Batch Size"]}'
        miou = paper_miou(model)
        single = miou.get('mIoU', miou.get('mIoU(as reported)'))
        ss = '-' if single is None else f'{single}' + ('' if 'mIoU' in miou else '*')
        ms = '-' if 'mIoU(ms+flip)' not in miou else f'{miou["mIoU(ms+flip)"]}'
        verified = '; '.join(model.get('Verified', [])) or '-'
        link = model['Config'].removeprefix('configs/') if everything else model['Config']
        rows.append(f'| [{model["Name"]}]({link}) | {model["In Collection"]} | {meta["Training Data"]} '
                    f'| {schedule} | {_millions(meta["Parameters"])} | {_flops(model)} | {ss} / {ms} | {verified} |')
    return '\n'.join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Print the model-zoo table of configs/metafile.yaml')
    parser.add_argument('--all', action='store_true', help='every config, not only those on released backbones')
    parser.add_argument('--check', nargs='+', metavar='FILE', help='exit 1 unless each FILE holds the table')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table = zoo_table(load_models(), everything=args.all)
    if not args.check:
        print(table)
        return 0
    stale = [file for file in args.check if table not in Path(file).read_text()]
    for file in stale:
        print(f'{file}: its model-zoo table differs from configs/metafile.yaml; replace it with the output of '
              f'`python tools/misc/model_zoo.py{" --all" if args.all else ""}`', file=sys.stderr)
    return 1 if stale else 0


if __name__ == '__main__':
    sys.exit(main())
