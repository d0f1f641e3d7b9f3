"""The package's layout rules, checked on its source: imports go one way, private upstream names stay in compat,
the package holds the library only (no development tooling, no command lines), the safety hooks are listed once."""
import ast
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'mmext'
SOURCES = sorted(PACKAGE.rglob('*.py'))
# Development tooling lives next to the tools or tests that use it, never in the installable package: module file
# names (fnmatch on the stem) and what they would be.
DEV_TOOLING = {
    '*bench*': 'a speed harness', '*gpu_check*': 'a device check', '*kernel_report*': 'a compiler report',
    '*profil*': 'a profiler', 'synthetic*': 'a synthetic data set for tests and demos',
    '*classifier*': 'classification forms, used only by tests and tools',
}
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


def test_package_holds_no_development_tooling():
    offenders = [f'mmext/{path.relative_to(PACKAGE)} looks like {why} ({pattern!r}): move it beside its tool or test'
                 for path in SOURCES for pattern, why in DEV_TOOLING.items() if fnmatch(path.stem, pattern)]
    assert not offenders, offenders


def test_package_has_no_command_lines():
    """Command lines are tools/: no module of mmext builds an ``ArgumentParser``, defines a top-level ``main`` or runs
    as ``__main__``. (Functions that add shared flags to a tool's parser are library code.)"""
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        where = f'mmext/{path.relative_to(PACKAGE)}'
        offenders += [f'{where}:{node.lineno} def main' for node in tree.body
                      if isinstance(node, ast.FunctionDef) and node.name == 'main']
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and '__main__' in ast.unparse(node) and '__name__' in ast.unparse(node):
                offenders.append(f'{where}:{node.lineno} {ast.unparse(node)}')
            elif isinstance(node, ast.Call) and ast.unparse(node.func).split('.')[-1] == 'ArgumentParser':
                offenders.append(f'{where}:{node.lineno} {ast.unparse(node.func)}(...)')
    assert not offenders, offenders


def _hook_names() -> set[str]:
    """Names of the hooks mmext registers (``@HOOKS.register_module()`` classes)."""
    names = set()
    for path in (PACKAGE / 'engine' / 'hooks').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(d, ast.Call) and ast.unparse(d.func) == 'HOOKS.register_module'
                    for d in node.decorator_list):
                names.add(node.name)
    return names


def _hook_name(node: ast.expr, hooks: set[str]) -> str | None:
    """The mmext hook an element of a list literal names: ``'XHook'``, ``dict(type='XHook')`` or ``{'type': ...}``."""
    if isinstance(node, ast.Call) and ast.unparse(node.func) == 'dict':
        node = next((k.value for k in node.keywords if k.arg == 'type'), None)
    elif isinstance(node, ast.Dict):
        node = next((v for k, v in zip(node.keys, node.values)
                     if isinstance(k, ast.Constant) and k.value == 'type'), None)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.rsplit('.', 1)[-1] in hooks:
        return node.value.rsplit('.', 1)[-1]
    return None


def test_safety_hooks_declared_once():
    """The training safety hooks are one list literal in the package; no other list/tuple/set in mmext/, configs/
    or tools/ names two or more of mmext's hooks (a second list drifts from the first), and one ``ensure_*``
    function adds them."""
    hooks = _hook_names()
    assert {'SafeCheckpointHook', 'NonFiniteLossHook', 'WeightsOnlyCheckpointHook'} <= hooks, hooks
    declarations, ensure_helpers = [], []
    for path in sorted([*SOURCES, *(REPO / 'configs').rglob('*.py'), *(REPO / 'tools').rglob('*.py')]):
        tree = ast.parse(path.read_text())
        exports = {id(node.value) for node in ast.walk(tree)
                   if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == '__all__'}
        for node in ast.walk(tree):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and id(node) not in exports:
                named = [name for element in node.elts if (name := _hook_name(element, hooks))]
                if len(named) >= 2:
                    declarations.append(f'{path.relative_to(REPO)}:{node.lineno} {named}')
            elif isinstance(node, ast.FunctionDef) and re.fullmatch(r'ensure_\w*hooks?', node.name):
                ensure_helpers.append(f'{path.relative_to(REPO)}:{node.lineno} {node.name}')
    assert len(declarations) == 1 and declarations[0].startswith('mmext/'), declarations
    assert len(ensure_helpers) == 1, ensure_helpers
