"""The docs tell the truth about the repository: every path, config name, tool flag and ``mmext.*`` name written in
README.md, configs/README.md and docs/ exists (names starting ``my_`` are the reader's own files); every shell
block runs (or, marked ``<!-- not run: why -->`` just above it, at least parses); every Python block compiles, and
one that is a config builds its model; every exception class of mmext is in the troubleshooting guide;
CITATION.cff names the package's version."""
import ast
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO_ROOT / 'README.md', REPO_ROOT / 'configs' / 'README.md', *(REPO_ROOT / 'docs').rglob('*.md')])
DOC_IDS = [str(p.relative_to(REPO_ROOT)) for p in DOCS]
TOP_DIRS = ('configs', 'tools', 'mmext', 'tests', 'docs')
PATH_RE = re.compile(r'(?<![\w./-])((?:' + '|'.join(TOP_DIRS) + r')/[\w./{},*-]*[\w*}/])')
CONFIG_NAME_RE = re.compile(r'(?<![\w./-])([\w-]*(?:inceptionnext|metanext|convnext)[\w-]*_'
                            r'(?:ade20k|coco|cityscapes|synthetic))(?:\.py)?(?![\w/-])')
MMEXT_NAME_RE = re.compile(r'(?<![\w./])(mmext(?:\.[A-Za-z_]\w*)+)')
LINK_RE = re.compile(r'\]\(([^)\s]+)\)')
BLOCK_RE = re.compile(r'(?:<!--\s*(not run[^>]*)-->\s*\n)?```(\w*)\n(.*?)```', re.S)
# launchers that pass their extra arguments to a Python tool
LAUNCHES = {'tools/dist_train.sh': 'tools/train.py', 'tools/slurm_train.sh': 'tools/train.py',
            'tools/dist_test.sh': 'tools/test.py', 'tools/slurm_test.sh': 'tools/test.py'}


def _text(doc: Path) -> str:
    return doc.read_text()


def _expand(path: str) -> list[str]:
    """``configs/x_{t,s,b}.py`` -> three paths (one brace group)."""
    match = re.search(r'\{([^{}]*)\}', path)
    if not match:
        return [path]
    return [p for option in match.group(1).split(',')
            for p in _expand(path[:match.start()] + option + path[match.end():])]


def test_docs_found():
    assert (REPO_ROOT / 'README.md') in DOCS and len(DOCS) >= 5, DOC_IDS
    assert len(_text(REPO_ROOT / 'README.md').splitlines()) <= 150, 'README.md: at most 150 lines; move detail to docs/'


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_repository_paths_exist(doc):
    text = _text(doc)
    missing = set()
    for raw in PATH_RE.findall(text):
        raw = raw.rstrip('.,:;')
        for path in _expand(raw):
            if Path(path).name.startswith('my_'):
                continue
            if '*' in path:
                if not list(REPO_ROOT.glob(path)):
                    missing.add(path)
            elif not (REPO_ROOT / path).exists():
                missing.add(path)
    for target in LINK_RE.findall(text):
        if re.match(r'[a-z]+:|#', target):
            continue
        path = (doc.parent / target.split('#')[0]).resolve()
        if not path.exists():
            missing.add(target)
        elif REPO_ROOT not in path.parents and path != REPO_ROOT:
            missing.add(f'{target} (outside the repository)')
    assert not missing, f'{doc.name} names paths that do not exist: {sorted(missing)}'


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_config_names_exist(doc):
    stems = {p.stem for p in (REPO_ROOT / 'configs').rglob('*.py')}
    names = {m for m in CONFIG_NAME_RE.findall(_text(doc)) if not m.startswith(('_', '-'))}
    missing = sorted(n for n in names if n not in stems and not n.startswith(('my_', 'your_')))
    assert not missing, f'{doc.name} names configs that do not exist: {missing}'


def _resolve(name: str) -> bool:
    parts = name.split('.')
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_mmext_names_exist(doc):
    names = {n.rstrip('.') for n in MMEXT_NAME_RE.findall(_text(doc))}
    missing = sorted(n for n in names if not _resolve(n))
    assert not missing, f'{doc.name} names mmext objects that do not exist: {missing}'


def _commands(text: str):
    """Each shell command of the code spans and blocks, continuation lines joined."""
    chunks = [block for _, _, block in BLOCK_RE.findall(text)] + re.findall(r'`([^`\n]+)`', text)
    for chunk in chunks:
        for line in chunk.replace('\\\n', ' ').splitlines():
            yield line.split(' #')[0]


@pytest.mark.parametrize('doc', DOCS, ids=DOC_IDS)
def test_tool_flags_exist(doc):
    """A ``--flag`` written after ``tools/x.py`` (or a launcher of it) on one command is one that tool accepts."""
    unknown = set()
    for command in _commands(_text(doc)):
        match = re.search(r'(?<![\w./-])(tools/[\w/]+\.(?:py|sh))(.*)', command)
        if not match:
            continue
        tool = LAUNCHES.get(match.group(1), match.group(1))
        source = REPO_ROOT / tool
        if not source.is_file():
            unknown.add(f'{tool} (no such tool)')
            continue
        code = source.read_text()
        for module in re.findall(r'from (mmext[\w.]*) import [^\n]*\badd_\w*args', code):  # shared arguments
            code += (REPO_ROOT / (module.replace('.', '/') + '.py')).read_text()
        for flag in re.findall(r'(?<![\w-])(--[a-z][\w-]*)', match.group(2)):
            if f"'{flag}'" not in code and f'"{flag}"' not in code:
                unknown.add(f'{tool} {flag}')
    assert not unknown, f'{doc.name} gives flags the tools do not take: {sorted(unknown)}'


def _blocks(lang: str):
    for doc in DOCS:
        for marker, block_lang, body in BLOCK_RE.findall(_text(doc)):
            if block_lang == lang:
                yield doc, marker, body


SHELL_BLOCKS = list(_blocks('bash'))
SHELL_IDS = [f'{doc.relative_to(REPO_ROOT)}:{i}' for i, (doc, _, _) in enumerate(SHELL_BLOCKS)]


@pytest.mark.parametrize('doc,marker,body', SHELL_BLOCKS, ids=SHELL_IDS)
def test_shell_block(doc, marker, body, tmp_path):
    """Blocks marked ``<!-- not run: why -->`` parse (``bash -n``); the others run with the venv's python, from a
    scratch folder that sees the repository's configs/, tools/, docs/ and README.md (nothing is written into the
    repository)."""
    check = subprocess.run(['bash', '-n'], input=body, text=True, capture_output=True)
    assert check.returncode == 0, f'{doc.name}: shell block does not parse:\n{body}\n{check.stderr}'
    if marker:
        assert re.match(r'not run: \S', marker), f'{doc.name}: say why a block is not run: <!-- not run: why -->'
        return
    for name in ('configs', 'tools', 'docs', 'README.md'):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    env = dict(os.environ, PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}',
               OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', '-euo', 'pipefail', '-c', body], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, f'{doc.name}: shell block failed:\n{body}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}'


PYTHON_BLOCKS = list(_blocks('python'))


@pytest.mark.parametrize('doc,marker,body', PYTHON_BLOCKS,
                         ids=[f'{doc.relative_to(REPO_ROOT)}:{i}' for i, (doc, _, _) in enumerate(PYTHON_BLOCKS)])
def test_python_block_compiles(doc, marker, body, tmp_path):
    ast.parse(body, filename=str(doc))
    if not re.match(r"_base_ = '", body):
        return
    # A config: it parses (relative bases resolved from configs/) and its model builds (on the meta device).
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmext.registry import MODELS

    config = tmp_path / 'my_config.py'
    config.write_text(body.replace("_base_ = './", f"_base_ = '{REPO_ROOT}/configs/"))
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.backbone.parameters()) > 0


def test_troubleshooting_names_every_exception_class():
    classes = set()
    for source in (REPO_ROOT / 'mmext').rglob('*.py'):
        classes.update(re.findall(r'^class (\w+(?:Error|Exception))\(', source.read_text(), re.M))
    guide = _text(REPO_ROOT / 'docs' / 'en' / 'user_guides' / 'troubleshooting.md')
    assert classes, 'no exception class found in mmext/'
    missing = sorted(c for c in classes if c not in guide)
    assert not missing, f'docs/en/user_guides/troubleshooting.md does not explain {missing}'


def test_citation_names_this_version():
    from mmext.version import __version__

    citation = yaml.safe_load((REPO_ROOT / 'CITATION.cff').read_text())
    assert citation['version'] == __version__
    assert citation['preferred-citation']['title'] == 'InceptionNeXt: When Inception Meets ConvNeXt'
    assert '@inproceedings{yu2024inceptionnext' in _text(REPO_ROOT / 'README.md')


def test_shlex_parses_every_command():
    """Unbalanced quotes in a one-line command (a span or a block line) would fail for whoever pastes it."""
    bad = []
    for doc in DOCS:
        for command in _commands(_text(doc)):
            if command.startswith(('python ', 'bash ', 'make ', 'pip ')):
                try:
                    shlex.split(command)
                except ValueError:
                    bad.append(f'{doc.name}: {command}')
    assert not bad, bad


def test_variant_table_matches_the_variant_registry():
    """docs' table of the paper's variants repeats mmext.models.variants.PAPER_VARIANTS (paper columns) exactly."""
    from mmext.models.variants import PAPER_VARIANTS

    text = _text(REPO_ROOT / 'docs' / 'en' / 'advanced_guides' / 'paper_networks.md')
    rows = {m.group(1): m.group(2) for m in re.finditer(r'^\| `([\w-]+)` \| (.*) \|$', text, re.M)}
    assert set(PAPER_VARIANTS) <= set(rows), sorted(set(PAPER_VARIANTS) - set(rows))
    for key, variant in PAPER_VARIANTS.items():
        cells = [c.strip() for c in rows[key].split('|')]
        assert cells[0] == variant['table'] and cells[1] == variant['row'], key
        assert cells[4] == f'{variant["params"] / 1e6:.1f}M / {variant["macs"] / 1e9:.1f}G', key
        assert cells[5] == f'{variant["top1"]}', key
        assert cells[6].startswith(f'{variant["train"]} / {variant["infer"]} '), key


T_DIMS = {'C0': 96, 'C1': 192, 'C2': 384, 'C3': 768}


def _swap_value(value) -> str:
    if isinstance(value, dict) and value.get('type') == 'InceptionNeXt':
        extra = [f'{k}={value[k]}' for k in ('out_indices', 'output_stride') if k in value
                 and value[k] != dict(out_indices=(0, 1, 2, 3)).get(k)]
        return 'InceptionNeXt-T' + (f' ({", ".join(extra)})' if extra else '')
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_swap_value(v) for v in value) + ']'
    return str(T_DIMS.get(value, value))


def zoo_swap_table(swaps: dict) -> str:
    """The family table of docs/en/user_guides/other_heads.md, rendered from ``ZOO_SWAPS`` of
    tests/configs/test_zoo_swap.py (the test that trains each swap one step)."""
    rows = ['| family | mmseg 1.2.2 config | lines to write (InceptionNeXt-T channels) or why not |', '|---|---|---|']
    for family, (config, swap) in sorted(swaps.items()):
        if isinstance(swap, str):
            rows.append(f'| {family} | {config or "-"} | not swapped: {swap} |')
        else:
            lines = '; '.join(f'`{key}={_swap_value(value)}`' for key, value in swap.items())
            rows.append(f'| {family} | `{config}` | {lines} |')
    return '\n'.join(rows)


def test_other_heads_table_is_the_zoo_swap_test():
    path = REPO_ROOT / 'tests' / 'configs' / 'test_zoo_swap.py'
    spec = importlib.util.spec_from_file_location('mmext_test_zoo_swap', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = zoo_swap_table(module.ZOO_SWAPS)
    assert table in _text(REPO_ROOT / 'docs' / 'en' / 'user_guides' / 'other_heads.md'), (
        'docs/en/user_guides/other_heads.md: the family table differs from ZOO_SWAPS; regenerate it with '
        'tests/test_docs.py::zoo_swap_table')
