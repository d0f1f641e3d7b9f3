"""One filter for upstream warnings nobody can act on (mmext.quiet), called by every tool that imports mmext."""
import ast
import warnings
from pathlib import Path

from mmext.quiet import HARMLESS_WARNINGS, quiet_upstream_warnings

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_harmless_warnings_are_dropped_and_others_kept():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        quiet_upstream_warnings()
        warnings.warn('pkg_resources is deprecated as an API. See ...', DeprecationWarning, stacklevel=1)
        warnings.warn('``build_loss`` would be deprecated soon, please use ...', UserWarning, stacklevel=1)
        warnings.warn('Default ``avg_non_ignore`` is False, if you would like ...', UserWarning, stacklevel=1)
        warnings.warn('something the user must see', UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ['something the user must see']
    assert len(HARMLESS_WARNINGS) == 4


def test_every_tool_that_imports_mmext_calls_it_first():
    """In the first two statements of ``main`` (after parsing the arguments at most): before anything is built."""
    missing = []
    for path in sorted((REPO_ROOT / 'tools').rglob('*.py')):
        tree = ast.parse(path.read_text())
        imports_mmext = any(isinstance(n, ast.ImportFrom) and (n.module or '').startswith('mmext') or
                            isinstance(n, ast.Import) and any(a.name.startswith('mmext') for a in n.names)
                            for n in tree.body)
        main = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == 'main'), None)
        if not (imports_mmext and main):
            continue
        body = [n for n in main.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        if not any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                   and getattr(n.value.func, 'id', None) == 'quiet_upstream_warnings' for n in body[:2]):
            missing.append(str(path.relative_to(REPO_ROOT)))
    assert not missing, f'tools whose main() does not start with quiet_upstream_warnings(): {missing}'
