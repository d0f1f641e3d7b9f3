"""mmengine training checkpoints under ``torch.load(weights_only=True)``.

:func:`to_weights_only` / :func:`from_weights_only` turn the non-tensor objects mmengine pickles (message-hub
``HistoryBuffer``, numpy scalars and arrays) into ``weights_only``-safe containers and back; they are used by
:class:`mmext.engine.hooks.WeightsOnlyCheckpointHook`. A file saved without that hook can only be unpickled in
full: :func:`upgrade_training_checkpoint` rewrites the user's own one into the safe layout.
"""
from __future__ import annotations

import copy
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from mmext.fileio import atomic_path

from .io import TRUSTED_PREFIX, CheckpointError, load_trusted_checkpoint

#: Key marking a value that :func:`to_weights_only` encoded.
ENCODED_TAG = '__weights_only__'
_NUMPY_TO_TENSOR_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64,
    np.complex64, np.complex128))

_BUILTIN_SCALARS = (str, bytes, int, float, complex, bool, type(None))
_TORCH_VALUES = (torch.Tensor, torch.dtype, torch.device, torch.Size)


def to_weights_only(obj: Any, path: str = 'checkpoint') -> Any:
    """Return ``obj`` with every value ``torch.load(weights_only=True)`` would refuse replaced by a tagged dict.

    Encodes mmengine's ``HistoryBuffer``, numpy arrays and scalars (``np.float64`` included, though it subclasses
    ``float``) and ``frozenset``; turns other subclasses of ``dict``, ``tuple``, ``str``, ``int``, ``float`` (an
    ``OrderedDict`` stays one, a namedtuple becomes a ``tuple``, an ``IntEnum`` an ``int``) into the base type.
    Containers without such values are returned as they are (a state dict keeps its ``_metadata``); changed
    containers are copied, never mutated. Anything else raises ``TypeError`` naming its place (``path``).
    """
    if type(obj) in _BUILTIN_SCALARS or isinstance(obj, _TORCH_VALUES):
        return obj
    if isinstance(obj, HistoryBuffer):
        log_history, count_history = obj.data
        return {ENCODED_TAG: 'HistoryBuffer', 'max_length': int(obj.max_length),
                'log_history': to_weights_only(log_history, path), 'count_history':
                to_weights_only(count_history, path)}
    if isinstance(obj, np.ndarray):
        if obj.dtype in _NUMPY_TO_TENSOR_DTYPES and obj.dtype.isnative:
            data = torch.from_numpy(np.ascontiguousarray(obj).reshape(-1).copy())
        else:
            data = [to_weights_only(x, f'{path}[]') for x in obj.reshape(-1).tolist()]
        return {ENCODED_TAG: 'ndarray', 'dtype': obj.dtype.str, 'shape': list(obj.shape), 'data': data}
    if isinstance(obj, np.generic):
        value = obj.item()
        if type(value) not in _BUILTIN_SCALARS:
            raise TypeError(f'{path}: numpy {obj.dtype} value {obj!r} cannot be stored in a weights_only checkpoint')
        return {ENCODED_TAG: 'numpy_scalar', 'dtype': obj.dtype.str, 'value': value}
    if isinstance(obj, _BUILTIN_SCALARS):  # bool is final, so only str/bytes/int/float/complex subclasses get here
        return next(base(obj) for base in _BUILTIN_SCALARS if isinstance(obj, base))
    if isinstance(obj, Mapping):
        items = {}
        for k, v in obj.items():
            if not (type(k) in _BUILTIN_SCALARS or type(k) is tuple and all(type(x) in _BUILTIN_SCALARS for x in k)):
                raise TypeError(f'{path}: key {k!r} of type {type(k).__name__} cannot be stored in a weights_only '
                                'checkpoint')
            items[k] = to_weights_only(v, f'{path}.{k}')
        if type(obj) in (dict, OrderedDict) and all(items[k] is obj[k] for k in items):
            return obj
        out = copy.copy(obj) if type(obj) in (dict, OrderedDict) else {}
        out.update(items)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        values = [to_weights_only(v, f'{path}[{i}]') for i, v in enumerate(obj)]
        if isinstance(obj, frozenset):
            return {ENCODED_TAG: 'frozenset', 'items': values}
        if type(obj) in (list, tuple, set) and all(a is b for a, b in zip(values, obj)):
            return obj
        return set(values) if isinstance(obj, set) else list(values) if isinstance(obj, list) else tuple(values)
    raise TypeError(f'{path}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be stored in a weights_only '
                    'checkpoint; store it as tensors, numbers, strings, lists or dicts')


def from_weights_only(obj: Any) -> Any:
    """Inverse of :func:`to_weights_only`: rebuild ``HistoryBuffer``, numpy and ``frozenset`` values.

    Values that were never encoded pass through, so legacy (fully pickled) checkpoints are returned unchanged.
    """
    if isinstance(obj, _BUILTIN_SCALARS + _TORCH_VALUES):
        return obj
    if isinstance(obj, Mapping):
        kind = obj.get(ENCODED_TAG)
        if isinstance(kind, str):
            return _decode(kind, obj)
        items = {k: from_weights_only(v) for k, v in obj.items()}
        if all(items[k] is obj[k] for k in items):
            return obj
        out = copy.copy(obj)
        out.update(items)
        return out
    if isinstance(obj, (list, tuple)):
        values = [from_weights_only(v) for v in obj]
        if all(a is b for a, b in zip(values, obj)):
            return obj
        return values if isinstance(obj, list) else tuple(values)
    return obj


def _decode(kind: str, enc: Mapping) -> Any:
    if kind == 'ndarray':
        dtype = np.dtype(enc['dtype'])
        data = enc['data']
        if isinstance(data, torch.Tensor):  # on the GPU when the Runner resumes with map_location='cuda'
            flat = data.detach().cpu().numpy().astype(dtype, copy=False)
        else:
            flat = np.empty(len(data), dtype=dtype)
            flat[:] = [from_weights_only(x) for x in data] if dtype.kind == 'O' else data
        return flat.reshape(enc['shape'])
    if kind == 'numpy_scalar':
        return np.array(enc['value'], dtype=np.dtype(enc['dtype']))[()]
    if kind == 'HistoryBuffer':
        return HistoryBuffer(_decode('ndarray', enc['log_history']), _decode('ndarray', enc['count_history']),
                             max_length=enc['max_length'])
    if kind == 'frozenset':
        return frozenset(from_weights_only(v) for v in enc['items'])
    raise CheckpointError(f'checkpoint holds a value encoded as {kind!r}, which this mmext version cannot decode')


def upgrade_training_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Rewrite the user's OWN legacy mmengine training checkpoint so ``weights_only=True`` loads it.

    ``src`` is unpickled in full (see :func:`load_trusted_checkpoint`); ``dst`` holds the same content encoded by
    :func:`to_weights_only`, which :class:`~mmext.engine.hooks.WeightsOnlyCheckpointHook` decodes on resume.
    """
    src, dst = str(src), str(dst)
    checkpoint = load_trusted_checkpoint(src.removeprefix(TRUSTED_PREFIX))
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{src} holds a {type(checkpoint).__name__}, not an mmengine checkpoint dict')
    encoded = {k: to_weights_only(v, str(k)) for k, v in checkpoint.items()}
    with atomic_path(dst) as temporary:  # dst appears only complete and proven loadable
        torch.save(encoded, temporary)
        torch.load(temporary, map_location='cpu', weights_only=True)  # proves the result is safe to load
    return dst
