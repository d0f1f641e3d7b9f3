"""Config texts stored inside checkpoints, reduced to data before anything upstream executes them.

mmengine stores the run's config as Python text (``meta['cfg']``, ``message_hub['runtime_info']['cfg']``; old
mmcv checkpoints use ``meta['config']``) and hands it to ``Config.fromstring``, which *executes* it: on
``Runner.resume`` and in ``BaseInferencer`` (``MMSegInferencer(model=None, weights=...)``). A checkpoint that
passes ``torch.load(weights_only=True)`` can therefore still run code. :func:`literal_config_text` keeps only what
mmengine itself writes -- assignments of literals (numbers, strings, ``None``/``True``/``False``, lists, tuples,
sets, ``{...}`` and ``dict(key=...)``) -- and drops every other statement, so the text that upstream executes is
data. :func:`strip_executable_configs` applies it to every such text in a loaded checkpoint.
"""
from __future__ import annotations

import ast
import sys
from collections.abc import MutableMapping
from typing import Any

# Keys whose string values upstream turns into a Config (mmengine 0.10.7: Runner.resume reads meta['config'];
# BaseInferencer._init_model reads message_hub['runtime_info']['cfg'], then meta['cfg']).
CONFIG_TEXT_KEYS = ('cfg', 'config')
# Names a literal config may not rebind: the calls a literal is allowed to make.
_CONSTRUCTORS = ('dict', 'list', 'tuple', 'set')
# Top-level names that make mmengine read other files or import modules when it loads the text.
_LOADER_DIRECTIVES = ('_base_', 'custom_imports')


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float, complex))
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_literal(k) for k in node.keys) and all(_is_literal(v) for v in node.values)
    if isinstance(node, ast.Call):  # dict(a=1), list((1, 2)), tuple([...]): what pretty_text writes
        return (isinstance(node.func, ast.Name) and node.func.id in _CONSTRUCTORS
                and all(_is_literal(a) for a in node.args)
                and all(k.arg is not None and _is_literal(k.value) for k in node.keywords))
    return False


def _imports_already_loaded(node: ast.AST) -> bool:
    """``custom_imports=dict(imports=[...])`` naming only modules this process has imported: loading runs nothing."""
    try:
        value = ast.literal_eval(node) if not isinstance(node, ast.Call) else {
            k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except ValueError:
        return False
    imports = value.get('imports') if isinstance(value, dict) else None
    imports = [imports] if isinstance(imports, str) else imports
    return isinstance(imports, (list, tuple)) and all(isinstance(m, str) and m in sys.modules for m in imports)


def literal_config_text(text: str) -> tuple[str, list[str]]:
    """Keep the statements of a config text that are plain data; return ``(kept text, dropped statements)``.

    Kept: ``name = <literal>`` (several targets allowed) where the literal is built from constants, lists, tuples,
    sets, dict displays and ``dict(...)``/``list(...)``/``tuple(...)``/``set(...)`` calls of literals. Dropped:
    everything else (imports, other calls, names, attribute access, comprehensions, lambdas, ...), assignments to
    ``dict``/``list``/``tuple``/``set``, ``_base_`` (makes mmengine read other files) and ``custom_imports`` unless
    every module it names is already imported. A text that does not parse is dropped whole. The kept text, run by
    ``Config.fromstring``, only builds data.
    """
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError) as e:
        return '', [f'the whole text (not valid Python: {e.__class__.__name__})']
    kept, dropped = [], []
    for stmt in module.body:
        names = [t.id for t in stmt.targets if isinstance(t, ast.Name)] if isinstance(stmt, ast.Assign) else []
        ok = (isinstance(stmt, ast.Assign) and len(names) == len(stmt.targets) and _is_literal(stmt.value)
              and not set(names) & set(_CONSTRUCTORS))
        if ok and '_base_' in names:
            ok = False
        if ok and 'custom_imports' in names:
            ok = _imports_already_loaded(stmt.value)
        if ok:
            kept.append(stmt)
        else:
            source = ast.get_source_segment(text, stmt) or type(stmt).__name__
            dropped.append(f'line {stmt.lineno}: {" ".join(source.split())[:120]}')
    return ast.unparse(ast.Module(body=kept, type_ignores=[])), dropped


def strip_executable_configs(checkpoint: Any, source: str = '<checkpoint>') -> list[str]:
    """Reduce every config text in a loaded checkpoint to data, in place; return one line per change.

    Looks at the values under :data:`CONFIG_TEXT_KEYS` in the checkpoint's ``meta`` and ``message_hub``'s
    ``runtime_info`` (where mmengine and mmcv put them). A value there that is not a string is removed.
    """
    if not isinstance(checkpoint, MutableMapping):
        return []
    notes: list[str] = []
    places: list[tuple[str, MutableMapping]] = []
    meta = checkpoint.get('meta')
    if isinstance(meta, MutableMapping):
        places.append(("['meta']", meta))
    hub = checkpoint.get('message_hub')
    runtime = hub.get('runtime_info') if isinstance(hub, MutableMapping) else None
    if isinstance(runtime, MutableMapping):
        places.append(("['message_hub']['runtime_info']", runtime))
    for where, mapping in places:
        for key in CONFIG_TEXT_KEYS:
            if key not in mapping:
                continue
            value = mapping[key]
            if not isinstance(value, str):
                del mapping[key]
                notes.append(f"{source}{where}['{key}']: removed (a {type(value).__name__}, not config text)")
                continue
            kept, dropped = literal_config_text(value)
            if dropped:
                mapping[key] = kept
                notes.append(f"{source}{where}['{key}']: dropped {len(dropped)} statement(s) that are not literal "
                             f"assignments ({'; '.join(dropped[:3])}{' ...' if len(dropped) > 3 else ''})")
    return notes
