"""What only a fresh interpreter can show, in ONE subprocess (each start costs seconds of imports):

- a config's ``custom_imports = dict(imports=['mmext'])`` alone registers the backbone, as under mmseg's own tools;
- a findable compiled ``mmcv._ext`` wins over mmext's stand-in (served here by a meta-path finder installed before
  anything imports mmcv), and mmseg/mmdet models still import on top of it;
- ``MMEXT_FAST_MIXER=0`` is read once, at import: changing the environment later does nothing, the setter does.
"""
import json
import os
import subprocess
import sys

SCRIPT = r'''
import importlib.abc, importlib.machinery, json, os, sys

class CompiledExt(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == 'mmcv._ext' else None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.__getattr__ = compiled_op

def compiled_op(name):
    if name.startswith('__'):
        raise AttributeError(name)
    return 'compiled ' + name

sys.meta_path.insert(0, CompiledExt())
from mmengine.config import Config
from mmengine.registry import init_default_scope
cfg = Config.fromfile(sys.argv[1])
assert 'mmext' in sys.modules, 'custom_imports did not import mmext'
init_default_scope(cfg.default_scope)
import mmseg.models, mmdet.models
from mmseg.registry import MODELS as SEG_MODELS
from mmdet.registry import MODELS as DET_MODELS
import mmcv._ext
from mmext.compat import install_mmcv_ext_stand_in, mmcv_ext_stand_in_installed
from mmext.ops import fast_mixer_enabled, set_fast_mixer
result = dict(
    backbone=type(SEG_MODELS.build(cfg.backbone)).__name__,
    detectors=[bool(DET_MODELS.get('RetinaNet')), bool(DET_MODELS.get('MaskRCNN'))],
    stand_in_installed=mmcv_ext_stand_in_installed(), stand_in_reinstalled=install_mmcv_ext_stand_in(),
    nms=mmcv._ext.nms, fast_mixer_at_import=fast_mixer_enabled())
os.environ['MMEXT_FAST_MIXER'] = '1'
result['fast_mixer_after_env_change'] = fast_mixer_enabled()
set_fast_mixer(True)
result['fast_mixer_after_setter'] = fast_mixer_enabled()
print('RESULT ' + json.dumps(result))
'''


def test_fresh_interpreter(repo_root, tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['mmext'], allow_failed_imports=False)\n"
                   "default_scope = 'mmseg'\n"
                   "backbone = dict(type='InceptionNeXt', arch=dict(depths=(1,), dims=(16,), mlp_ratios=(2,)),\n"
                   "                out_indices=(0,))\n")
    env = dict(os.environ, MMEXT_FAST_MIXER='0', OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-c', SCRIPT, str(cfg)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith('RESULT ')]
    assert len(lines) == 1, out.stdout[-3000:]
    result = json.loads(lines[0][len('RESULT '):])
    assert result['backbone'] == 'InceptionNeXt'
    assert result['detectors'] == [True, True]
    assert result['stand_in_installed'] is False and result['stand_in_reinstalled'] is False
    assert result['nms'] == 'compiled nms'
    assert result['fast_mixer_at_import'] is False
    assert result['fast_mixer_after_env_change'] is False  # read once, at import
    assert result['fast_mixer_after_setter'] is True
