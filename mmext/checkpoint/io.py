"""Reading checkpoint files without running code from them: the one read boundary.

:func:`read_checkpoint` reads a local file, URL, OpenMMLab model name, ``hf-hub:`` name or other mmengine URI in
any released format (plain state dict ``.pth``, timm's ``pytorch_model.bin`` and ``model.safetensors``, mmengine
checkpoints) with ``torch.load(weights_only=True)`` or safetensors, after checking the CRC of every entry of a
torch zip archive, and reduces the config texts inside (which mmengine executes) to data
(:mod:`.config_text`). :mod:`.mmengine_loader` routes every mmengine checkpoint read through it.
:func:`load_trusted_checkpoint` (the ``trusted://`` prefix) unpickles the user's own files in full. Nothing here
knows any model.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import os.path as osp
import pickle
import pickletools
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import torch
from mmengine.logging import print_log

from mmext.compat.upstream import mmengine_home

from .config_text import strip_executable_configs
from .errors import CheckpointError, UnsafeCheckpointError
from .hub import HF_HUB_PREFIX, resolve_hf_hub
from .report import note_file_format, preview

#: Prefix marking a checkpoint as the user's own, to be unpickled in full (``weights_only=False``).
TRUSTED_PREFIX = 'trusted://'

_URL_PREFIXES = ('http://', 'https://')
_MODEL_NAME_PREFIXES = ('open-mmlab://', 'openmmlab://', 'torchvision://', 'modelzoo://', 'mmcls://')
# Globals an mmengine training checkpoint pickles besides torch's own; their presence (and nothing stranger)
# marks a legacy training checkpoint rather than a foreign pickle.
_LEGACY_TRAINING_GLOBAL_PREFIXES = ('mmengine.', 'numpy', '_codecs.', 'builtins.getattr', '__builtin__.getattr',
                                    'collections.', 'torch.', 'copyreg.')


def read_checkpoint(filename: str | os.PathLike, map_location: str | torch.device | None = 'cpu') -> Any:
    """Read a checkpoint without running code from it.

    Args:
        filename: A local path, an ``http(s)://`` URL (downloaded once, under ``torch.hub.get_dir()/checkpoints``),
            an OpenMMLab model name (``open-mmlab://``, ``torchvision://``, ``mmcls://``), a Hugging Face hub name
            (``hf-hub:timm/inception_next_tiny.sail_in1k``, see :mod:`mmext.checkpoint.hub`), any other URI
            mmengine's fileio can fetch (``s3://``, ...), or ``trusted://<local path>`` for the user's own file
            (see :func:`load_trusted_checkpoint`).
        map_location: Where tensors go, as in :func:`torch.load`.

    Returns:
        Whatever the file holds: a state dict, or a dict wrapping one. Config texts in ``meta`` and the message
        hub keep only literal assignments (see :func:`~mmext.checkpoint.config_text.strip_executable_configs`);
        what was dropped is logged as a warning.

    Raises:
        FileNotFoundError: No such local file.
        UnsafeCheckpointError: The file pickles Python objects ``weights_only`` loading refuses.
        CheckpointError: The file is truncated, corrupt (an entry's CRC does not match) or not a checkpoint.
    """
    filename = str(filename)
    if filename.startswith(TRUSTED_PREFIX):
        return load_trusted_checkpoint(filename[len(TRUSTED_PREFIX):], map_location)
    with _local_copy(filename) as local_path:
        checkpoint = _read_local(local_path, map_location, filename)
    for note in strip_executable_configs(checkpoint, filename):
        print_log(f'{note}; nothing from it was executed.', logger='current', level=logging.WARNING)
    return checkpoint


def verify_archive(path: str | os.PathLike, display: str | None = None) -> None:
    """Raise :class:`CheckpointError` unless every entry of a torch zip checkpoint matches its CRC-32.

    torch reads tensor data without checking it, so a flipped or zeroed block in a file whose zip directory is
    intact loads as wrong weights. This reads every byte once (about as long as loading the file). Files that are
    not zip archives (legacy torch, safetensors) are left to their readers.
    """
    display = display or str(path)
    with open(path, 'rb') as f:
        if f.read(4) != b'PK\x03\x04':
            return
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise CheckpointError(f'{display} is not a readable checkpoint (a zip archive torch cannot read: '
                              f'truncated or corrupt: {e}); was it cut off while written or copied?') from None
    if bad is not None:
        raise CheckpointError(f'{display} is corrupt: the CRC of its entry {bad!r} does not match its data (a '
                              'damaged disk, copy or download). Refused; copy it again or use another checkpoint.')


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
    elif filename.startswith(HF_HUB_PREFIX):
        yield resolve_hf_hub(filename)
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
    return target if target.startswith(_URL_PREFIXES) else osp.join(mmengine_home(), target)


def _read_local(path: str, map_location: Any, display: str) -> Any:
    if osp.isdir(path):
        raise IsADirectoryError(f'checkpoint {display} is a directory, not a checkpoint file; name a .pth / .bin / '
                                '.safetensors file inside it')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {display} not found' + (f' (looked at {path})' if path != display else ''))
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(16)
    if size == 0:
        raise CheckpointError(f'{display} is empty (0 bytes): not a checkpoint; was the download or copy cut off?')
    is_zip = head[:4] == b'PK\x03\x04'
    if not is_zip and (_looks_like_safetensors(head, size) or path.endswith('.safetensors')):
        note_file_format(display, 'safetensors')
        return _read_safetensors(path, map_location, display, size)
    note_file_format(display, 'torch zip' if is_zip else 'torch legacy')
    if path.endswith('.safetensors'):
        print_log(f'{display} is named .safetensors but holds a torch checkpoint; reading it as one.',
                  logger='current', level=logging.WARNING)
    if is_zip:
        verify_archive(path, display)
    try:
        with open(path, 'rb') as f:  # a file object: torch.load would route a *.safetensors name to safetensors
            return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = unsafe_globals(path) if 'weights only' in str(e).lower() else []
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


def check_weights_only_loadable(filename: str | os.PathLike) -> None:
    """Raise :class:`UnsafeCheckpointError` (saying what to do) if a local torch checkpoint pickles objects that
    ``torch.load(weights_only=True)`` refuses, e.g. a training checkpoint saved without
    :class:`~mmext.engine.hooks.WeightsOnlyCheckpointHook`. Reads only the pickle's opcodes; costs no tensor I/O.
    """
    refused = [n for n in unsafe_globals(filename) if not n.startswith('<unresolved')]
    if refused:  # unresolved names alone are left for torch to judge: a pre-check must not block a good file
        raise UnsafeCheckpointError(_unsafe_message(str(filename), refused))


def _unsafe_message(display: str, unusual: list[str]) -> str:
    listed = preview(unusual)
    legacy = bool(unusual) and all(n.startswith(_LEGACY_TRAINING_GLOBAL_PREFIXES) for n in unusual) and any(
        n.startswith('mmengine.') for n in unusual)
    if not legacy and unusual and all(n.startswith(('numpy', '_codecs.')) for n in unusual):
        return (f'Refused to unpickle {display}: it holds numpy arrays or numpy scalars ({listed}), not torch '
                'tensors, and torch.load(weights_only=True) does not unpickle numpy objects. Nothing from it was '
                'executed. Convert the values with torch.from_numpy() and save the dict again; only if you made '
                f"this file yourself and trust it, load it as 'trusted://{display}'.")
    if legacy:
        return (f'Refused to unpickle {display}: it is an mmengine training checkpoint saved without '
                f'WeightsOnlyCheckpointHook, and it pickles Python objects ({listed}) that torch.load(weights_only='
                'True) does not allow. Nothing from it was executed. If it is YOUR OWN checkpoint, either load it '
                f"as 'trusted://{display}' (--resume / load_from / init_cfg checkpoint all accept the prefix) or "
                f"rewrite it once with mmext.checkpoint.upgrade_training_checkpoint('{display}', "
                "'<new>.pth'); add custom_hooks=[dict(type='WeightsOnlyCheckpointHook')] so new checkpoints "
                'load safely.')
    return (f'Refused to unpickle {display}: it references Python objects ({listed}) that torch.load(weights_only='
            'True) does not allow, so loading it could run code. Nothing from it was executed. Released '
            'InceptionNeXt weights (official .pth, timm .bin/.safetensors) never need this. Only if you made this '
            f"file yourself and trust it, load it as 'trusted://{display}'.")


def unsafe_globals(filename: str | os.PathLike) -> list[str]:
    """The Python globals (``module.name``) in a checkpoint's pickle that ``torch.load(weights_only=True)`` refuses.

    Nothing is unpickled. torch's zip format goes through the public
    :func:`torch.serialization.get_unsafe_globals_in_checkpoint`. What that cannot read (the legacy format, plain
    pickles, and zip files pickled with protocol 4 or 5, whose ``FRAME`` opcode torch 2.14's scanner rejects) is
    scanned here from its opcodes (``STACK_GLOBAL`` names on a best-effort basis), leaving out torch's own names and
    the containers ``weights_only`` always allows. ``[]`` for files that are not pickles.
    """
    with open(filename, 'rb') as f:
        is_zip = f.read(4) == b'PK\x03\x04'
    found: set[str] = set()
    try:
        if is_zip:
            try:
                return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(filename)))
            except pickle.UnpicklingError:
                with zipfile.ZipFile(filename) as zf:
                    for name in zf.namelist():
                        if name.rsplit('/', 1)[-1] == 'data.pkl':
                            with zf.open(name) as stream:
                                _scan_pickles(stream, found)
        else:
            with open(filename, 'rb') as stream:
                _scan_pickles(stream, found)
    except (zipfile.BadZipFile, RuntimeError, ValueError):
        return []
    allowed = ('torch.', 'collections.OrderedDict', '_codecs.encode', 'builtins.set', '__builtin__.set')
    return sorted(n for n in found if not n.startswith(allowed))


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
