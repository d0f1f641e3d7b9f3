"""What only a fresh interpreter can show, in ONE subprocess (each start costs seconds of imports):

- a config's ``custom_imports = dict(imports=['mmext'])`` alone registers the backbone, as under mmseg's own tools;
- ``import mmext`` stays light: none of mmseg's/mmdet's models, datasets or metrics, mmcv's ops, torchvision, triton,
  timm, onnx or huggingface_hub is imported, yet every component mmext registers is found by name: the ones that
  subclass mmseg's on the first lookup of their registry (root, ``mmseg`` and ``mmdet`` scopes each tried first on
  one of them), then every one builds from a config dict under the ``mmseg`` scope and resolves under ``mmdet``;
- a findable compiled ``mmcv._ext`` wins over mmext's stand-in (served here by a meta-path finder installed before
  anything imports mmcv), and mmseg/mmdet models still import on top of it;
- ``MMEXT_FAST_MIXER=0`` is read once, at import: changing the environment later does nothing, the setter does.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmext'
ROOT_REGISTRIES = ('DATASETS', 'HOOKS', 'METRICS', 'MODELS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'TRANSFORMS')
# Modules ``import mmext`` must leave alone: each costs from a tenth of a second to over a second.
HEAVY = ('mmseg.models', 'mmseg.datasets', 'mmseg.evaluation', 'mmdet.models', 'mmdet.datasets', 'mmdet.evaluation',
         'mmcv.ops', 'mmcv._ext', 'torchvision', 'torch._dynamo', 'triton', 'timm', 'onnx', 'onnxruntime',
         'huggingface_hub', 'scipy')
# Constructor arguments for components that need some (others build from ``dict(type=name)`` alone).
TINY_ARCH = dict(depths=[1], dims=[16], mlp_ratios=[2])
BUILD_ARGS = {
    'InceptionNeXt': dict(arch=TINY_ARCH, out_indices=[0]),
    'InceptionNeXtIsotropic': dict(arch=dict(depth=1, dim=16, mlp_ratio=2)),
    'LN2d': dict(num_channels=16),
    'AtomicDumpResults': dict(out_file_path='results.pkl'),
    'CheckedADE20KDataset': dict(lazy_init=True, pipeline=[dict(type='LoadImageFromFile'),
                                                            dict(type='LoadAnnotations')]),
    **dict.fromkeys(['LayerDecayOptimWrapperConstructor', 'InceptionNeXtLayerDecayOptimizerConstructor'], dict(
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
        paramwise_cfg=dict(decay_rate=0.9))),
}

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
from mmengine.registry import DefaultScope, init_default_scope
cfg = Config.fromfile(sys.argv[1])
assert 'mmext' in sys.modules, 'custom_imports did not import mmext'
spec = json.loads(sys.argv[2])
result = dict(heavy_after_import=sorted(m for m in spec['heavy'] if m in sys.modules))

import mmdet.registry, mmseg.registry
import mmext.registry
from mmext.registry import LAZY_LOCATIONS
routes = {'root': mmext.registry, 'mmseg': mmseg.registry, 'mmdet': mmdet.registry}
components = spec['components']  # [registry, name, defining module]
result['first_lookups'] = []
for (root, locations), route in zip(LAZY_LOCATIONS.items(), ['mmseg', 'mmdet', 'root', 'mmseg']):
    registry_name = next(name for name in spec['registries'] if getattr(mmext.registry, name) is root)
    name, module = next((n, m) for r, n, m in components if r == registry_name and m.startswith(locations))
    before = module in sys.modules
    found = getattr(routes[route], registry_name).get(name)
    result['first_lookups'].append([registry_name, route, name, before, f'{found.__module__}.{found.__name__}'])

init_default_scope(cfg.default_scope)
result['built'], result['found_in_mmdet'] = {}, {}
for registry_name, name, _ in components:
    args = dict(spec['build_args'].get(name, {}), type=name)
    if name == 'CheckedADE20KDataset':
        args['data_root'] = spec['data_root']
    with DefaultScope.overwrite_default_scope('mmseg'):
        obj = getattr(mmext.registry, registry_name).build(args)
    kind = obj if isinstance(obj, type) else type(obj)
    result['built'][name] = f'{kind.__module__}.{kind.__name__}'
    if name == 'CheckedADE20KDataset':
        result['dataset_pipeline'] = [type(t).__name__ for t in obj.pipeline.transforms]
    found = getattr(mmdet.registry, registry_name).get(name)
    result['found_in_mmdet'][name] = f'{found.__module__}.{found.__name__}'

import mmseg.models, mmdet.models
from mmseg.registry import MODELS as SEG_MODELS
from mmdet.registry import MODELS as DET_MODELS
import mmcv._ext
from mmext.compat import install_mmcv_ext_stand_in, mmcv_ext_stand_in_installed
from mmext.ops import fast_mixer_enabled, set_fast_mixer
result.update(
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


def registered_components() -> list[tuple[str, str, str]]:
    """``(root registry, name, defining module)`` of every ``@<REGISTRY>.register_module(...)`` class in mmext and
    every ``<REGISTRY>.register_module(name=..., module=...)`` call, read from the source."""
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
        module = '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts).removesuffix('.__init__')
        for node in ast.walk(ast.parse(path.read_text())):
            calls = []
            if isinstance(node, ast.ClassDef):
                calls = [(d, node.name) for d in node.decorator_list if isinstance(d, ast.Call)]
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                calls = [(node.value, None)]
            for call, class_name in calls:
                func = call.func
                if not (isinstance(func, ast.Attribute) and func.attr == 'register_module'
                        and isinstance(func.value, ast.Name) and func.value.id in ROOT_REGISTRIES):
                    continue
                given = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == 'name'), None)
                names = ([ast.literal_eval(given)] if given is not None else [class_name])
                found += [(func.value.id, n, module) for group in names
                          for n in (group if isinstance(group, list) else [group]) if n]
    return found


def test_registered_components_found_from_source():
    components = registered_components()
    names = {name for _, name, _ in components}
    assert {'InceptionNeXt', 'CheckedADE20KDataset', 'CheckedLoadAnnotations', 'PerClassIoUMetric',
            'NonFiniteLossHook'} <= names, sorted(names)
    assert len(names) == len(components), 'a name registered twice'


@pytest.mark.slow
def test_fresh_interpreter(repo_root, tmp_path):
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['mmext'], allow_failed_imports=False)\n"
                   "default_scope = 'mmseg'\n"
                   "backbone = dict(type='InceptionNeXt', arch=dict(depths=(1,), dims=(16,), mlp_ratios=(2,)),\n"
                   "                out_indices=(0,))\n")
    components = registered_components()
    spec = dict(heavy=HEAVY, registries=ROOT_REGISTRIES, components=components, build_args=BUILD_ARGS,
                data_root=str(tmp_path))
    env = dict(os.environ, MMEXT_FAST_MIXER='0', OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-c', SCRIPT, str(cfg), json.dumps(spec)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith('RESULT ')]
    assert len(lines) == 1, out.stdout[-3000:]
    result = json.loads(lines[0][len('RESULT '):])

    assert result['heavy_after_import'] == []
    assert len(result['first_lookups']) >= 3
    for registry, route, name, imported_before, found in result['first_lookups']:
        assert not imported_before, f'{name} was registered before its first lookup: the test proves nothing'
        assert found.endswith('.' + name), (registry, route, name, found)
    defined = {name: module for _, name, module in components}
    for name, module in defined.items():
        assert result['built'][name].startswith(module + '.'), (name, result['built'][name])
        assert result['found_in_mmdet'][name] == result['built'][name]
    assert result['dataset_pipeline'] == ['CheckedLoadImageFromFile', 'CheckedLoadAnnotations']

    assert result['backbone'] == 'InceptionNeXt'
    assert result['detectors'] == [True, True]
    assert result['stand_in_installed'] is False and result['stand_in_reinstalled'] is False
    assert result['nms'] == 'compiled nms'
    assert result['fast_mixer_at_import'] is False
    assert result['fast_mixer_after_env_change'] is False  # read once, at import
    assert result['fast_mixer_after_setter'] is True
