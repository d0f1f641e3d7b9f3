"""Quiet consoles: one list of upstream warnings a user cannot act on, dropped by every tool and the demo.

mmseg's decode heads call its own deprecated ``build_loss``; its ADE20K pipeline reduces the zero label in
``LoadAnnotations``; its loss default ``avg_non_ignore=False`` is the recipe's; mmengine resolves ``mmseg::`` config
paths through ``pkg_resources``, which setuptools deprecates (a ``DeprecationWarning`` in 79, shown once per
importing module when warnings are on; a ``UserWarning`` in 80); mmengine's own file loading goes through its
deprecated ``FileClient``. Nothing else is filtered: every other warning still reaches the terminal.

Stdlib only, so a tool calls :func:`quiet_upstream_warnings` first thing in ``main`` without importing torch.
"""
from __future__ import annotations

import logging
import warnings

#: Message prefixes (regular expressions) of Python warnings dropped by :func:`quiet_upstream_warnings`.
HARMLESS_WARNINGS = (
    r'``build_loss`` would be deprecated soon',
    r'Default ``avg_non_ignore`` is False',
    r'`reduce_zero_label` will be deprecated',
    r'pkg_resources is deprecated as an API',
)
#: Message prefixes of mmengine log records dropped by :class:`HarmlessLogFilter`.
HARMLESS_LOG_WARNINGS = (
    'The prefix is not set in metric class',  # mmseg's IoUMetric has none: its keys stay mIoU, not a/mIoU
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)


def quiet_upstream_warnings() -> None:
    """Ignore the :data:`HARMLESS_WARNINGS`, whatever their category, in this process (forked dataloader workers
    inherit the filters). Filters added here take precedence over ``-W`` options and ``PYTHONWARNINGS``."""
    for message in HARMLESS_WARNINGS:
        warnings.filterwarnings('ignore', message=message)


class HarmlessLogFilter(logging.Filter):
    """A logging filter that drops the :data:`HARMLESS_LOG_WARNINGS`; attach it to a logger or handler, e.g.
    ``runner.logger.addFilter(HarmlessLogFilter())``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(HARMLESS_LOG_WARNINGS)
