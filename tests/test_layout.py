"""The package's layout rules, checked on its source: imports go one way, private upstream names stay in compat."""
import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmext'
SOURCES = sorted(PACKAGE.rglob('*.py'))
# Modules of another project whose underscore names mmext may only reach through mmext/compat/upstream.py.
UPSTREAM = ('torch', 'torchvision', 'triton', 'mmengine', 'mmcv', 'mmseg', 'mmdet', 'timm', 'huggingface_hub')


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path) -> set[str]:
    """mmext modules imported anywhere in ``path``, function bodies included (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == '__init__.py' else module.rsplit('.', 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith('mmext'))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            if base.startswith('mmext'):
                found.add(base)
                found.update(f'{base}.{a.name}' for a in node.names)  # `from pkg import submodule`
    known = {_module_name(p) for p in SOURCES}
    return {name for name in found if name in known and name != module}


def test_sources_found():
    assert len(SOURCES) > 30 and (PACKAGE / 'checkpoint' / 'io.py') in SOURCES


def test_no_import_cycle_between_modules():
    """Counting imports inside functions; a package's ``__init__`` importing its own modules is not a cycle."""
    graph = {_module_name(p): _imports(p) for p in SOURCES}
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not (name.startswith(d + '.') and d in graph)}  # module -> own package
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail('import cycle: ' + ' -> '.join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_generic_checkpoint_code_never_imports_models():
    offenders = [str(p) for p in (PACKAGE / 'checkpoint').rglob('*.py')
                 if any(name.startswith(('mmext.models', 'mmext.apis', 'mmext.engine')) for name in _imports(p))]
    assert not offenders


def test_private_upstream_names_only_in_compat_upstream():
    pattern = re.compile(r'\b(?:' + '|'.join(UPSTREAM) + r')(?:\.\w+)*\._[a-z]\w*')
    offenders = []
    for path in SOURCES:
        if path == PACKAGE / 'compat' / 'upstream.py':
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split('.')[0] in UPSTREAM:
                private = [a.name for a in node.names if a.name.startswith('_') and not a.name.startswith('__')]
                if private or any(part.startswith('_') for part in node.module.split('.')):
                    offenders.append(f'{path.relative_to(PACKAGE)}:{node.lineno} from {node.module} import {private}')
            elif isinstance(node, ast.Attribute) and node.attr.startswith('_') and not node.attr.startswith('__'):
                text = ast.unparse(node)
                if pattern.fullmatch(text):
                    offenders.append(f'{path.relative_to(PACKAGE)}:{node.lineno} {text}')
    assert not offenders, offenders
