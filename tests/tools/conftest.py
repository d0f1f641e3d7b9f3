"""Fixtures of the tool tests.

- ``demo_run``: one small `make demo` run (tools/demo_train.py), shared by the tests that check its results and its
  console, so the suite trains it once (once in all, also across pytest-xdist workers).
"""
import contextlib
import fcntl
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

# 20 iterations is the shortest run that learns beyond chance (see tests/tools/test_demo_train.py).
DEMO_ARGS = ['--iters', '20', '--num-train', '16', '--num-val', '2', '--batch-size', '2', '--seed', '3']


class DemoRun(NamedTuple):
    """What ``demo_train.main`` returned, its ``--work-dir`` and what it wrote to the terminal (fd 1 and fd 2)."""

    summary: dict
    work_dir: Path
    out: str
    err: str


@contextlib.contextmanager
def _console_to(out_path: Path, err_path: Path):
    """Send stdout and stderr, Python's and the file descriptors' (as ``capfd`` sees them), to two files."""
    saved = []
    try:
        for fd, name, path in ((1, 'stdout', out_path), (2, 'stderr', err_path)):
            getattr(sys, name).flush()
            saved.append((fd, name, os.dup(fd), getattr(sys, name)))
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(target, fd)
            os.close(target)
            # Not closed afterwards: a logging handler bound to it keeps writing to the restored descriptor.
            setattr(sys, name, open(fd, 'w', encoding='utf-8', buffering=1, closefd=False))
        yield
    finally:
        for fd, name, copy, stream in reversed(saved):
            getattr(sys, name).flush()
            setattr(sys, name, stream)
            os.dup2(copy, fd)
            os.close(copy)


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory, load_tool) -> DemoRun:
    root = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        root = root.parent  # the folder all workers of this session share
    run_dir = root / 'demo_run'
    summary_file = run_dir / 'summary.json'  # written last: its presence means the run completed
    with open(root / 'demo_run.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker running the demo: wait for its results
        if not summary_file.is_file():
            run_dir.mkdir(exist_ok=True)
            demo = load_tool('tools/demo_train.py')
            with _console_to(run_dir / 'stdout.txt', run_dir / 'stderr.txt'):
                summary = demo.main(['--work-dir', str(run_dir / 'demo'), *DEMO_ARGS])
            summary_file.write_text(json.dumps(summary))
    return DemoRun(json.loads(summary_file.read_text()), run_dir / 'demo', (run_dir / 'stdout.txt').read_text(),
                   (run_dir / 'stderr.txt').read_text())
