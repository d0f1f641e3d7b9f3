"""One training run per work dir.

Two runs writing into one work dir interleave checkpoints, rotate each other's files away and log into one
folder. :func:`work_dir_lock` holds ``<work_dir>/.mmext_train.lock`` (pid, host, start time) while a run trains:
a second run refuses at once, naming the first one's pid and host. A lock left behind by a run that was killed is
recognised and replaced, with a log line saying so: its pid is dead (same host), or it has not been refreshed for
:data:`STALE_AFTER_S` seconds (the owner refreshes it every :data:`HEARTBEAT_S` seconds from a background thread,
so a job requeued on another node is not blocked by its predecessor's lock).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import os.path as osp
import socket
import threading
import time
from collections.abc import Iterator

from mmengine.dist import get_rank
from mmengine.logging import print_log

LOCK_NAME = '.mmext_train.lock'
HEARTBEAT_S = 30
STALE_AFTER_S = 300


class WorkDirBusyError(RuntimeError):
    """Another training run holds the work dir."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _stale_reason(owner: dict, age: float) -> str | None:
    """Why the lock of ``owner`` (refreshed ``age`` seconds ago) can be taken over, or ``None`` if it cannot."""
    pid, host = owner.get('pid'), owner.get('host')
    if host == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid():
            return 'is this process (an earlier run in it ended without releasing it)'
        if not _pid_alive(pid):
            return 'is no longer running'
    if age > STALE_AFTER_S:
        return f'has not refreshed it for {age:.0f} s (more than {STALE_AFTER_S} s)'
    return None


def _read(path: str) -> tuple[dict, float] | None:
    try:
        age = time.time() - osp.getmtime(path)
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
    except ValueError:  # being written right now, or damaged
        owner = {}
    return (owner if isinstance(owner, dict) else {}), age


def _heartbeat(path: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):
            os.utime(path)


@contextlib.contextmanager
def work_dir_lock(work_dir: str) -> Iterator[None]:
    """Hold ``work_dir``'s training lock for the duration (global rank 0 only, so call it once the process group
    is up, as :class:`~mmext.engine.runner.SafeRunner` does in ``train()``; other ranks share rank 0's lock).

    Raises:
        WorkDirBusyError: naming the other run's pid, host and start time, and the fix.
    """
    if get_rank() != 0:
        yield
        return
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    me = dict(pid=os.getpid(), host=socket.gethostname(), started=time.strftime('%Y-%m-%d %H:%M:%S'))
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            found = _read(path)
            if found is None:
                continue  # released in between
            owner, age = found
            if not owner and age < HEARTBEAT_S:
                time.sleep(0.2)  # its owner is writing it
                continue
            reason = _stale_reason(owner, age)
            who = f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}"
            if reason is None:
                raise WorkDirBusyError(
                    f'work dir {work_dir} is in use by another training run: {who}, started '
                    f"{owner.get('started', '?')} ({path}). Wait for it to end, pass another --work-dir, or, if "
                    'that run is gone, remove the lock file.') from None
            print_log(f'Work dir lock: {path} was left by {who}, which {reason}; taking it over.',
                      logger='current', level=logging.WARNING)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, 'w') as f:
            json.dump(me, f)
        break
    else:
        raise WorkDirBusyError(f'could not take the training lock {path}: other runs keep taking it')
    stop = threading.Event()
    thread = threading.Thread(target=_heartbeat, args=(path, stop), name='mmext-work-dir-lock', daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        found = _read(path)
        if found is not None and found[0].get('pid') == me['pid'] and found[0].get('host') == me['host']:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
