"""Reading, checking and converting checkpoints without running code from them.

Backbone weights:
    :func:`read_checkpoint` reads a local file, URL or OpenMMLab model name in any released format (plain state
    dict ``.pth``, timm's ``pytorch_model.bin`` and ``model.safetensors``, mmengine ``{'state_dict', 'meta'}``,
    ``{'model': ...}`` wrappers, DDP ``module.`` prefixes) with ``torch.load(weights_only=True)`` or safetensors.
    :func:`extract_backbone_state_dict` finds the backbone's tensors in it, :func:`match_backbone_state_dict`
    compares them with a module, :func:`load_backbone_checkpoint` loads and logs one summary (or raises), and
    :func:`convert_checkpoint` writes an mmseg-ready backbone checkpoint.

mmengine training checkpoints:
    :func:`to_weights_only` / :func:`from_weights_only` turn the non-tensor objects mmengine pickles (message-hub
    ``HistoryBuffer``, numpy scalars and arrays) into ``weights_only``-safe containers and back; they are used by
    :class:`mmext.engine.hooks.WeightsOnlyCheckpointHook`. A file saved without that hook can only be unpickled
    in full: :func:`load_trusted_checkpoint` (the ``trusted://`` prefix) does so for the user's own files, and
    :func:`upgrade_training_checkpoint` rewrites one into the safe layout.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import logging
import os
import os.path as osp
import pickle
import pickletools
import re
import struct
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log

#: Prefix marking a checkpoint as the user's own, to be unpickled in full (``weights_only=False``).
TRUSTED_PREFIX = 'trusted://'
#: Key marking a value that :func:`to_weights_only` encoded.
ENCODED_TAG = '__weights_only__'

_URL_PREFIXES = ('http://', 'https://')
_MODEL_NAME_PREFIXES = ('open-mmlab://', 'openmmlab://', 'torchvision://', 'modelzoo://', 'mmcls://')
_HEAD_PREFIX = 'head.'
_NEW_MODULE_PREFIXES = ('out_norms.',)  # modules the released checkpoints lack; loaded when present
_BN_COUNTER = 'num_batches_tracked'
# Globals an mmengine training checkpoint pickles besides torch's own; their presence (and nothing stranger)
# marks a legacy training checkpoint rather than a foreign pickle.
_LEGACY_TRAINING_GLOBAL_PREFIXES = ('mmengine.', 'numpy', '_codecs.', 'builtins.getattr', '__builtin__.getattr',
                                    'collections.', 'torch.', 'copyreg.')
_NUMPY_TO_TENSOR_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64,
    np.complex64, np.complex128))


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint would need to run pickled Python code to load; nothing from it was executed."""


# ---------------------------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------------------------

def read_checkpoint(filename: str | os.PathLike, map_location: str | torch.device | None = 'cpu') -> Any:
    """Read a checkpoint without running code from it.

    Args:
        filename: A local path, an ``http(s)://`` URL (downloaded once, under ``torch.hub.get_dir()/checkpoints``),
            an OpenMMLab model name (``open-mmlab://``, ``torchvision://``, ``mmcls://``), any other URI
            mmengine's fileio can fetch (``s3://``, ...), or ``trusted://<local path>`` for the user's own file
            (see :func:`load_trusted_checkpoint`).
        map_location: Where tensors go, as in :func:`torch.load`.

    Returns:
        Whatever the file holds: a state dict, or a dict wrapping one.

    Raises:
        FileNotFoundError: No such local file.
        UnsafeCheckpointError: The file pickles Python objects ``weights_only`` loading refuses.
        CheckpointError: The file is truncated, corrupt or not a checkpoint.
    """
    filename = str(filename)
    if filename.startswith(TRUSTED_PREFIX):
        return load_trusted_checkpoint(filename[len(TRUSTED_PREFIX):], map_location)
    with _local_copy(filename) as local_path:
        return _read_local(local_path, map_location, filename)


def load_trusted_checkpoint(filename: str | os.PathLike, map_location: str | torch.device | None = 'cpu') -> Any:
    """Unpickle the user's OWN checkpoint in full (``weights_only=False``), e.g. one mmengine saved before
    :class:`~mmext.engine.hooks.WeightsOnlyCheckpointHook` existed.

    This runs whatever code the file's pickle names: never use it for downloaded weights. It is reached through
    the explicit ``trusted://`` prefix (``--resume trusted://work_dirs/x/iter_1000.pth``,
    ``load_from='trusted://...'``, ``init_cfg=dict(type='Pretrained', checkpoint='trusted://...')``).
    """
    filename = osp.expanduser(str(filename))
    if '://' in filename:
        raise CheckpointError(f'trusted:// takes a local file of your own, not {filename!r}')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found')
    print_log(f'Loading {filename} with weights_only=False because it is marked trusted://: any code pickled in '
              'it runs. Do this only for checkpoints you made yourself.', logger='current', level=logging.WARNING)
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as e:
        raise CheckpointError(f'{filename} is not a readable checkpoint ({type(e).__name__}: {e})') from e


@contextlib.contextmanager
def _local_copy(filename: str) -> Iterator[str]:
    """Yield a local path holding ``filename``, downloading or fetching it first if it is remote."""
    if filename.startswith(_URL_PREFIXES):
        yield _download(filename)
    elif filename.startswith(_MODEL_NAME_PREFIXES):
        with _local_copy(_resolve_model_name(filename)) as path:
            yield path
    elif re.match(r'^[\w+.-]+:(?:[\w+.-]+:)?//', filename):  # s3://, petrel://, cluster:s3://, ...
        from mmengine.fileio import get_local_path
        with get_local_path(filename) as path:
            yield str(path)
    else:
        yield osp.expanduser(filename)


def _download(url: str) -> str:
    """Download ``url`` once per node into torch's hub cache and return the local path.

    When distributed, local rank 0 of every node downloads while the other ranks wait at a barrier; a failed
    download is raised on every rank after the barrier, so no rank is left waiting.
    """
    from mmengine.dist import get_dist_info, get_local_rank

    name = osp.basename(urlparse(url).path) or 'checkpoint'
    # One folder per URL: timm/Hugging Face files are all called model.safetensors or pytorch_model.bin.
    folder = osp.join(torch.hub.get_dir(), 'checkpoints', 'mmext', hashlib.sha256(url.encode()).hexdigest()[:16])
    path = osp.join(folder, name)
    _, world_size = get_dist_info()
    error = None
    if get_local_rank() == 0 and not osp.isfile(path):
        os.makedirs(folder, exist_ok=True)
        print_log(f'Downloading {url} to {path}', logger='current')
        try:
            torch.hub.download_url_to_file(url, path, progress=os.isatty(2))
        except Exception as e:
            error = CheckpointError(f'could not download checkpoint {url}: {type(e).__name__}: {e}')
    if world_size > 1:
        torch.distributed.barrier()
    if error is not None:
        raise error
    if not osp.isfile(path):
        raise CheckpointError(f'could not download checkpoint {url}: the download on this node failed '
                              f'({path} is missing; see local rank 0\'s log)')
    return path


def _resolve_model_name(name: str) -> str:
    """Resolve an OpenMMLab model name (``open-mmlab://resnet50_v1c``, ``torchvision://resnet50``) to a URL or
    path with mmengine's own tables."""
    from mmengine.runner import checkpoint as mm_ckpt

    scheme, model = name.split('://', 1)
    if scheme in ('open-mmlab', 'openmmlab'):
        model = mm_ckpt.get_deprecated_model_names().get(model, model)
        table = mm_ckpt.get_external_models()
    elif scheme in ('torchvision', 'modelzoo'):
        table = mm_ckpt.get_torchvision_models()
    else:
        table = mm_ckpt.get_mmcls_models()
    if model not in table:
        raise CheckpointError(f'{name}: mmengine knows no {scheme}:// model named {model!r}')
    target = table[model]
    return target if target.startswith(_URL_PREFIXES) else osp.join(mm_ckpt._get_mmengine_home(), target)


def _read_local(path: str, map_location: Any, display: str) -> Any:
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {display} not found' + (f' (looked at {path})' if path != display else ''))
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(16)
    if size == 0:
        raise CheckpointError(f'{display} is empty (0 bytes): not a checkpoint; was the download or copy cut off?')
    is_zip = head[:4] == b'PK\x03\x04'
    if not is_zip and (_looks_like_safetensors(head, size) or path.endswith('.safetensors')):
        return _read_safetensors(path, map_location, display, size)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refused_globals(path) if 'weights only' in str(e).lower() else []
        if not refused:
            raise CheckpointError(_not_a_checkpoint(display, size, head, e)) from None
        raise UnsafeCheckpointError(_unsafe_message(display, refused)) from None
    except Exception as e:  # torch's readers fail on garbage with many exception types
        raise CheckpointError(_not_a_checkpoint(display, size, head, e)) from None


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    header_len = struct.unpack('<Q', head[:8])[0]
    return 0 < header_len < size and head[8:9] == b'{'


def _read_safetensors(path: str, map_location: Any, display: str, size: int) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    device = str(map_location) if isinstance(map_location, (str, torch.device)) else 'cpu'
    try:
        return load_file(path, device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f'{display} is not a readable safetensors file ({size} bytes; {e}); is it truncated '
                              'or corrupt?') from None


def _not_a_checkpoint(display: str, size: int, head: bytes, error: Exception) -> str:
    if head.lstrip()[:1] == b'<':
        what = 'it looks like an HTML/XML page (a failed download?)'
    elif head[:4] == b'PK\x03\x04':
        what = 'a zip archive torch cannot read: truncated or corrupt'
    else:
        what = 'neither a torch checkpoint nor a safetensors file'
    if isinstance(error, pickle.UnpicklingError):  # torch's text here is about weights_only, not this file
        return f'{display} is not a readable checkpoint ({size} bytes; {what})'
    reason = ' '.join(str(error).split()).split('. ')[0][:200]
    return f'{display} is not a readable checkpoint ({size} bytes; {what}): {type(error).__name__}: {reason}'


def _refused_globals(path: str) -> list[str]:
    """Globals in the file's pickle beyond torch's own and the containers weights_only always allows."""
    allowed = ('torch.', 'collections.OrderedDict', '_codecs.encode', 'builtins.set', '__builtin__.set')
    return [n for n in pickle_globals(path) if not n.startswith(allowed)]


def check_weights_only_loadable(filename: str | os.PathLike) -> None:
    """Raise :class:`UnsafeCheckpointError` (saying what to do) if a local torch checkpoint pickles objects that
    ``torch.load(weights_only=True)`` refuses, e.g. a training checkpoint saved without
    :class:`~mmext.engine.hooks.WeightsOnlyCheckpointHook`. Reads only the pickle's opcodes; costs no tensor I/O.
    """
    refused = [n for n in _refused_globals(str(filename)) if not n.startswith('<unresolved')]
    if refused:  # unresolved names alone are left for torch to judge: a pre-check must not block a good file
        raise UnsafeCheckpointError(_unsafe_message(str(filename), refused))


def _unsafe_message(display: str, unusual: list[str]) -> str:
    listed = _preview(unusual)
    legacy = bool(unusual) and all(n.startswith(_LEGACY_TRAINING_GLOBAL_PREFIXES) for n in unusual) and any(
        n.startswith(('mmengine.', 'numpy')) for n in unusual)
    if legacy:
        return (f'Refused to unpickle {display}: it is an mmengine training checkpoint saved without '
                f'WeightsOnlyCheckpointHook, and it pickles Python objects ({listed}) that torch.load(weights_only='
                'True) does not allow. Nothing from it was executed. If it is YOUR OWN checkpoint, either load it '
                f"as 'trusted://{display}' (--resume / load_from / init_cfg checkpoint all accept the prefix) or "
                f"rewrite it once with mmext.utils.checkpoint.upgrade_training_checkpoint('{display}', "
                "'<new>.pth'); add custom_hooks=[dict(type='WeightsOnlyCheckpointHook')] so new checkpoints "
                'load safely.')
    return (f'Refused to unpickle {display}: it references Python objects ({listed}) that torch.load(weights_only='
            'True) does not allow, so loading it could run code. Nothing from it was executed. Released '
            'InceptionNeXt weights (official .pth, timm .bin/.safetensors) never need this. Only if you made this '
            f"file yourself and trust it, load it as 'trusted://{display}'.")


def pickle_globals(filename: str | os.PathLike) -> list[str]:
    """The Python globals (``module.name``) a pickled checkpoint would import, read from its opcodes.

    Nothing is unpickled. Works on torch's zip format (``*/data.pkl``), the legacy format and plain pickles;
    ``STACK_GLOBAL`` names are recovered on a best-effort basis. Returns ``[]`` for files that are not pickles.
    """
    found: set[str] = set()
    with open(filename, 'rb') as f:
        is_zip = f.read(4) == b'PK\x03\x04'
    if is_zip:
        try:
            with zipfile.ZipFile(filename) as zf:
                for name in zf.namelist():
                    if name.rsplit('/', 1)[-1] == 'data.pkl':
                        with zf.open(name) as stream:
                            _scan_pickles(stream, found)
        except zipfile.BadZipFile:
            return []
    else:
        with open(filename, 'rb') as stream:
            _scan_pickles(stream, found)
    return sorted(found)


def _scan_pickles(stream, found: set[str]) -> None:
    """Collect globals from consecutive pickles in ``stream`` (torch's legacy format writes several).

    ``GLOBAL`` names are exact. For ``STACK_GLOBAL`` the two values pushed just before are tracked, strings as
    themselves and anything else as ``None``; a name is reported only when both were strings, else
    ``'<unresolved STACK_GLOBAL>'``, so a wrong name is never made up.
    """
    string_ops = {'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE', 'SHORT_BINSTRING', 'BINSTRING',
                  'STRING'}
    no_push_ops = {'PROTO', 'FRAME', 'MEMOIZE', 'PUT', 'BINPUT', 'LONG_BINPUT', 'STOP'}
    for _ in range(8):
        pushed: list[str | None] = []
        memo: dict[int, str | None] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name in ('GLOBAL', 'INST'):
                    found.add(arg.replace(' ', '.'))
                if name == 'MEMOIZE':
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif name in ('PUT', 'BINPUT', 'LONG_BINPUT'):
                    memo[arg] = pushed[-1] if pushed else None
                elif name == 'STACK_GLOBAL':
                    module, qualname = pushed[-2:] if len(pushed) >= 2 else (None, None)
                    found.add(f'{module}.{qualname}' if module and qualname else '<unresolved STACK_GLOBAL>')
                    pushed.append(None)
                elif name in string_ops:
                    pushed.append(arg if isinstance(arg, str) else arg.decode('latin1'))
                elif name in ('GET', 'BINGET', 'LONG_BINGET'):
                    pushed.append(memo.get(arg))
                elif name not in no_push_ops:
                    pushed.append(None)
        except Exception:  # raw tensor bytes after the pickles, or not a pickle at all
            return


# ---------------------------------------------------------------------------------------------------------------
# Finding the backbone in a checkpoint
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class BackboneStateDict:
    """A backbone's tensors, under the backbone's own names, and what was set aside to get them."""

    state_dict: dict[str, torch.Tensor]
    source_format: str
    prefix: str = ''
    head_keys: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)


_ANCHOR = re.compile(r'^(.*?)(?:stem\.0\.weight$|stages\.\d+\.(?:blocks|downsample)\.)')


def unwrap_state_dict(checkpoint: Any, source: str = '<checkpoint>') -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a loaded checkpoint under the model's own names, and a description of the wrapping found.

    Unwraps ``{'state_dict': ...}`` (mmengine) and ``{'model': ...}`` and strips DDP's ``module.`` prefix;
    non-tensor entries are left out. Raises :class:`CheckpointError` naming ``source`` when there are no tensors.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{source} holds a {type(checkpoint).__name__}, not a state dict or a dict wrapping '
                              'one')
    source_format = 'plain state dict'
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint, source_format = checkpoint[wrapper], f"{{'{wrapper}': ...}} checkpoint"
            break
    tensors = {k: v for k, v in checkpoint.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f'{source} contains no tensors; top-level keys: {_preview(list(checkpoint))}')
    if any(k.startswith('module.') for k in tensors):
        tensors = {k.removeprefix('module.'): v for k, v in tensors.items()}
        source_format += ', DDP module. prefix stripped'
    return tensors, source_format


def extract_backbone_state_dict(checkpoint: Any, prefix: str | None = None,
                                source: str = '<checkpoint>') -> BackboneStateDict:
    """Find the InceptionNeXt backbone's tensors in a loaded checkpoint.

    Unwraps ``{'state_dict': ...}`` (mmengine) and ``{'model': ...}``, strips DDP's ``module.``, selects the keys
    under ``prefix`` (auto-detected when ``None``: the one prefix in front of ``stem.0.weight`` /
    ``stages.N.blocks``, e.g. ``'backbone.'`` in a segmentor checkpoint whose ``decode_head.*`` keys are then set
    aside), and drops the classification ``head.*``. ``prefix=''`` means the keys are already the backbone's.
    """
    tensors, source_format = unwrap_state_dict(checkpoint, source)
    if prefix is None:
        prefix = _detect_prefix(tensors, source)
    elif prefix and not prefix.endswith('.'):
        prefix += '.'
    selected = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not selected:
        raise CheckpointError(f"no key of {source} starts with prefix {prefix!r}; its key groups are "
                              f'{_group_counts(tensors)}')
    ignored = sorted(k for k in tensors if not k.startswith(prefix))
    head = sorted(k for k in selected if k.startswith(_HEAD_PREFIX))
    state_dict = {k: v for k, v in selected.items() if not k.startswith(_HEAD_PREFIX)}
    if not state_dict:
        raise CheckpointError(f'{source} holds only classification-head tensors under prefix {prefix!r}')
    return BackboneStateDict(state_dict, source_format, prefix, head, ignored)


def _detect_prefix(tensors: Mapping[str, torch.Tensor], source: str) -> str:
    counts: Counter[str] = Counter()
    for key in tensors:
        match = _ANCHOR.match(key)
        if match and (match.group(1) == '' or match.group(1).endswith('.')):
            counts[match.group(1)] += 1
    if len(counts) == 1:
        return next(iter(counts))
    if not counts:
        raise CheckpointError(f'{source} does not look like an InceptionNeXt checkpoint: no key ends in '
                              f'stem.0.weight or contains stages.N.blocks; its key groups are '
                              f'{_group_counts(tensors)}. Pass prefix=... if the backbone is stored under other names')
    raise CheckpointError(f'{source} holds several InceptionNeXt-like key sets under prefixes '
                          f'{dict(counts.most_common())}; pass prefix=... to choose one')


# ---------------------------------------------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------------------------------------------

def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> dict | None:
    """The ``arch`` dict (depths, dims, mlp_ratios, token_mixer) a backbone state dict was built with, read from
    its shapes; ``None`` if the keys are too incomplete to tell."""
    try:
        stage_ids = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r'stages\.(\d+)\.blocks\.', k))})
        if not stage_ids or stage_ids != list(range(len(stage_ids))):
            return None
        depths, dims, ratios = [], [], []
        for s in stage_ids:
            blocks = {int(m.group(1)) for k in state_dict if (m := re.match(rf'stages\.{s}\.blocks\.(\d+)\.', k))}
            depths.append(max(blocks) + 1)
            dim = state_dict[f'stages.{s}.blocks.0.mlp.fc2.weight'].shape[0]
            hidden = state_dict[f'stages.{s}.blocks.0.mlp.fc1.weight'].shape[0]
            dims.append(int(dim))
            ratios.append(hidden // dim if hidden % dim == 0 else hidden / dim)
        hw = state_dict['stages.0.blocks.0.token_mixer.dwconv_hw.weight'].shape
        band = state_dict['stages.0.blocks.0.token_mixer.dwconv_w.weight'].shape[-1]
    except KeyError:
        return None
    token_mixer = dict(square_kernel_size=int(hw[-1]), band_kernel_size=int(band), branch_ratio=hw[0] / dims[0])
    return dict(depths=tuple(depths), dims=tuple(dims), mlp_ratios=tuple(ratios), token_mixer=token_mixer)


def _token_mixer_defaults() -> dict:
    from mmext.models.backbones.inceptionnext import InceptionDWConv2d

    params = inspect.signature(InceptionDWConv2d.__init__).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def _signature(arch: Mapping) -> tuple:
    tm = {**_token_mixer_defaults(), **(arch.get('token_mixer') or {})}
    dims = tuple(arch['dims'])
    return (tuple(arch['depths']), dims, tuple(int(r * d) for r, d in zip(arch['mlp_ratios'], dims)),
            tm['square_kernel_size'], tm['band_kernel_size'], tuple(int(d * tm['branch_ratio']) for d in dims))


def arch_name(arch: Mapping) -> str | None:
    """The name in ``InceptionNeXt.arch_settings`` whose weights have the shapes of ``arch``, if any."""
    from mmext.models.backbones.inceptionnext import InceptionNeXt

    sig = _signature(arch)
    return next((name for name, ref in InceptionNeXt.arch_settings.items() if _signature(ref) == sig), None)


def describe_arch(arch: Mapping) -> str:
    """E.g. ``'InceptionNeXt-tiny (depths 3-3-9-3, dims 96..768)'``."""
    name = arch_name(arch)
    shape = f"depths {'-'.join(map(str, arch['depths']))}, dims {arch['dims'][0]}..{arch['dims'][-1]}"
    return f'InceptionNeXt-{name} ({shape})' if name else f'a custom InceptionNeXt ({shape})'


# ---------------------------------------------------------------------------------------------------------------
# Matching and loading
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class LoadReport:
    """What loading a checkpoint into a backbone did; :meth:`summary` is the one log message."""

    filename: str
    source_format: str
    prefix: str
    checkpoint_arch: str | None
    model_arch: str
    loaded: list[str] = field(default_factory=list)
    head_keys: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)
    new_keys: list[str] = field(default_factory=list)
    bn_counters: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every backbone tensor came from the checkpoint and nothing in it was left over."""
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> list[str]:
        lines = []
        if self.checkpoint_arch and self.checkpoint_arch != self.model_arch:
            lines.append(f'checkpoint looks like {self.checkpoint_arch} but the model is {self.model_arch}')
        if self.mismatched:
            shapes = [f'{k} {tuple(c)} in checkpoint vs {tuple(m)} in model' for k, c, m in self.mismatched]
            lines.append(f'shape mismatches ({len(self.mismatched)}): {_preview(shapes, 4)}')
        if self.missing:
            lines.append(f'missing from checkpoint ({len(self.missing)}): {_preview(self.missing)}')
        if self.unexpected:
            lines.append(f'unexpected in checkpoint ({len(self.unexpected)}): {_preview(self.unexpected)}')
        return lines

    def summary(self) -> str:
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        where = f", backbone keys under {self.prefix!r}" if self.prefix else ''
        if self.checkpoint_arch == self.model_arch:
            arch = f'  arch: {self.model_arch}, as the checkpoint\'s shapes say'
        else:
            arch = f'  model: {self.model_arch}; checkpoint: {self.checkpoint_arch or "arch not recognisable"}'
        lines = [f'InceptionNeXt weights from {self.filename}', f'  format: {self.source_format}{where}', arch,
                 f'  loaded {len(self.loaded)} of {total} backbone tensors']
        if self.head_keys:
            lines.append(f'  dropped {len(self.head_keys)} classification-head tensors (head.*)')
        if self.ignored_keys:
            lines.append(f'  ignored {len(self.ignored_keys)} tensors outside {self.prefix!r}: '
                         f'{_group_counts(self.ignored_keys)}')
        if self.new_keys:
            modules = sorted({k.rsplit('.', 1)[0] for k in self.new_keys})
            lines.append(f'  new, initialised fresh: {", ".join(modules)} ({len(self.new_keys)} tensors; the '
                         'released weights have no per-output norms)')
        if self.bn_counters:
            lines.append(f'  {len(self.bn_counters)} BatchNorm num_batches_tracked counters absent from the '
                         'checkpoint (kept at their current value)')
        problems = self.problems()
        lines.extend(f'  {p}' for p in problems) if problems else lines.append(
            '  missing: none, unexpected: none, shape mismatches: none')
        return '\n'.join(lines)


def match_backbone_state_dict(module: nn.Module, backbone: BackboneStateDict, filename: str = '<checkpoint>',
                              ) -> tuple[LoadReport, dict[str, torch.Tensor]]:
    """Compare a backbone state dict with ``module``; returns the report and the tensors that fit."""
    expected = module.state_dict()
    ckpt = backbone.state_dict
    model_arch = getattr(module, 'arch', None)
    inferred = infer_arch(ckpt)
    report = LoadReport(
        filename=filename, source_format=backbone.source_format, prefix=backbone.prefix,
        checkpoint_arch=describe_arch(inferred) if inferred else None,
        model_arch=describe_arch(model_arch) if isinstance(model_arch, Mapping) else type(module).__name__,
        head_keys=list(backbone.head_keys), ignored_keys=list(backbone.ignored_keys))
    fitting = {}
    for key, target in expected.items():
        if key not in ckpt:
            if key.startswith(_NEW_MODULE_PREFIXES):
                report.new_keys.append(key)
            elif key.rsplit('.', 1)[-1] == _BN_COUNTER:
                report.bn_counters.append(key)
            else:
                report.missing.append(key)
        elif ckpt[key].shape != target.shape:
            report.mismatched.append((key, tuple(ckpt[key].shape), tuple(target.shape)))
        else:
            fitting[key] = ckpt[key]
            report.loaded.append(key)
    report.unexpected = [k for k in ckpt if k not in expected]
    return report, fitting


def load_backbone_state_dict(module: nn.Module, backbone: BackboneStateDict, filename: str = '<checkpoint>',
                             strict: bool = True, logger: str | logging.Logger = 'current') -> LoadReport:
    """Load a :class:`BackboneStateDict` into ``module`` and log one summary.

    With ``strict=True`` any missing backbone tensor (other than new ``out_norms.*`` modules and BatchNorm
    counters), unexpected tensor or shape mismatch raises :class:`CheckpointError` before anything is loaded.
    ``strict=False`` loads the tensors that fit and logs the rest as a warning; loading nothing always raises.
    """
    report, fitting = match_backbone_state_dict(module, backbone, filename)
    if not fitting or (strict and not report.ok):
        lines = report.problems() or ['no tensor of the checkpoint fits the model']
        hint = ('Build the model with the checkpoint\'s arch or pick the matching file; pass strict=False only to '
                'load the fitting tensors on purpose.' if fitting else 'Check the file, arch and prefix.')
        raise CheckpointError(f'Checkpoint {filename} does not fit {report.model_arch}:\n  ' + '\n  '.join(lines)
                              + f'\n{hint}')
    result = module.load_state_dict(fitting, strict=False)
    if result.unexpected_keys:  # cannot happen: every key came from module.state_dict()
        raise CheckpointError(f'internal error loading {filename}: {result.unexpected_keys}')
    print_log(report.summary(), logger=logger, level=logging.INFO if report.ok else logging.WARNING)
    return report


def load_backbone_checkpoint(module: nn.Module, filename: str | os.PathLike, prefix: str | None = None,
                             strict: bool = True, map_location: str | torch.device | None = 'cpu',
                             logger: str | logging.Logger = 'current') -> LoadReport:
    """Load an InceptionNeXt checkpoint of any supported format into a backbone, strictly by default.

    Args:
        module: The backbone (its ``state_dict()`` names are the target).
        filename: Anything :func:`read_checkpoint` accepts.
        prefix: Where the backbone's keys live in the checkpoint (``'backbone.'`` in a segmentor's); ``None``
            detects it, ``''`` means no prefix.
        strict: Raise on missing, unexpected or mis-shaped tensors (see :func:`load_backbone_state_dict`).
        map_location: As in :func:`torch.load`.
        logger: Where the summary goes (mmengine's current logger by default).

    Returns:
        The :class:`LoadReport` that was logged.
    """
    filename = str(filename)
    checkpoint = read_checkpoint(filename, map_location)
    backbone = extract_backbone_state_dict(checkpoint, prefix, source=filename)
    return load_backbone_state_dict(module, backbone, filename, strict=strict, logger=logger)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, arch: str | dict | None = None,
                       src_prefix: str | None = None, out_prefix: str = '') -> LoadReport:
    """Write an official / timm / mmengine InceptionNeXt checkpoint as an mmengine backbone checkpoint.

    The output is ``{'state_dict': {out_prefix + name: tensor}, 'meta': {...}}`` with the backbone's own names
    and no classification head, verified first by a strict load into ``InceptionNeXt(arch)`` (``arch`` inferred
    from the tensor shapes when ``None``). ``out_prefix='backbone.'`` makes a file for a segmentor's ``load_from``.
    """
    from mmext.models.backbones.inceptionnext import InceptionNeXt
    from mmext.version import __version__

    src, dst = str(src), str(dst)
    if osp.abspath(osp.expanduser(src)) == osp.abspath(osp.expanduser(dst)):
        raise CheckpointError(f'refusing to overwrite the source checkpoint {src}')
    backbone = extract_backbone_state_dict(read_checkpoint(src), src_prefix, source=src)
    if arch is None:
        inferred = infer_arch(backbone.state_dict)
        if inferred is None:
            raise CheckpointError(f'cannot infer the InceptionNeXt arch of {src} from its shapes; pass arch=')
        arch = arch_name(inferred) or inferred
    model = InceptionNeXt(arch=arch, init_cfg=None)
    report = load_backbone_state_dict(model, backbone, src, strict=True)
    if out_prefix and not out_prefix.endswith('.'):
        out_prefix += '.'
    state_dict = OrderedDict((out_prefix + k, backbone.state_dict[k].contiguous()) for k in report.loaded)
    meta = dict(arch=arch, source=osp.basename(src), converter='mmext inceptionnext2mmseg',
                mmext_version=__version__, num_tensors=len(state_dict))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save({'state_dict': state_dict, 'meta': meta}, dst)
    return report


# ---------------------------------------------------------------------------------------------------------------
# mmengine training checkpoints under weights_only
# ---------------------------------------------------------------------------------------------------------------

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
    from mmengine.logging import HistoryBuffer

    if type(obj) in _BUILTIN_SCALARS or isinstance(obj, _TORCH_VALUES):
        return obj
    if isinstance(obj, HistoryBuffer):
        return {ENCODED_TAG: 'HistoryBuffer', 'max_length': int(obj.max_length),
                'log_history': to_weights_only(obj._log_history, path), 'count_history':
                to_weights_only(obj._count_history, path)}
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
        from mmengine.logging import HistoryBuffer

        buffer = HistoryBuffer(max_length=enc['max_length'])
        buffer._log_history = _decode('ndarray', enc['log_history'])
        buffer._count_history = _decode('ndarray', enc['count_history'])
        return buffer
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
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(encoded, dst)
    torch.load(dst, map_location='cpu', weights_only=True)  # proves the result is safe to load
    return dst


# ---------------------------------------------------------------------------------------------------------------
# Formatting helpers
# ---------------------------------------------------------------------------------------------------------------

def _preview(items: list, limit: int = 8) -> str:
    shown = ', '.join(map(str, items[:limit]))
    return shown + (f', ... (+{len(items) - limit} more)' if len(items) > limit else '')


def _group_counts(keys) -> str:
    counts = Counter(k.split('.', 1)[0] for k in keys)
    return ', '.join(f'{group}.*: {n}' for group, n in counts.most_common(8)) + (
        f', ... ({len(counts) - 8} more groups)' if len(counts) > 8 else '')


def check_model_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], filename: str = '<checkpoint>') -> None:
    """Raise :class:`CheckpointError` naming the file and the keys that differ unless ``state`` fits ``model``
    exactly (same keys, same shapes); says which arch the checkpoint's backbone looks like when that differs."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f'{k} {tuple(state[k].shape)} in checkpoint vs {tuple(v.shape)} in model'
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or mismatched):
        return
    lines = []
    backbone = {k.removeprefix('backbone.'): v for k, v in state.items() if k.startswith('backbone.')}
    ckpt_arch = infer_arch(backbone)
    model_arch = getattr(getattr(model, 'backbone', None), 'arch', None)
    if ckpt_arch and isinstance(model_arch, Mapping) and describe_arch(ckpt_arch) != describe_arch(model_arch):
        lines.append(f'its backbone looks like {describe_arch(ckpt_arch)} but the config builds '
                     f'{describe_arch(model_arch)}')
    for what, keys in (('shape mismatches', mismatched), ('missing from checkpoint', missing),
                       ('unexpected in checkpoint', unexpected)):
        if keys:
            shown = ', '.join(keys[:6]) + (f', ... (+{len(keys) - 6} more)' if len(keys) > 6 else '')
            lines.append(f'{what} ({len(keys)}): {shown}')
    raise CheckpointError(f'Checkpoint {filename} does not fit the model of this config:\n  ' + '\n  '.join(lines)
                          + '\nUse the config the checkpoint was trained with.')


def check_checkpoint_fits(model: nn.Module, filename: str | os.PathLike) -> None:
    """Check, before a test run, that a whole-model checkpoint fits ``model`` exactly.

    mmengine's Runner loads ``load_from`` with ``strict=False`` and only logs what did not fit, so a checkpoint of
    another arch or config would still be evaluated, partly random. Model wrappers (DDP, test-time augmentation)
    are looked through. Reads the file the safe way (:func:`read_checkpoint`).
    """
    while hasattr(model, 'module') and isinstance(model.module, nn.Module):
        model = model.module
    state, _ = unwrap_state_dict(read_checkpoint(filename), str(filename))
    check_model_state_dict(model, state, str(filename))
