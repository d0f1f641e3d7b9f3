"""`make demo`'s terminal: a progress bar, a handful of lines and the result; no warnings; the full log on disk."""
import json

import pytest


@pytest.mark.slow
def test_demo_console_is_short_and_quiet(demo_run):
    """The 20-iteration run of tests/tools/conftest.py, shared with test_demo_train.py; its terminal (fd 1 and 2)."""
    summary, work_dir, out, err = demo_run
    console = (out + err).replace('\r', '\n')  # each tqdm refresh counted as a line: the budget's worst case
    lines = [line for line in console.splitlines() if line.strip()]
    assert len(lines) < 60, console
    assert 'Warning' not in console and 'WARNING' not in console, console
    assert 'training: 100%' in console and 'mIoU' in out  # the bar ran to the end; the result is printed

    table = json.loads((work_dir / 'metrics.json').read_text())['per_class']
    assert len(table) == 150  # the full table stays in the JSON
    present = [row['class'] for row in table if row['IoU'] is not None]
    assert f'per class ({len(present)} classes in ground truth or prediction; {150 - len(present)} others' in out
    assert all(f'    {name} ' in out for name in present)
    logs = list(work_dir.glob('*/*.log'))
    assert len(logs) == 1 and 'Config:' in logs[0].read_text()  # the full log (config dump included) is on disk
    assert summary['picture'] == str(work_dir / 'demo.png')
