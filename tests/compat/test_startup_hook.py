"""The interpreter start-up hook (``mmext-startup.pth`` -> ``mmext_startup``): OpenMMLab's own programs on mmcv-lite.

Each check runs in a fresh interpreter that never imports mmext (two subprocesses in all: one with the hook, a light one
with ``MMEXT_NO_MMCV_STANDIN=1``), because the point is what a process gets before anything of mmext is imported.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from synthetic_coco import SYNTHETIC_COCO_CLASSES, generate_synthetic_coco

import mmext_startup

SITE = Path(torch.__file__).parents[1]  # the environment's site-packages
MMDET_TOOLS = SITE / 'mmdet' / '.mim' / 'tools'
MMSEG_TOOLS = SITE / 'mmseg' / '.mim' / 'tools'
MMSEG_CONFIG = SITE / 'mmseg' / '.mim' / 'configs' / 'pspnet' / 'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'

# A config of mmdet's own (RetinaNet-R18, no mmext in it) on the synthetic COCO-layout set, small and CPU-friendly.
DET_CONFIG = '''
_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes={num_classes}), test_cfg=dict(score_thr=0.0))
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(160, 128), keep_ratio=True),
                 dict(type='LoadAnnotations', with_bbox=True),
                 dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    data_root={data_root!r}, ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
    metainfo=dict(classes={classes!r}), pipeline=test_pipeline))
test_evaluator = dict(ann_file={ann_file!r})
'''

# Runs with the hook: mmseg's inference docs' first line, mmdet's, then mmseg's print_config.py and mmdet's
# tools/test.py run unmodified (runpy), all in one interpreter that must end without having imported mmext.
WITH_HOOK = r'''
import json, runpy, sys
at_start = sorted(m for m in ('torch', 'mmcv', 'mmengine', 'mmext', 'mmseg', 'mmdet') if m in sys.modules)
hooked = [type(f).__name__ if not isinstance(f, type) else f.__name__ for f in sys.meta_path]
from mmseg.apis import MMSegInferencer
from mmdet.apis import DetInferencer
from mmengine.utils.dl_utils import mmcv_full_available
import mmcv._ext
report = dict(at_start=at_start, finders=hooked, stand_in=getattr(mmcv._ext, '__mmext_stand_in__', False),
              full_mmcv=mmcv_full_available())
tools, seg_config, det_config, checkpoint, work_dir = sys.argv[1:]
sys.argv = ['print_config.py', seg_config]
runpy.run_path(tools + '/mmseg/print_config.py', run_name='__main__')
sys.argv = ['test.py', det_config, checkpoint, '--work-dir', work_dir]
runpy.run_path(tools + '/mmdet/test.py', run_name='__main__')
report['mmext_imported'] = 'mmext' in sys.modules
print('REPORT ' + json.dumps(report))
'''

WITHOUT_HOOK = r'''
import importlib, json, sys
finders = [f for f in sys.meta_path if getattr(f, 'mmext_stand_in', False)]
try:
    importlib.import_module('mmcv._ext')  # what every mmcv.ops file does first
    error = None
except ModuleNotFoundError as e:
    error = str(e)
print('REPORT ' + json.dumps(dict(finders=len(finders), error=error)))
'''


def _report(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith('REPORT ')]
    assert lines, result.stdout[-3000:]
    return json.loads(lines[-1][len('REPORT '):])


@pytest.fixture(scope='module')
def tools_dir(tmp_path_factory) -> Path:
    """mmseg's and mmdet's own tool scripts, as their wheels ship them (under ``.mim/tools``)."""
    if not (MMDET_TOOLS / 'test.py').is_file() or not (MMSEG_TOOLS / 'misc' / 'print_config.py').is_file():
        pytest.fail(f'mmdet/mmseg wheels without their tools: {MMDET_TOOLS}, {MMSEG_TOOLS}')
    root = tmp_path_factory.mktemp('tools')
    (root / 'mmseg').mkdir()
    (root / 'mmseg' / 'print_config.py').symlink_to(MMSEG_TOOLS / 'misc' / 'print_config.py')
    (root / 'mmdet').symlink_to(MMDET_TOOLS)
    return root


def test_hook_is_installed_and_tiny():
    assert any(getattr(f, 'mmext_stand_in', False) for f in sys.meta_path)  # this process started with it
    assert not mmext_startup.install()  # once per process
    assert mmext_startup.MmcvExtStandInFinder.find_spec('mmcv.ops') is None  # answers for mmcv._ext only
    tree = ast.parse(Path(mmext_startup.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {'os', 'sys', 'importlib.machinery', 'importlib.util'}  # nothing heavy, ever
    assert not any(isinstance(node, ast.ImportFrom) for node in ast.walk(tree))


@pytest.mark.slow
def test_openmmlab_programs_run_without_importing_mmext(tools_dir, tmp_path):
    data_root = generate_synthetic_coco(tmp_path / 'coco', num_train=1, num_val=2, size=(160, 128))  # one batch
    det_config = tmp_path / 'retinanet_r18_synthetic.py'
    det_config.write_text(DET_CONFIG.format(num_classes=len(SYNTHETIC_COCO_CLASSES), data_root=str(data_root),
                                            classes=SYNTHETIC_COCO_CLASSES,
                                            ann_file=str(data_root / 'annotations' / 'instances_val.json')))
    cfg = Config.fromfile(det_config)
    init_default_scope('mmdet')
    from mmdet.registry import MODELS

    torch.manual_seed(0)
    checkpoint = tmp_path / 'retinanet_r18.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, checkpoint)

    env = {k: v for k, v in os.environ.items() if k != mmext_startup.DISABLE_ENV}
    result = subprocess.run([sys.executable, '-c', WITH_HOOK, str(tools_dir), str(MMSEG_CONFIG), str(det_config),
                             str(checkpoint), str(tmp_path / 'work')],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    report = _report(result)
    assert report['at_start'] == []  # the hook imports nothing heavy at start-up
    assert report['finders'][-1] == 'MmcvExtStandInFinder'  # last: a compiled mmcv._ext would be found first
    assert report['stand_in'] and not report['full_mmcv']
    assert not report['mmext_imported']
    assert "type='PSPHead'" in result.stdout  # mmseg's print_config printed its config
    assert 'coco/bbox_mAP: ' in result.stdout + result.stderr  # mmdet's tools/test.py evaluated the checkpoint

    env[mmext_startup.DISABLE_ENV] = '1'
    report = _report(subprocess.run([sys.executable, '-c', WITHOUT_HOOK], cwd=tmp_path, env=env,
                                    capture_output=True, text=True, timeout=300))
    assert report == dict(finders=0, error="No module named 'mmcv._ext'")  # mmext then installs it for itself
