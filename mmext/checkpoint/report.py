"""What loading a checkpoint did, in one log message, and the formatting helpers its messages share."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

# The file format each checkpoint name was last read as, noted by read_checkpoint for the reports.
_FILE_FORMATS: dict[str, str] = {}


def note_file_format(name: str, file_format: str) -> None:
    """Record that :func:`~mmext.checkpoint.read_checkpoint` read ``name`` as ``file_format`` (``'safetensors'``,
    ``'torch zip'``, ``'torch legacy'``)."""
    _FILE_FORMATS[name] = file_format


def file_format(name: str) -> str | None:
    """The format ``name`` was last read in (see :func:`note_file_format`), or ``None``."""
    return _FILE_FORMATS.get(str(name))


def preview(items: list, limit: int = 8) -> str:
    """The first ``limit`` items, comma-separated, and how many more there are."""
    shown = ', '.join(map(str, items[:limit]))
    return shown + (f', ... (+{len(items) - limit} more)' if len(items) > limit else '')


def group_counts(keys: Iterable[str]) -> str:
    """Key counts per first name component, e.g. ``'backbone.*: 220, decode_head.*: 12'``."""
    counts = Counter(k.split('.', 1)[0] for k in keys)
    return ', '.join(f'{group}.*: {n}' for group, n in counts.most_common(8)) + (
        f', ... ({len(counts) - 8} more groups)' if len(counts) > 8 else '')


@dataclass
class LoadReport:
    """What loading a checkpoint into a backbone did; :meth:`summary` is the one log message."""

    filename: str
    source_format: str
    title: str
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
    new_note: str = 'not in the checkpoint'

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
            lines.append(f'shape mismatches ({len(self.mismatched)}): {preview(shapes, 4)}')
        if self.missing:
            lines.append(f'missing from checkpoint ({len(self.missing)}): {preview(self.missing)}')
        if self.unexpected:
            lines.append(f'unexpected in checkpoint ({len(self.unexpected)}): {preview(self.unexpected)}')
        return lines

    def summary(self) -> str:
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        where = f", backbone keys under {self.prefix!r}" if self.prefix else ''
        if self.checkpoint_arch == self.model_arch:
            arch = f'  arch: {self.model_arch}, as the checkpoint\'s shapes say'
        else:
            arch = f'  model: {self.model_arch}; checkpoint: {self.checkpoint_arch or "arch not recognisable"}'
        kind = file_format(self.filename)
        source = f'{kind} file, {self.source_format}' if kind == 'safetensors' else self.source_format
        lines = [f'{self.title} from {self.filename}', f'  format: {source}{where}', arch,
                 f'  loaded {len(self.loaded)} of {total} backbone tensors']
        if self.head_keys:
            lines.append(f'  dropped {len(self.head_keys)} classification-head tensors (head.*)')
        if self.ignored_keys:
            lines.append(f'  ignored {len(self.ignored_keys)} tensors outside {self.prefix!r}: '
                         f'{group_counts(self.ignored_keys)}')
        if self.new_keys:
            modules = sorted({k.rsplit('.', 1)[0] for k in self.new_keys})
            lines.append(f'  new, initialised fresh: {", ".join(modules)} ({len(self.new_keys)} tensors; '
                         f'{self.new_note})')
        if self.bn_counters:
            lines.append(f'  {len(self.bn_counters)} BatchNorm num_batches_tracked counters absent from the '
                         'checkpoint (kept at their current value)')
        problems = self.problems()
        lines.extend(f'  {p}' for p in problems) if problems else lines.append(
            '  missing: none, unexpected: none, shape mismatches: none')
        return '\n'.join(lines)
