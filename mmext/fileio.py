"""The output guard every mmext tool that writes goes through.

:func:`check_outputs` runs before any work and refuses an output that is, contains or lies inside an input, or that
would replace a file the tool did not create; paths are compared resolved (symlinks, ``..``, and letter case on
case-insensitive file systems). :func:`atomic_write` and :func:`atomic_path` write to a temporary name in the
destination folder and rename it onto the destination only when the write completed, so an interrupted or failed
tool leaves either the old file or none, never half of one.

A leaf module: it imports only the standard library, so every layer of mmext (and ``tools/``) can use it.
"""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

PathLike = str | os.PathLike
# A mapping value: one path, several (e.g. every file an output folder will receive), or None (flag not given).
Paths = PathLike | Iterable[PathLike] | None


class OutputPathError(ValueError):
    """An output path would destroy an input or a file the tool did not create."""


def _as_list(value: Paths) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value if v is not None]


@functools.lru_cache(maxsize=256)
def _folder_ignores_case(folder: str) -> bool:
    """Whether names in the existing folder ``folder`` match regardless of letter case.

    Probed without writing: an entry (or the folder itself) whose name has letters is looked up with its case
    swapped. With nothing to probe the folder counts as case-sensitive (the common case for Linux).
    """
    candidates = [folder]
    with contextlib.suppress(OSError):
        candidates = [os.path.join(folder, name) for name in os.listdir(folder)[:64]] + candidates
    for path in candidates:
        head, name = os.path.split(path)
        swapped = name.swapcase()
        if swapped != name and head:
            try:
                return os.path.samefile(path, os.path.join(head, swapped))
            except OSError:
                return False
    return False


def _canonical(path: Path) -> tuple[str, ...]:
    """The resolved path as a tuple of names; names under a case-insensitive folder are case-folded."""
    resolved = Path(os.path.abspath(path)).resolve()  # follows every symlink that exists, removes `..`
    parts = [resolved.anchor]
    folder = resolved.anchor
    for name in resolved.parts[1:]:
        parts.append(name.casefold() if os.path.isdir(folder) and _folder_ignores_case(folder) else name)
        folder = os.path.join(folder, name)
    return tuple(parts)


def _relation(output: tuple[str, ...], input: tuple[str, ...]) -> str | None:
    if output == input:
        return 'is'
    if input[:len(output)] == output:
        return 'contains'
    if output[:len(input)] == input:
        return 'lies inside'
    return None


def check_outputs(outputs: Mapping[str, Paths], inputs: Mapping[str, Paths], *,
                  allow_existing: bool = False) -> None:
    """Refuse, before any work, outputs that would destroy an input or a file the tool did not create.

    Args:
        outputs: Flag or argument name (``'--out-dir'``) to the path(s) the tool will write: a file, a folder, or
            the list of files a folder will receive. ``None`` values (flags not given) are ignored.
        inputs: Flag or argument name (``'IMAGE'``, ``'--ann'``) to the path(s) the tool reads, files or folders.
        allow_existing: Let outputs replace existing files (the tool's ``--overwrite``); outputs are still
            never allowed to touch an input.

    Raises:
        OutputPathError: Naming the flag, both paths and the fix, when an output is, contains or lies inside an
            input, two outputs are one path, or (without ``allow_existing``) an output file exists already.
    """
    resolved_inputs = [(flag, path, _canonical(path)) for flag, value in inputs.items() for path in _as_list(value)]
    seen: dict[tuple[str, ...], tuple[str, Path]] = {}
    for flag, value in outputs.items():
        for path in _as_list(value):
            canonical = _canonical(path)
            for in_flag, in_path, in_canonical in resolved_inputs:
                relation = _relation(canonical, in_canonical)
                if relation is None:
                    continue
                what = {'is': f'is the input {in_flag} {in_path}',
                        'contains': f'contains the input {in_flag} {in_path}',
                        'lies inside': f'lies inside the input {in_flag} {in_path}'}[relation]
                raise OutputPathError(f'{flag} {path} {what} (resolved: {Path(*canonical)} and '
                                      f'{Path(*in_canonical)}): writing there would destroy or mix with the '
                                      f'input; choose a path for {flag} outside every input')
            if canonical in seen and seen[canonical] != (flag, path):
                other_flag, other = seen[canonical]
                raise OutputPathError(f'{flag} {path} and {other_flag} {other} are the same path: give each '
                                      'output its own name')
            seen[canonical] = (flag, path)
            if not allow_existing and (path.is_file() or path.is_symlink()):
                raise OutputPathError(f'{flag} {path} exists and this run did not create it: remove it, choose '
                                      'another name, or pass --overwrite to replace it')


def _temporary_name(path: Path) -> Path:
    """``<stem>.tmp-<pid><suffix>`` beside ``path``: same folder (so the rename is atomic), same suffix (so
    libraries that pick the format from the name keep working)."""
    return path.with_name(f'{path.stem}.tmp-{os.getpid()}{path.suffix}')


def _fsync_folder(folder: Path) -> None:
    if os.name == 'posix':
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _commit(temporary: Path, path: Path) -> None:
    os.replace(temporary, path)
    _fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = 'wb', **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``open_kwargs``: ``encoding``, ``newline``, ...); on
    success fsync it and rename it onto ``path``.

    On an error inside the block the temporary file is removed and ``path`` is left as it was. The parent folder
    is created if missing.
    """
    if not mode.startswith(('w', 'x')):
        raise ValueError(f'atomic_write writes a new file: mode must start with "w" or "x", got {mode!r}')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f'{path.name}.tmp-{os.getpid()}')
    try:
        with open(temporary, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _commit(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path (same folder, same suffix) for libraries that write by file name (``cv2.imwrite``,
    ``cv2.VideoWriter``, ``torch.onnx.export``, ``torch.save``); rename it onto ``path`` on success.

    Raises ``OSError`` if the block ended without the library writing the file (``cv2.imwrite`` reports failure
    only by its return value). On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(path)
    try:
        yield temporary
        if not temporary.is_file():
            raise OSError(f'nothing was written for {path} (expected the temporary file {temporary})')
        with open(temporary, 'rb+') as f:
            os.fsync(f.fileno())
        _commit(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
