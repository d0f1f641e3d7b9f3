"""tools/train.py and tools/test.py as users run them on a tiny UperNet-InceptionNeXt, real ADE20K: in-process
``main()`` calls, and a subprocess where a real crash (SIGKILL) is the point."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from PIL import Image

TRAIN_TIMEOUT = 300

# A crash right after the iteration-2 checkpoint is written: SIGKILL, no cleanup, like a preempted job.
CRASH_HOOK = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class CrashAfterIterHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, crash_iter):
        self.crash_iter = crash_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.crash_iter:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def run_tool(repo_root: Path, *args: str, cwd: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1', **(extra_env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TRAIN_TIMEOUT)


def run_main(load_tool, monkeypatch, tool: str, *args: str) -> None:
    """``tool``'s ``main()`` in this process with one intra-op thread, like the ``OMP_NUM_THREADS=1`` subprocesses,
    so that weights computed here and there agree bit for bit."""
    monkeypatch.setattr(sys, 'argv', [tool, *args])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_tool(tool).main()
    finally:
        torch.set_num_threads(threads)


def weights(checkpoint: Path) -> dict:
    return torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']  # our own file


@pytest.mark.slow
def test_resume_after_crash_matches_uninterrupted_run(repo_root, load_tool, write_tiny_seg_config, ade20k_samples,
                                                       tmp_path, monkeypatch, capsys):
    (tmp_path / 'crash_hook.py').write_text(CRASH_HOOK)
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=4)
    train = str(repo_root / 'tools' / 'train.py')

    run_main(load_tool, monkeypatch, 'tools/train.py', str(cfg), '--work-dir', str(tmp_path / 'straight'))

    crash_cfg = write_tiny_seg_config(tmp_path / 'tiny_crash.py', ade20k_samples, max_iters=4, extra=(
        "custom_imports = dict(imports=['mmext', 'crash_hook'])\n"
        "custom_hooks = [dict(type='CrashAfterIterHook', crash_iter=2)]"))
    crashed = run_tool(repo_root, train, str(crash_cfg), '--work-dir', str(tmp_path / 'resumed'), cwd=tmp_path,
                       extra_env=dict(PYTHONPATH=str(tmp_path)))
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    assert (tmp_path / 'resumed' / 'iter_2.pth').is_file()
    assert not (tmp_path / 'resumed' / 'iter_4.pth').exists()

    capsys.readouterr()
    run_main(load_tool, monkeypatch, 'tools/train.py', str(cfg), '--work-dir', str(tmp_path / 'resumed'), '--resume')
    resumed = capsys.readouterr()
    assert 'resumed epoch: 0, iter: 2' in resumed.out + resumed.err

    expected, actual = weights(tmp_path / 'straight' / 'iter_4.pth'), weights(tmp_path / 'resumed' / 'iter_4.pth')
    assert expected.keys() == actual.keys()
    differing = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not differing, f'resumed weights differ from the uninterrupted run in {differing[:5]}'
    # and training did move the weights: the comparison is not between two untouched initialisations
    assert not torch.equal(weights(tmp_path / 'resumed' / 'iter_2.pth')['decode_head.conv_seg.weight'],
                           actual['decode_head.conv_seg.weight'])


@pytest.mark.slow
def test_test_tool_writes_predictions_and_paintings(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path,
                                                    monkeypatch, capsys):
    cfg_path = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=4)
    cfg = Config.fromfile(cfg_path)
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)

    run_main(load_tool, monkeypatch, 'tools/test.py', str(cfg_path), str(checkpoint), '--work-dir',
             str(tmp_path / 'work'), '--out', str(tmp_path / 'pred'), '--show-dir', str(tmp_path / 'painted'))
    result = capsys.readouterr()
    assert 'mIoU' in result.out + result.err

    images = sorted((ade20k_samples / 'images' / 'validation').glob('*.jpg'))
    assert images
    for image in images:
        pred = np.asarray(Image.open(tmp_path / 'pred' / f'{image.stem}.png'))
        assert pred.shape == Image.open(image).size[::-1]  # full resolution, like the annotation
        assert pred.min() >= 1 and pred.max() <= 150  # reduce_zero_label: class c is written as c + 1
    assert len(list((tmp_path / 'painted').rglob('*.png'))) == len(images)


def test_amp_on_cpu_is_a_clear_error(load_tool, write_tiny_seg_config, ade20k_samples, tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip('checks the CPU refusal; CUDA machines take the AmpOptimWrapper path')
    cfg = write_tiny_seg_config(tmp_path / 'tiny.py', ade20k_samples, max_iters=4)
    monkeypatch.setattr(sys, 'argv', ['train.py', str(cfg), '--amp', '--work-dir', str(tmp_path / 'work')])
    with pytest.raises(RuntimeError, match='--amp needs a CUDA device'):
        load_tool('tools/train.py').main()
    assert not (tmp_path / 'work').exists()  # refused before the Runner made anything


def test_out_dir_needs_an_iou_metric(load_tool):
    """``--out DIR`` writes PNGs through mmseg's IoUMetric; other metrics (mmdet's CocoMetric) get a clear error."""
    tool = load_tool('tools/test.py')
    cfg = Config(dict(test_evaluator=dict(type='CocoMetric', ann_file='val.json')))
    with pytest.raises(ValueError, match='needs a single mmseg IoUMetric(.|\n)*CocoMetric'):
        tool.add_output(cfg, 'preds')
    cfg = Config(dict(test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU'])))
    tool.add_output(cfg, 'preds')
    assert cfg.test_evaluator.output_dir == 'preds' and cfg.test_evaluator.keep_results
