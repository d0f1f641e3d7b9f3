"""tools/train.py and tools/test.py as users run them: subprocesses on a tiny UperNet-InceptionNeXt, real ADE20K."""
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


def write_tiny_config(path: Path, repo_root: Path, data_root: Path, extra: str = '') -> Path:
    """A runnable UperNet config: the repo's model base with a tiny InceptionNeXt, 64x64 crops, no validation."""
    path.write_text(f'''
_base_ = ['{repo_root}/configs/_base_/models/upernet_inceptionnext.py', 'mmseg::_base_/datasets/ade20k.py',
          'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py']
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch=dict(_delete_=True, depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2)),
                  init_cfg=None),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=16, num_classes=150, dropout_ratio=0.),
    auxiliary_head=dict(in_channels=64, channels=16, num_classes=150, dropout_ratio=0.))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
split = dict(img_path='images/validation', seg_map_path='annotations/validation')
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    type='CheckedADE20KDataset', data_root='{data_root}', data_prefix=split, pipeline=train_pipeline))
test_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False, dataset=dict(
    type='CheckedADE20KDataset', data_root='{data_root}', data_prefix=split, pipeline=test_pipeline))
val_dataloader = val_cfg = val_evaluator = None
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.01))
param_scheduler = []
train_cfg = dict(max_iters=4, val_interval=1000)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2),
                     visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0, deterministic=True)
{extra}
''')
    return path


def run_tool(repo_root: Path, *args: str, cwd: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1', **(extra_env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TRAIN_TIMEOUT)


def weights(checkpoint: Path) -> dict:
    return torch.load(checkpoint, map_location='cpu', weights_only=False)['state_dict']  # our own file


def test_resume_after_crash_matches_uninterrupted_run(repo_root, ade20k_samples, tmp_path):
    (tmp_path / 'crash_hook.py').write_text(CRASH_HOOK)
    cfg = write_tiny_config(tmp_path / 'tiny.py', repo_root, ade20k_samples)
    train = str(repo_root / 'tools' / 'train.py')

    straight = run_tool(repo_root, train, str(cfg), '--work-dir', str(tmp_path / 'straight'), cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]

    crash_cfg = write_tiny_config(tmp_path / 'tiny_crash.py', repo_root, ade20k_samples, extra=(
        "custom_imports = dict(imports=['mmext', 'crash_hook'])\n"
        "custom_hooks = [dict(type='CrashAfterIterHook', crash_iter=2)]"))
    crashed = run_tool(repo_root, train, str(crash_cfg), '--work-dir', str(tmp_path / 'resumed'), cwd=tmp_path,
                       extra_env=dict(PYTHONPATH=str(tmp_path)))
    assert crashed.returncode == -9, crashed.stderr[-3000:]
    assert (tmp_path / 'resumed' / 'iter_2.pth').is_file()
    assert not (tmp_path / 'resumed' / 'iter_4.pth').exists()

    resumed = run_tool(repo_root, train, str(cfg), '--work-dir', str(tmp_path / 'resumed'), '--resume', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in resumed.stdout + resumed.stderr

    expected, actual = weights(tmp_path / 'straight' / 'iter_4.pth'), weights(tmp_path / 'resumed' / 'iter_4.pth')
    assert expected.keys() == actual.keys()
    differing = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not differing, f'resumed weights differ from the uninterrupted run in {differing[:5]}'
    # and training did move the weights: the comparison is not between two untouched initialisations
    assert not torch.equal(weights(tmp_path / 'resumed' / 'iter_2.pth')['decode_head.conv_seg.weight'],
                           actual['decode_head.conv_seg.weight'])


def test_test_tool_writes_predictions_and_paintings(repo_root, ade20k_samples, tmp_path):
    cfg_path = write_tiny_config(tmp_path / 'tiny.py', repo_root, ade20k_samples)
    cfg = Config.fromfile(cfg_path)
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)

    result = run_tool(repo_root, str(repo_root / 'tools' / 'test.py'), str(cfg_path), str(checkpoint),
                      '--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'pred'),
                      '--show-dir', str(tmp_path / 'painted'), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'mIoU' in result.stdout + result.stderr

    images = sorted((ade20k_samples / 'images' / 'validation').glob('*.jpg'))
    assert images
    for image in images:
        pred = np.asarray(Image.open(tmp_path / 'pred' / f'{image.stem}.png'))
        assert pred.shape == Image.open(image).size[::-1]  # full resolution, like the annotation
        assert pred.min() >= 1 and pred.max() <= 150  # reduce_zero_label: class c is written as c + 1
    assert len(list((tmp_path / 'painted').rglob('*.png'))) == len(images)


def test_amp_on_cpu_is_a_clear_error(repo_root, ade20k_samples, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('checks the CPU refusal; CUDA machines take the AmpOptimWrapper path')
    cfg = write_tiny_config(tmp_path / 'tiny.py', repo_root, ade20k_samples)
    result = run_tool(repo_root, str(repo_root / 'tools' / 'train.py'), str(cfg), '--amp',
                      '--work-dir', str(tmp_path / 'work'), cwd=tmp_path)
    assert result.returncode != 0
    assert '--amp needs a CUDA device' in result.stderr


def test_out_dir_needs_an_iou_metric(repo_root):
    """``--out DIR`` writes PNGs through mmseg's IoUMetric; other metrics (mmdet's CocoMetric) get a clear error."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('mmext_tools_test', repo_root / 'tools' / 'test.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg = Config(dict(test_evaluator=dict(type='CocoMetric', ann_file='val.json')))
    with pytest.raises(ValueError, match='needs a single mmseg IoUMetric(.|\n)*CocoMetric'):
        tool.add_output(cfg, 'preds')
    cfg = Config(dict(test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU'])))
    tool.add_output(cfg, 'preds')
    assert cfg.test_evaluator.output_dir == 'preds' and cfg.test_evaluator.keep_results
