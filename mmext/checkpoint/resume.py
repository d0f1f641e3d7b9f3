"""Which checkpoint a run resumes from: the newest one that is complete and finite, wherever the config saves them.

mmengine's ``CheckpointHook`` writes to ``work_dir``, or with ``out_dir`` set to ``<out_dir>/<work_dir name>/``,
and names the latest file in ``<work_dir>/last_checkpoint``; mmengine's own auto-resume reads only that pointer. A
file cut off while written, corrupted later or saved from a diverged run must not be resumed, and must not make a
run restart from iteration 0 while an older good checkpoint exists.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import CheckpointError
from .io import read_checkpoint
from .state_dict import check_finite_state_dict, unwrap_state_dict

#: File names of mmengine's periodic checkpoints (``CheckpointHook.filename_tmpl``'s default).
CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')
#: The pointer file mmengine's ``CheckpointHook`` writes into ``work_dir``.
LAST_CHECKPOINT = 'last_checkpoint'


def checkpoint_folders(work_dir: str, out_dir: str | None = None) -> list[str]:
    """The folders a run's checkpoints are saved in: ``work_dir`` and, with ``out_dir`` (``CheckpointHook``'s
    argument), ``<out_dir>/<work_dir name>`` as mmengine joins them."""
    folders = [work_dir]
    if out_dir and '://' not in str(out_dir) and osp.abspath(out_dir) != osp.abspath(work_dir):
        folders.append(osp.join(str(out_dir), osp.basename(work_dir.rstrip(os.sep))))
    return folders


def checkpoint_candidates(folders: list[str]) -> list[str]:
    """Every ``iter_N.pth`` / ``epoch_N.pth`` in ``folders`` and the file ``work_dir/last_checkpoint`` names
    (``folders[0]`` is the work dir), newest first: by N, the pointer's file first among equals or when its name
    has no N."""
    found: dict[str, int] = {}
    for folder in folders:
        if osp.isdir(folder):
            for name in os.listdir(folder):
                match = CHECKPOINT_NAME.match(name)
                if match:
                    found[osp.abspath(osp.join(folder, name))] = int(match.group(1))
    pointed = _pointer_target(folders[0]) if folders else None
    if pointed:
        pointed = osp.abspath(pointed)
        match = CHECKPOINT_NAME.match(osp.basename(pointed))
        found[pointed] = int(match.group(1)) if match else 1 << 62
    return sorted(found, key=lambda p: (found[p], p == pointed), reverse=True)


def _pointer_target(work_dir: str) -> str | None:
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        return f.read().strip() or None


def check_resumable(filename: str) -> Any:
    """Read ``filename`` through :func:`read_checkpoint` (weights-only, CRC of every entry) and check that its
    model tensors are finite; return the checkpoint. Raises :class:`CheckpointError` saying why not."""
    checkpoint = read_checkpoint(filename)
    state, _ = unwrap_state_dict(checkpoint, filename)
    check_finite_state_dict(state, filename)
    return checkpoint


@dataclass
class ResumeChoice:
    """What :func:`find_resumable_checkpoint` decided: ``path`` (``None`` if nothing usable) and why each newer
    candidate was skipped."""

    path: str | None
    skipped: list[str] = field(default_factory=list)
    candidates: int = 0

    def describe(self) -> str:
        """One paragraph for the log."""
        lines = [f'skipped {p}' for p in self.skipped]
        if self.path is not None:
            head = f'resuming from {self.path}' + (f', the newest of {self.candidates} checkpoints that is complete '
                                                   'and finite' if self.skipped else '')
        else:
            head = f'none of the {self.candidates} checkpoints found can be resumed'
        return '\n'.join([head, *lines])


def find_resumable_checkpoint(folders: list[str], check: Callable[[str], Any] = check_resumable) -> ResumeChoice:
    """The newest checkpoint in ``folders`` (see :func:`checkpoint_candidates`) that ``check`` accepts.

    ``check`` raises :class:`CheckpointError` (or ``OSError``) for a file that cannot be resumed; the default
    (:func:`check_resumable`) refuses files that are truncated, corrupt, unsafe or hold NaN/Inf weights. Each
    skipped file is listed with its reason.
    """
    candidates = checkpoint_candidates(folders)
    choice = ResumeChoice(None, candidates=len(candidates))
    for path in candidates:
        try:
            check(path)
        except (CheckpointError, OSError) as e:
            choice.skipped.append(f'{path}: {" ".join(str(e).split())[:300]}')
            continue
        choice.path = path
        break
    return choice
