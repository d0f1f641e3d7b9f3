"""Checkpoint reading and strict backbone loading: every released format, and a clear error for each bad input."""
import io
import logging
import os
import pickle
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import safetensors.torch
import torch
from mmengine.logging import HistoryBuffer

from mmext.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    check_weights_only_loadable,
    from_weights_only,
    read_checkpoint,
    to_weights_only,
    unsafe_globals,
)
from mmext.models import InceptionNeXt
from mmext.models.backbones.inceptionnext_weights import (
    arch_name,
    extract_backbone_state_dict,
    infer_arch,
    load_backbone_checkpoint,
)

HEAD_KEYS = {'head.fc1.weight', 'head.fc1.bias', 'head.norm.weight', 'head.norm.bias', 'head.fc2.weight',
             'head.fc2.bias'}


def _backbone(sd):
    return {k: v for k, v in sd.items() if not k.startswith('head.')}


def _write_official(sd, d):
    torch.save(sd, d / 'inceptionnext_atto.pth')
    return d / 'inceptionnext_atto.pth'


def _write_timm_bin(sd, d):
    torch.save(sd, d / 'pytorch_model.bin')
    return d / 'pytorch_model.bin'


def _write_timm_safetensors(sd, d):
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, d / 'model.safetensors')
    return d / 'model.safetensors'


def _write_mmengine_segmentor(sd, d):
    state_dict = {f'backbone.{k}': v for k, v in _backbone(sd).items()}
    state_dict.update({'decode_head.conv_seg.weight': torch.zeros(150, 16, 1, 1), 'decode_head.conv_seg.bias':
                       torch.zeros(150), 'auxiliary_head.conv_seg.weight': torch.zeros(150, 8, 1, 1)})
    torch.save({'state_dict': state_dict, 'meta': {'iter': 10}}, d / 'iter_10.pth')
    return d / 'iter_10.pth'


def _write_model_wrapper(sd, d):
    torch.save({'model': sd, 'epoch': 300}, d / 'checkpoint.pth')
    return d / 'checkpoint.pth'


def _write_ddp(sd, d):
    torch.save({f'module.{k}': v for k, v in sd.items()}, d / 'ddp.pth')
    return d / 'ddp.pth'


def _write_legacy_torch(sd, d):
    torch.save(sd, d / 'legacy.pth', _use_new_zipfile_serialization=False)
    return d / 'legacy.pth'


WRITERS = [_write_official, _write_timm_bin, _write_timm_safetensors, _write_mmengine_segmentor,
           _write_model_wrapper, _write_ddp, _write_legacy_torch]


@pytest.mark.parametrize('write', WRITERS, ids=[w.__name__[len('_write_'):] for w in WRITERS])
def test_every_released_format_loads_key_for_key(write, timm_atto_state_dict, tmp_path):
    path = write(timm_atto_state_dict, tmp_path)
    model = InceptionNeXt('atto')
    report = load_backbone_checkpoint(model, path)
    assert report.ok
    assert set(report.head_keys) == (set() if write is _write_mmengine_segmentor else HEAD_KEYS)
    assert report.checkpoint_arch == report.model_arch == 'InceptionNeXt-atto (depths 2-2-6-2, dims 40..320)'
    loaded = model.state_dict()
    assert set(loaded) == set(_backbone(timm_atto_state_dict))
    for key, value in _backbone(timm_atto_state_dict).items():
        assert torch.equal(loaded[key], value), key


def test_segmentor_checkpoint_takes_backbone_keys_and_reports_the_rest(timm_atto_state_dict, tmp_path):
    path = _write_mmengine_segmentor(timm_atto_state_dict, tmp_path)
    backbone = extract_backbone_state_dict(read_checkpoint(path), source=str(path))
    assert backbone.prefix == 'backbone.'
    assert backbone.ignored_keys == ['auxiliary_head.conv_seg.weight', 'decode_head.conv_seg.bias',
                                     'decode_head.conv_seg.weight']
    assert extract_backbone_state_dict(read_checkpoint(path), prefix='backbone').state_dict.keys() == \
        backbone.state_dict.keys()
    with pytest.raises(CheckpointError, match=r"no key of .* starts with prefix 'neck\.'.*backbone\.\*: 220"):
        extract_backbone_state_dict(read_checkpoint(path), prefix='neck.', source=str(path))


def test_ambiguous_or_foreign_key_sets_need_an_explicit_prefix(timm_atto_state_dict):
    sd = _backbone(timm_atto_state_dict)
    two = {**{f'backbone.{k}': v for k, v in sd.items()}, **{f'ema.backbone.{k}': v for k, v in sd.items()}}
    with pytest.raises(CheckpointError, match=r"several .* prefixes .*'backbone\.'.*'ema\.backbone\.'.*prefix="):
        extract_backbone_state_dict(two)
    assert extract_backbone_state_dict(two, prefix='ema.backbone.').state_dict.keys() == sd.keys()
    with pytest.raises(CheckpointError, match=r'does not look like an InceptionNeXt checkpoint.*layer1\.\*: 1'):
        extract_backbone_state_dict({'layer1.0.conv1.weight': torch.zeros(1)})


def test_summary_is_one_log_record_and_reports_new_out_norms(timm_atto_state_dict, tmp_path):
    path = _write_official(timm_atto_state_dict, tmp_path)
    records = []
    logger = logging.getLogger('test_checkpoint_summary')
    logger.addHandler(type('H', (logging.Handler,), {'emit': lambda self, r: records.append(r)})())
    logger.setLevel(logging.INFO)
    model = InceptionNeXt('atto', out_norm_cfg=dict(type='BN'))
    report = load_backbone_checkpoint(model, path, logger=logger)
    assert report.ok and len(report.new_keys) == 20
    assert len(records) == 1 and records[0].levelno == logging.INFO
    message = records[0].getMessage()
    assert str(path) in message
    assert 'loaded 220 of 220 backbone tensors' in message
    assert 'dropped 6 classification-head tensors' in message
    assert 'new, initialised fresh: out_norms.0, out_norms.1, out_norms.2, out_norms.3' in message
    assert 'missing: none, unexpected: none, shape mismatches: none' in message


def test_checkpoint_of_another_arch_is_refused_naming_both(tmp_path):
    path = tmp_path / 'inceptionnext_tiny.pth'
    torch.save(InceptionNeXt('tiny').state_dict(), path)
    model = InceptionNeXt('atto')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_backbone_checkpoint(model, path)
    message = str(info.value)
    assert str(path) in message
    assert ('checkpoint looks like InceptionNeXt-tiny (depths 3-3-9-3, dims 96..768) but the model is '
            'InceptionNeXt-atto (depths 2-2-6-2, dims 40..320)') in message
    assert 'stem.0.weight (96, 3, 4, 4) in checkpoint vs (40, 3, 4, 4) in model' in message
    assert 'unexpected in checkpoint' in message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing was loaded


def test_missing_keys_raise_unless_strict_false(timm_atto_state_dict, tmp_path):
    sd = {k: v for k, v in timm_atto_state_dict.items() if not k.startswith('stages.3.blocks.1.')}
    path = tmp_path / 'partial.pth'
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        load_backbone_checkpoint(InceptionNeXt('atto'), path)
    assert 'missing from checkpoint (15): stages.3.blocks.1.gamma' in str(info.value)
    assert 'checkpoint looks like a custom InceptionNeXt (depths 2-2-6-1, dims 40..320)' in str(info.value)

    model = InceptionNeXt('atto')
    report = load_backbone_checkpoint(model, path, strict=False)
    assert not report.ok and len(report.missing) == 15 and len(report.loaded) == 204
    assert report.bn_counters == ['stages.3.blocks.1.norm.num_batches_tracked']
    assert 'missing from checkpoint (15)' in report.summary()
    state = model.state_dict()
    assert all(torch.equal(state[k], sd[k]) for k in report.loaded)


def test_unexpected_non_head_key_raises(timm_atto_state_dict, tmp_path):
    path = tmp_path / 'extra.pth'
    torch.save({**timm_atto_state_dict, 'stages.0.blocks.0.extra_scale': torch.ones(40)}, path)
    with pytest.raises(CheckpointError, match=r'unexpected in checkpoint \(1\): stages\.0\.blocks\.0\.extra_scale'):
        load_backbone_checkpoint(InceptionNeXt('atto'), path)


def test_nothing_fitting_raises_even_when_not_strict(tmp_path):
    path = tmp_path / 'tiny.pth'
    torch.save({k: v for k, v in InceptionNeXt('tiny').state_dict().items() if v.dim() > 0 and 'gamma' not in k},
               path)
    with pytest.raises(CheckpointError, match='does not fit'):
        load_backbone_checkpoint(InceptionNeXt(dict(depths=(1, 1), dims=(8, 16), mlp_ratios=(2, 2)),
                                               out_indices=(0, 1)), path, strict=False)


@pytest.mark.filterwarnings('ignore:Detected pickle protocol 4')  # torch's note on the plain pickle
@pytest.mark.parametrize('protocol', ['torch_zip', 'plain_pickle'])
def test_malicious_pickle_is_refused_without_running_it(protocol, tmp_path):
    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    path = tmp_path / 'inceptionnext_tiny.pth'
    if protocol == 'torch_zip':
        torch.save({'stem.0.weight': torch.zeros(1), 'x': Payload()}, path)
    else:
        path.write_bytes(pickle.dumps({'x': Payload()}, protocol=4))
    with pytest.raises(UnsafeCheckpointError) as info:
        load_backbone_checkpoint(InceptionNeXt('atto'), path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and 'posix.system' in message and 'Nothing from it was executed' in message
    assert 'posix.system' in unsafe_globals(path)


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_pickle_scan_names_exactly_what_a_file_imports(protocol, tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'posix': 'system', 'w': torch.ones(2)}, good, pickle_protocol=protocol)  # decoy strings
    assert unsafe_globals(good) == []  # torch's own rebuild functions are what weights_only allows
    check_weights_only_loadable(good)  # a pre-check must not block a good file
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(pickle.dumps(['posix', {'x': np.float64(1.0)}], protocol=protocol))
    assert set(unsafe_globals(bad)) == {'numpy._core.multiarray.scalar', 'numpy.dtype'}
    with pytest.raises(UnsafeCheckpointError, match='numpy'):
        check_weights_only_loadable(bad)


@pytest.mark.parametrize('kind', ['torch_truncated', 'safetensors_truncated', 'html', 'empty', 'text'])
def test_unreadable_files_raise_naming_the_file(kind, timm_atto_state_dict, tmp_path):
    if kind == 'torch_truncated':
        full = _write_official(timm_atto_state_dict, tmp_path).read_bytes()
        path, data, match = tmp_path / 'cut.pth', full[:len(full) // 2], 'truncated or corrupt'
    elif kind == 'safetensors_truncated':
        full = _write_timm_safetensors(timm_atto_state_dict, tmp_path).read_bytes()
        path, data, match = tmp_path / 'cut.safetensors', full[:-100], 'truncated or corrupt'
    elif kind == 'html':
        path, data, match = tmp_path / 'model.pth', b'<!DOCTYPE html><title>404</title>', 'HTML'
    elif kind == 'empty':
        path, data, match = tmp_path / 'model.pth', b'', 'empty'
    else:
        path, data, match = tmp_path / 'model.pth', b'stem.0.weight 1 2 3\n', 'not a readable checkpoint'
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=match) as info:
        load_backbone_checkpoint(InceptionNeXt('atto'), path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        read_checkpoint(tmp_path / 'missing.pth')


def test_arch_is_read_from_shapes(timm_atto_state_dict):
    assert arch_name(infer_arch(_backbone(timm_atto_state_dict)), InceptionNeXt.arch_settings) == 'atto'
    custom = dict(depths=(1, 2), dims=(16, 32), mlp_ratios=(2, 3), token_mixer=dict(band_kernel_size=5,
                                                                                     branch_ratio=0.25))
    inferred = infer_arch(InceptionNeXt(custom, out_indices=(0, 1)).state_dict())
    assert inferred == dict(depths=(1, 2), dims=(16, 32), mlp_ratios=(2, 3),
                            token_mixer=dict(square_kernel_size=3, band_kernel_size=5, branch_ratio=0.25))
    assert arch_name(inferred, InceptionNeXt.arch_settings) is None
    assert infer_arch({'stem.0.weight': torch.zeros(1)}) is None


def test_weights_only_encoding_round_trips_mmengine_values():
    buffer = HistoryBuffer([0.5, 0.25], [1, 2], max_length=7)
    Point = namedtuple('Point', 'x y')
    state_dict = OrderedDict(w=torch.ones(2))
    state_dict._metadata = OrderedDict({'': {'version': 2}})
    value = {'scalars': {'loss': buffer}, 'eta': np.float64(1.5), 'n': np.int64(3), 'flag': np.bool_(True),
             'palette': np.array([[1, 2, 3]], dtype=np.uint8), 'names': np.array(['a', 'bc']),
             'objects': np.array([None, np.float32(2)], dtype=object), 'fs': frozenset({1, 2}),
             'point': Point(1, 2), 'classes': ('a', 'b'), 'state_dict': state_dict, 'plain': [1, 'x', None]}
    encoded = to_weights_only(value)
    assert encoded['state_dict'] is state_dict  # untouched containers are not copied
    assert isinstance(encoded['eta'], dict) and isinstance(value['eta'], np.float64)  # input not mutated
    buffer_file = io.BytesIO()
    torch.save(encoded, buffer_file)
    buffer_file.seek(0)
    decoded = from_weights_only(torch.load(buffer_file, weights_only=True))
    restored = decoded['scalars']['loss']
    assert isinstance(restored, HistoryBuffer) and restored.max_length == 7
    assert restored.data[0].tolist() == [0.5, 0.25] and restored.data[1].dtype == buffer.data[1].dtype
    assert type(decoded['eta']) is np.float64 and decoded['eta'] == 1.5
    assert type(decoded['n']) is np.int64 and type(decoded['flag']) is np.bool_
    for key in ('palette', 'names', 'objects'):
        assert decoded[key].dtype == value[key].dtype and decoded[key].tolist() == value[key].tolist()
    assert decoded['fs'] == frozenset({1, 2}) and decoded['point'] == (1, 2) and decoded['classes'] == ('a', 'b')
    assert decoded['state_dict']._metadata == {'': {'version': 2}}
    assert pickle.dumps(decoded['palette']) == pickle.dumps(value['palette'])

    with pytest.raises(TypeError, match=r'meta\.bad: a .*object cannot be stored in a weights_only checkpoint'):
        to_weights_only({'meta': {'bad': object()}}, 'checkpoint')
    with pytest.raises(TypeError, match=r'key np\.float64\(1\.0\) of type float64'):  # np.float64 subclasses float
        to_weights_only({np.float64(1.0): 'x'})


@pytest.mark.gpu
def test_weights_only_decoding_after_loading_onto_the_gpu(tmp_path):
    # Runner.resume loads with map_location=get_device(): encoded arrays arrive as CUDA tensors
    path = tmp_path / 'iter_1.pth'
    torch.save(to_weights_only({'loss': HistoryBuffer([0.5, 0.25], [1, 1]), 'eta': np.float64(2.0)}), path)
    decoded = from_weights_only(torch.load(path, map_location='cuda', weights_only=True))
    assert decoded['loss'].data[0].tolist() == [0.5, 0.25] and type(decoded['eta']) is np.float64


def test_download_copies_once_and_names_a_failed_url(tmp_path, monkeypatch):
    """The URL path of the loader, exercised offline through a file:// URL."""
    from mmext.checkpoint import io as ckpt

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    src = tmp_path / 'inceptionnext_atto.pth'
    torch.save({'stem.0.weight': torch.ones(2)}, src)
    path = ckpt._download(src.as_uri())
    assert torch.load(path)['stem.0.weight'].sum().item() == 2
    src.unlink()
    assert ckpt._download(src.as_uri()) == path  # cached: no second download
    with pytest.raises(ckpt.CheckpointError, match='could not download checkpoint file://.*missing.pth'):
        ckpt._download((tmp_path / 'missing.pth').as_uri())


def test_check_checkpoint_fits_looks_through_wrappers_and_names_keys(tmp_path):
    from mmext.checkpoint import CheckpointError, check_checkpoint_fits
    from mmext.models import InceptionNeXt

    arch = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2))
    model = InceptionNeXt(arch)

    class Wrapper(torch.nn.Module):  # stands for DDP / SegTTAModel, which hold the model as .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in model.state_dict().items()}, 'meta': {}}, good)
    check_checkpoint_fits(Wrapper(model), good)
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': InceptionNeXt(dict(arch, dims=(8, 16, 32, 64))).state_dict()}, bad)
    with pytest.raises(CheckpointError, match=r'bad.pth does not fit(.|\n)*shape mismatches'):
        check_checkpoint_fits(Wrapper(model), bad)
