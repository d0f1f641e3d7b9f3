"""Shared fixtures. Importing mmext here installs the mmcv-lite stand-in before any test imports mmseg/mmdet.

What lives here (use these rather than writing your own copy):
- ``repo_root``, ``ade20k_samples``: paths.
- ``load_tool``: import a script under ``tools/`` as a module, to call its functions directly.
- ``tiny_arch``: the one tiny InceptionNeXt ``arch`` dict for behaviour tests.
- ``write_tiny_seg_config``: a runnable tiny UperNet-InceptionNeXt config on the real ADE20K samples.
- ``randomise_weights``: order-1 random weights, BN statistics and layer scales, so every layer matters.
- ``timm_state_dict`` / ``timm_atto_state_dict``: timm's ``inception_next_*`` state dicts with random values.
- ``assert_same_gradients``: two models, same weights, same gradients (``with_cp`` and the like).
- ``free_port``: ``free_port()`` gives a free local TCP port for a multi-process (torchrun) test.
- ``corrupt_tensor_data``: damage a torch checkpoint's tensor bytes, its zip directory intact.
"""
import importlib.util
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn as nn

import mmext  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
ADE20K_SAMPLES = Path(os.environ.get(
    'MMEXT_ADE20K_SAMPLES', REPO_ROOT.parent / 'shared' / 'data' / 'ade20k_devkit_samples')) / 'ADEChallengeData2016'

# Four stages of one block each; 16 channels in stage 0 give the default branch ratio 1/8 two channels per branch.
TINY_ARCH = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2))

if os.environ.get('PYTEST_XDIST_WORKER'):
    torch.set_num_threads(1)  # two xdist workers share CI's two cores


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def ade20k_samples() -> Path:
    """``data_root`` of the three real ADE20K validation samples (``../shared/data/ade20k_devkit_samples``)."""
    if not (ADE20K_SAMPLES / 'images' / 'validation').is_dir():
        pytest.skip(f'real ADE20K samples not found at {ADE20K_SAMPLES} (set MMEXT_ADE20K_SAMPLES); '
                    'CI always has them beside the clone')
    return ADE20K_SAMPLES


_TOOLS: dict[str, ModuleType] = {}


@pytest.fixture(scope='session')
def load_tool() -> Callable[[str], ModuleType]:
    """``load_tool('tools/deploy/export_onnx.py')``: the script imported as a module (once per session), so a test
    calls its ``parse_args``/``main``/helpers in-process instead of paying for a subprocess."""
    def load(relative_path: str) -> ModuleType:
        path = REPO_ROOT / relative_path
        if not path.is_file():
            raise FileNotFoundError(f'no tool script {path}')
        if relative_path not in _TOOLS:
            name = 'mmext_tool_' + relative_path.removesuffix('.py').replace('/', '_').replace('-', '_')
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickle look their module up there
            sys.path.insert(0, str(path.parent))  # as when run: a tool imports its sibling modules
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.parent))
            _TOOLS[relative_path] = module
        return _TOOLS[relative_path]
    return load


@pytest.fixture
def tiny_arch() -> dict:
    """A fresh copy of ``TINY_ARCH``: ``InceptionNeXt(arch=tiny_arch)`` builds in milliseconds, 4 stages of
    16/32/64/128 channels (strides 4..32), one block each."""
    return {k: tuple(v) for k, v in TINY_ARCH.items()}


def _tiny_seg_config(path: Path, data_root: Path, *, max_iters: int | None = 2, tta: bool = False,
                     extra: str = '') -> Path:
    arch = ', '.join(f'{k}={v}' for k, v in TINY_ARCH.items())
    if max_iters is None:
        train = 'train_dataloader = train_cfg = optim_wrapper = param_scheduler = None'
    else:
        train = f'''train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    type='CheckedADE20KDataset', data_root='{data_root}', data_prefix=split, pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.01))
param_scheduler = []
train_cfg = dict(max_iters={max_iters}, val_interval=1000)
randomness = dict(seed=0, deterministic=True)'''
    tta_text = '''tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=s, keep_ratio=True) for s in [(192, 48), (256, 64)]],
        [dict(type='RandomFlip', prob=p, direction='horizontal') for p in (0., 1.)],
        [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]]),
]''' if tta else ''
    path.write_text(f'''
_base_ = ['{REPO_ROOT}/configs/_base_/models/upernet_inceptionnext.py', 'mmseg::_base_/datasets/ade20k.py',
          'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py']
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch=dict(_delete_=True, {arch}), init_cfg=None),
    decode_head=dict(in_channels={list(TINY_ARCH['dims'])}, channels=16, num_classes=150, dropout_ratio=0.),
    auxiliary_head=dict(in_channels={TINY_ARCH['dims'][2]}, channels=16, num_classes=150, dropout_ratio=0.))
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
{tta_text}
split = dict(img_path='images/validation', seg_map_path='annotations/validation')
test_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False, dataset=dict(
    type='CheckedADE20KDataset', data_root='{data_root}', data_prefix=split, pipeline=test_pipeline))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
val_dataloader = val_cfg = val_evaluator = None
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2),
                     visualization=dict(type='SegVisualizationHook'))
{train}
{extra}
''')
    return path


@pytest.fixture(scope='session')
def write_tiny_seg_config() -> Callable[..., Path]:
    """``write_tiny_seg_config(path, data_root, *, max_iters=2, tta=False, extra='')`` writes a runnable config:
    the repo's UperNet base with ``TINY_ARCH``, 16-channel heads, 64x64 crops, images resized to 256x64, batch 2,
    no validation, a checkpoint every 2 iterations, seed 0. ``max_iters=None`` leaves training out (test-only
    config); ``tta=True`` adds a 2-scale x flip ``tta_pipeline``; ``extra`` is appended as config text."""
    return _tiny_seg_config


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith(('running_var', 'gamma')) or (name.endswith('weight') and tensor.ndim == 1):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.ndim == 1:  # biases, running means
                tensor.copy_(torch.rand(tensor.shape, generator=gen) - 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * tensor[0].numel() ** -0.5)
    return model.eval()


@pytest.fixture(scope='session')
def randomise_weights() -> Callable[..., nn.Module]:
    """``randomise_weights(model, seed=0)`` fills every floating tensor of ``model.state_dict()`` in place and
    returns the model in eval mode: running variances, layer scales (``gamma``) and norm weights in [0.5, 1.5),
    biases and running means in [-0.5, 0.5), other weights N(0, 1/fan_in). At init ``gamma`` is 1e-6 and BN is
    the identity, which would hide errors in every residual branch and every BN fold."""
    return _randomise


_TIMM_STATE_DICTS: dict[tuple[str, int], dict[str, torch.Tensor]] = {}


def _timm_state_dict(variant: str = 'atto', seed: int = 0) -> dict[str, torch.Tensor]:
    key = (variant, seed)
    if key not in _TIMM_STATE_DICTS:
        import timm
        gen = torch.Generator().manual_seed(seed)
        _TIMM_STATE_DICTS[key] = {
            k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
            for k, v in timm.create_model(f'inception_next_{variant}').state_dict().items()}
    return {k: v.clone() for k, v in _TIMM_STATE_DICTS[key].items()}


@pytest.fixture(scope='session')
def timm_state_dict() -> Callable[..., dict[str, torch.Tensor]]:
    """``timm_state_dict('atto', seed=0)``: the key layout of timm's ``inception_next_<variant>`` (the released
    checkpoints' layout, ``head.*`` included) filled with N(0, 1) values, so equality checks cannot pass by the
    shared constant init. Built once per session and variant; each call returns a copy the test may modify."""
    return _timm_state_dict


@pytest.fixture(scope='session')
def timm_atto_state_dict() -> dict[str, torch.Tensor]:
    """``timm_state_dict('atto')`` (seed 0), shared read-only by the tests of one session: do not modify it."""
    return _timm_state_dict('atto')


def _assert_same_gradients(reference: nn.Module, other: nn.Module, x: torch.Tensor) -> None:
    other.load_state_dict(reference.state_dict())
    for model in (reference, other):
        model.zero_grad()
        outs = model(x)
        sum(o.sum() for o in (outs if isinstance(outs, (tuple, list)) else [outs])).backward()
    for (name, p), q in zip(reference.named_parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.fixture(scope='session')
def assert_same_gradients() -> Callable[[nn.Module, nn.Module, torch.Tensor], None]:
    """``assert_same_gradients(reference, other, x)``: give ``other`` the reference's weights, back-propagate the
    sum of every output on ``x`` through both and compare each parameter's gradient (e.g. ``with_cp=True``
    against the plain model: activation checkpointing must not change the maths)."""
    return _assert_same_gradients


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='session')
def free_port() -> Callable[[], int]:
    """``free_port()``: a local TCP port that was free a moment ago, for torchrun's ``--master_port`` (a new one
    per call, so consecutive launches in one test never meet a port still closing)."""
    return _free_port


def _corrupt_tensor_data(path) -> None:
    """Flip one byte inside the first tensor's data in a torch zip checkpoint; the zip directory stays intact."""
    import struct
    import zipfile
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if '/data/' in i.filename and i.file_size > 0)
    data = bytearray(open(path, 'rb').read())
    name_len, extra_len = struct.unpack('<HH', data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len] ^= 0xFF
    open(path, 'wb').write(bytes(data))


@pytest.fixture(scope='session')
def corrupt_tensor_data() -> Callable[..., None]:
    """``corrupt_tensor_data(path)``: flip a byte of tensor data in a torch checkpoint (its CRC no longer matches;
    torch itself loads it without complaint)."""
    return _corrupt_tensor_data


@pytest.fixture(autouse=True)
def _deterministic_mode_stays_in_its_test():
    """mmengine's Runner switches ``torch.use_deterministic_algorithms`` on for a config with
    ``randomness=dict(deterministic=True)`` and never back; later tests in the process would inherit it (and its
    NaN-filled fresh tensors)."""
    yield
    if torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(False)


def pytest_collection_modifyitems(config, items):
    """Skip the ``gpu`` tests without CUDA; put the ``slow`` tests first.

    ``make test`` runs pytest-xdist's work-stealing scheduler: each worker starts on one half of this order and an
    idle worker takes tests from the end of the other's. Slow tests first leaves short ones for the end, so neither
    worker waits long on the other; a slow test last would leave a worker idle for its whole length.
    """
    skip_gpu = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'gpu' in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)  # stable: same order on every worker
