"""Preemption signals: SIGTERM (Slurm, Kubernetes, ``kill``) and SIGUSR1 (Slurm's ``--signal=USR1@<seconds>``
warning) are recorded while a run trains, so the run can save and stop at the end of the current iteration
(:class:`~mmext.engine.hooks.PreemptionHook`) instead of dying with nothing saved."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals that ask a training run to save and stop.
PREEMPTION_SIGNALS = ('SIGTERM', 'SIGUSR1')
_received: list[int] = []


def preemption_requested() -> int | None:
    """The first preemption signal received while :func:`preemption_signals` was active, or ``None``."""
    return _received[0] if _received else None


@contextlib.contextmanager
def preemption_signals() -> Iterator[None]:
    """Record :data:`PREEMPTION_SIGNALS` instead of dying on them, for the duration; the previous handlers are
    restored afterwards. A no-op outside the main thread (Python delivers signals there only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in PREEMPTION_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, lambda signum, frame: _received.append(signum))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _received.clear()
