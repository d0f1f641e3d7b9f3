"""Per-shape selection of the token mixer's implementation, measured on the device it runs on.

The first time the op meets a new key (device, dtypes, memory format, shape), :meth:`Autotuner.select` runs every
candidate once on the real inputs, drops those whose result differs from the reference (split + cuDNN) beyond
rounding, times the rest with :attr:`Autotuner.timer` and keeps the fastest, the reference included, so the fused
path is never chosen where it is slower. Forward and backward are chosen separately. Choices live in memory and,
with ``cache_dir`` (or ``MMEXT_MIXER_TUNE_CACHE``), in a JSON file per GPU name and torch/Triton versions.

No timing happens while ``torch.compile`` traces (the op is one opaque node there and runs its fake impl) or
while a CUDA graph is captured: an unseen key then takes the reference path without caching it. Nothing in here is
a collective, so DDP ranks choose on their own, as ``cudnn.benchmark`` does. Each choice is logged once at INFO.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from mmext.fileio import atomic_write

__all__ = ['REFERENCE', 'Autotuner', 'autotune_table', 'cuda_event_timer', 'get_autotuner', 'set_autotuner']

REFERENCE = 'reference'

# (candidate name, a callable running it once, device) -> milliseconds per run
Timer = Callable[[str, Callable[[], object], torch.device], float]
# (candidate output, reference output) -> whether they agree
Checker = Callable[[object, object], bool]


def cuda_event_timer(name: str, fn: Callable[[], object], device: torch.device, warmup: int = 2,
                     repeats: int = 5) -> float:
    """Median milliseconds of ``fn`` on the current CUDA stream (CPU wall time for other devices)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _log(msg: str, level: int = logging.INFO) -> None:
    try:  # mmengine is optional here: the op also runs in plain PyTorch processes
        from mmengine.logging import print_log
    except ImportError:
        logging.getLogger('mmext.ops').log(level, msg)
    else:
        print_log(msg, logger='current', level=level)


def tuning_blocked() -> str | None:
    """Why no candidate may be timed right now (``torch.compile`` tracing, CUDA-graph capture), or ``None``."""
    if torch.compiler.is_compiling():
        return 'torch.compile is tracing'
    if torch.cuda.is_available() and torch.cuda.is_initialized() and torch.cuda.is_current_stream_capturing():
        return 'a CUDA graph is being captured'
    return None


class Autotuner:
    """Chooses and remembers the fastest correct candidate per ``(key, direction)``.

    Args:
        timer: measures one candidate (default :func:`cuda_event_timer`); tests inject their own.
        devices: device types on which candidates are timed; elsewhere ``select`` returns its ``default``.
        cache_dir: directory of the on-disk cache (default ``MMEXT_MIXER_TUNE_CACHE``; unset: memory only).
        enabled: ``False`` never times and returns ``default`` (default ``MMEXT_MIXER_AUTOTUNE``, on unless 0).
    """

    def __init__(self, timer: Timer | None = None, devices: Sequence[str] = ('cuda',), cache_dir: str | None = None,
                 enabled: bool | None = None) -> None:
        self.timer = timer or cuda_event_timer
        self.devices = tuple(devices)
        self.cache_dir = cache_dir if cache_dir is not None else os.environ.get('MMEXT_MIXER_TUNE_CACHE') or None
        if enabled is None:
            enabled = os.environ.get('MMEXT_MIXER_AUTOTUNE', '1').strip().lower() not in ('0', 'false', 'off', 'no')
        self.enabled = enabled
        self._table: dict[tuple[str, str], dict] = {}
        self._disk: dict[str, dict[str, dict]] = {}
        self._lock = threading.RLock()

    def select(self, key: str, direction: str, candidates: dict[str, Callable[[], object]], device: torch.device,
               default: str, check: Checker | None = None, op: str = 'inception_dwconv') -> str:
        """The candidate to run for ``key`` in ``direction`` ('fwd' or 'bwd').

        ``candidates`` maps names to callables running them on the real inputs and returning their outputs; it must
        hold :data:`REFERENCE`. ``check`` compares a candidate's output with the reference's; a failing or raising
        candidate is never chosen. ``op`` names the op in log lines (keys of different ops must differ).
        """
        with self._lock:
            entry = self._table.get((key, direction)) or self._from_disk(key, direction, device, candidates)
            if entry is not None:
                return entry['choice']
            if not self.enabled or device.type not in self.devices:
                return default
            if (blocked := tuning_blocked()) is not None:
                _log(f'mmext {op} {direction} {key}: not tuned ({blocked}); running the reference')
                return REFERENCE
            entry = self._tune(key, direction, candidates, device, check, op)
            self._table[(key, direction)] = entry
            self._to_disk(key, direction, entry, device)
            times = ', '.join(f'{k} {v:.3f}' if math.isfinite(v) else f'{k} {entry["rejected"].get(k, "failed")}'
                              for k, v in entry['ms'].items())
            _log(f"mmext {op} {direction} {key}: chose {entry['choice']} (ms: {times})")
            return entry['choice']

    def _tune(self, key: str, direction: str, candidates: dict[str, Callable[[], object]], device: torch.device,
              check: Checker | None, op: str = 'inception_dwconv') -> dict:
        if REFERENCE not in candidates:
            raise ValueError(f'candidates must include {REFERENCE!r}')
        ms: dict[str, float] = {}
        rejected: dict[str, str] = {}
        ref_out = candidates[REFERENCE]()
        for name, fn in candidates.items():
            try:
                if name != REFERENCE and check is not None and not check(fn(), ref_out):
                    rejected[name] = 'mismatch'
                    ms[name] = math.inf
                    continue
                ms[name] = float(self.timer(name, fn, device))
            except Exception as exc:  # a config the device cannot run (resources, compiler) is simply not chosen
                if name == REFERENCE:
                    raise
                rejected[name] = f'error: {type(exc).__name__}'
                ms[name] = math.inf
                _log(f'mmext {op} {direction} {key}: candidate {name} failed ({exc!r})', logging.WARNING)
        choice = min(ms, key=lambda k: (ms[k], k != REFERENCE))
        return dict(key=key, direction=direction, choice=choice, ms=ms, rejected=rejected, source='measured')

    # ----------------------------------------------------------------------------------------------------------
    # on-disk cache: one JSON file per GPU name and versions, {key: {direction: choice}}
    # ----------------------------------------------------------------------------------------------------------
    def cache_file(self, device: torch.device) -> Path | None:
        """The cache file for ``device`` (``None`` without ``cache_dir``)."""
        if not self.cache_dir:
            return None
        import triton  # only reached on the Triton path

        name = torch.cuda.get_device_name(device) if device.type == 'cuda' else device.type
        tag = re.sub(r'[^A-Za-z0-9.]+', '-', f'{name}_torch{torch.__version__}_triton{triton.__version__}')
        return Path(self.cache_dir) / f'inception_dwconv_{tag}.json'

    def _from_disk(self, key: str, direction: str, device: torch.device, candidates: dict) -> dict | None:
        path = self.cache_file(device)
        if path is None:
            return None
        if str(path) not in self._disk:
            try:
                self._disk[str(path)] = json.loads(path.read_text())
            except (OSError, ValueError):
                self._disk[str(path)] = {}
        choice = self._disk[str(path)].get(key, {}).get(direction)
        if choice not in candidates:  # unknown, or a config no longer in the tuning space
            return None
        entry = dict(key=key, direction=direction, choice=choice, ms={}, rejected={}, source=str(path))
        self._table[(key, direction)] = entry
        return entry

    def _to_disk(self, key: str, direction: str, entry: dict, device: torch.device) -> None:
        path = self.cache_file(device)
        if path is None:
            return
        data = self._disk.setdefault(str(path), {})
        data.setdefault(key, {})[direction] = entry['choice']
        try:
            with atomic_write(path, 'w') as f:  # ranks sharing the directory never read half a file
                f.write(json.dumps(data, indent=1, sort_keys=True))
        except OSError as exc:
            _log(f'mmext inception_dwconv: cannot write tuning cache {path} ({exc!r})', logging.WARNING)

    def table(self) -> list[dict]:
        """Every choice made or loaded so far: ``key, direction, choice, ms, rejected, source``."""
        with self._lock:
            return [dict(entry, ms=dict(entry['ms']), rejected=dict(entry['rejected']))
                    for entry in self._table.values()]

    def clear(self) -> None:
        """Forget the in-memory choices (the disk cache stays)."""
        with self._lock:
            self._table.clear()
            self._disk.clear()


_AUTOTUNER = Autotuner()


def get_autotuner() -> Autotuner:
    """The process-wide :class:`Autotuner` the op uses."""
    return _AUTOTUNER


def set_autotuner(tuner: Autotuner) -> Autotuner:
    """Install ``tuner`` as the process-wide autotuner; returns the previous one."""
    global _AUTOTUNER
    if not isinstance(tuner, Autotuner):
        raise TypeError(f'set_autotuner expects an Autotuner, got {type(tuner).__name__}')
    previous, _AUTOTUNER = _AUTOTUNER, tuner
    return previous


def autotune_table() -> list[dict]:
    """The process-wide autotuner's choices so far (see :meth:`Autotuner.table`)."""
    return _AUTOTUNER.table()
