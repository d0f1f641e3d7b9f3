"""`make demo`'s terminal: a progress bar, a handful of lines and the result; no warnings; the full log on disk."""
import json


def test_demo_console_is_short_and_quiet(tmp_path, load_tool, capfd):
    demo = load_tool('tools/demo_train.py')
    work_dir = tmp_path / 'demo'
    summary = demo.main(['--work-dir', str(work_dir), '--iters', '2', '--num-train', '4', '--num-val', '1',
                         '--batch-size', '2'])
    out, err = capfd.readouterr()
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
