"""Side-by-side throughput: mmext InceptionNeXt vs timm ConvNeXt / ResNet-50 / InceptionNeXt, in one process.

    python tools/benchmark.py --preset cpu-seg --threads 2 --json work_dirs/bench_cpu_seg.json \
        --calib-dir IMAGES                                                    # full segmentor, CPU, every precision
    python tools/benchmark.py --preset cpu-deploy --json work_dirs/bench_cpu.json
    python tools/benchmark.py --preset gpu --json $OUT/bench_gpu.json          # full GPU matrix, ~8 min
    python tools/benchmark.py --protocol paper --mode infer --batch-size 8 \
        --models convnext_t inceptionnext_t --precision bf16 --channels-last

Prints a markdown table (median images/s with min-max over repeats, ms per step, ratio to ConvNeXt-T under the
same settings, peak memory) and optionally writes every number with the environment to --json. The device is
CUDA when there is one, else the CPU (``--device`` chooses). Measured figures:
docs/en/advanced_guides/benchmarks.md.

All cases run in one process on one device, so their ratios are comparable; on a CPU the repeats are interleaved
across cases (round robin) so that load changes hit every case alike. Each case reports images/s as the median
over repeats with min and max, the process CPU time per step (all threads), peak memory, and its ratio to
ConvNeXt-T under the same settings.

Protocols:
    ``paper``: classification models at ``img_size`` (paper: batch 128 at 224); mmext's backbone gets timm's
        InceptionNeXt head so the networks are the same. ``train`` = forward + backward + SGD step.
    ``dense``: the four stage outputs at ``img_size`` (512x512, batch 16 for dense prediction), loss = sum of
        their means. The segmentors (``upernet_t``: ``configs/upernet_inceptionnext_t_ade20k.py``;
        ``mmseg_upernet_convnext_t``: mmseg's own UperNet ConvNeXt-T config) train with their decode and
        auxiliary losses and infer image in, logits at the input size out (the ONNX export's function), in the
        inference forms of :mod:`mmext.apis.precision`, or in ONNX Runtime (``backend='onnxruntime'``, fp32 or
        int8: :func:`mmext.apis.onnx.quantize_onnx`).

The ``cpu-seg`` preset adds the physical limit of each row: the model's MACs (mmengine's count) over the GEMM peak
of its arithmetic (fp32, bf16: a 2048^3 ``torch.matmul``; int8: onnxruntime's ``MatMulInteger``), measured in the
same run with the same threads.
"""
import argparse
import contextlib
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import DictAction

import mmext  # noqa: F401  (installs the mmcv-lite stand-in before mmseg is imported)
from mmext.apis.precision import PRECISIONS, add_precision_args, check_precision
from mmext.fileio import atomic_write
from mmext.quiet import quiet_upstream_warnings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _paper_variant_names() -> list[str]:
    from mmext.models.variants import PAPER_VARIANTS
    return list(PAPER_VARIANTS)


# mmseg's UperNet ConvNeXt-T recipe; its backbone type (mmpretrain.ConvNeXt) is built by mmseg's TIMMBackbone from
# timm's convnext_tiny, the same network, because mmpretrain is not installed
MMSEG_CONVNEXT_CONFIG = 'convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'
MMSEG_CONVNEXT_BACKBONE = dict(_delete_=True, type='TIMMBackbone', model_name='convnext_tiny', features_only=True,
                               out_indices=(0, 1, 2, 3), pretrained=False)
# name -> (source, timm name or arch or config); 'free' is mmext's InceptionNeXt-T with token_mixer = Identity, the
# ceiling a faster token mixer could reach (see docs/en/advanced_guides/benchmarks.md).
MODELS = {
    'resnet50': ('timm', 'resnet50'),
    'convnext_t': ('timm', 'convnext_tiny'),
    'convnext_s': ('timm', 'convnext_small'),
    'convnext_b': ('timm', 'convnext_base'),
    'timm_inception_next_t': ('timm', 'inception_next_tiny'),
    'timm_inception_next_s': ('timm', 'inception_next_small'),
    'timm_inception_next_b': ('timm', 'inception_next_base'),
    'inceptionnext_t': ('mmext', 'tiny'),
    'inceptionnext_s': ('mmext', 'small'),
    'inceptionnext_b': ('mmext', 'base'),
    'inceptionnext_t_free_mixer': ('mmext-free', 'tiny'),
    'upernet_t': ('segmentor', 'configs/upernet_inceptionnext_t_ade20k.py'),
    'mmseg_upernet_convnext_t': ('segmentor', f'mmseg::{MMSEG_CONVNEXT_CONFIG}'),
}
# the paper's variants (Tables 1, 5, 8; mmext.models.variants), under their variant names: compare their speed
# ordering with the paper's throughput columns
VARIANT_GROUP = [f'variant:{name}' for name in _paper_variant_names()]
MODELS.update({name: ('mmext-variant', name.removeprefix('variant:')) for name in VARIANT_GROUP})
BASELINE = 'convnext_t'
DTYPES = (*PRECISIONS, 'int8')
BACKENDS = ('torch', 'onnxruntime')


@dataclasses.dataclass(frozen=True)
class Case:
    """One measurement: a model under one protocol and one set of switches."""

    model: str
    protocol: str = 'paper'  # 'paper' or 'dense'
    mode: str = 'train'  # 'train' or 'infer'
    batch_size: int = 128
    img_size: int = 224
    dtype: str = 'fp32'  # 'fp32', 'bf16' or 'fp16' (autocast), 'int8' (onnxruntime)
    channels_last: bool = False
    compile: bool = False
    deploy: bool = False  # fold BNs (mmext models, inference only)
    backend: str = 'torch'  # 'torch' or 'onnxruntime' (segmentor inference)

    def settings(self) -> tuple:
        """Everything but the model: cases with equal settings are compared with each other."""
        return (self.protocol, self.mode, self.batch_size, self.img_size, self.dtype, self.channels_last,
                self.compile)

    def label(self) -> str:
        flags = [self.dtype] + [f for f, on in (('cl', self.channels_last), ('compile', self.compile),
                                                ('deploy', self.deploy), ('ort', self.backend == 'onnxruntime'))
                                if on]
        return f'{self.model}[{"+".join(flags)}]'


def _validate(case: Case, device: torch.device | None = None) -> None:
    if case.model not in MODELS:
        raise ValueError(f'unknown model {case.model!r}; choose from {sorted(MODELS)}')
    if case.protocol not in ('paper', 'dense'):
        raise ValueError(f"protocol must be 'paper' or 'dense', got {case.protocol!r}")
    if case.mode not in ('train', 'infer'):
        raise ValueError(f"mode must be 'train' or 'infer', got {case.mode!r}")
    if case.dtype not in DTYPES:
        raise ValueError(f'{case.label()}: dtype must be one of {DTYPES}, got {case.dtype!r}')
    if case.backend not in BACKENDS:
        raise ValueError(f'{case.label()}: backend must be one of {BACKENDS}, got {case.backend!r}')
    segmentor = MODELS[case.model][0] == 'segmentor'
    if segmentor and case.protocol != 'dense':
        raise ValueError(f'{case.model} runs in the dense protocol only')
    if case.deploy and case.mode == 'train':
        raise ValueError(f'{case.label()}: deploy mode folds BatchNorms and is for inference only')
    if case.backend == 'onnxruntime':
        if not (segmentor and case.mode == 'infer' and case.batch_size == 1):
            raise ValueError(f'{case.label()}: the onnxruntime backend runs segmentor inference at batch 1 only')
        if case.dtype not in ('fp32', 'int8') or case.channels_last or case.compile:
            raise ValueError(f'{case.label()}: onnxruntime runs fp32 or int8 graphs, without channels_last/compile')
    elif case.dtype == 'int8':
        raise ValueError(f'{case.label()}: dtype int8 runs in the onnxruntime backend only')
    if device is not None and case.dtype in ('bf16', 'fp16') and case.backend == 'torch':
        try:
            check_precision(case.dtype, device)
        except ValueError as e:
            raise ValueError(f'{case.label()}: dtype {case.dtype}: {e}') from None


# ---------------------------------------------------------------------------------------------------------------
# Building the models
# ---------------------------------------------------------------------------------------------------------------

class _Classifier(nn.Module):
    """mmext's backbone (last stage) with timm's InceptionNeXt head: the network timm calls inception_next_*."""

    def __init__(self, backbone: nn.Module, num_features: int) -> None:
        super().__init__()
        from timm.models.inception_next import MlpClassifierHead

        self.backbone = backbone
        self.head = MlpClassifierHead(num_features, 1000, mlp_ratio=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])


def segmentor_config(name: str, repo_root: str | Path = REPO_ROOT, cfg_options: dict | None = None):
    """The :class:`~mmengine.config.Config` of a segmentor model of :data:`MODELS`; ``cfg_options`` (dotted keys)
    apply to mmext's configs, not to mmseg's own."""
    from mmengine.config import Config

    source = MODELS[name][1]
    if source.startswith('mmseg::'):
        import mmseg
        path = Path(mmseg.__file__).parent / '.mim' / 'configs' / source.removeprefix('mmseg::')
        cfg = Config.fromfile(str(path), import_custom_modules=False)  # its custom_imports: mmpretrain
        cfg.pop('custom_imports', None)
        cfg.merge_from_dict({'model.backbone': MMSEG_CONVNEXT_BACKBONE})
        return cfg
    config = Path(repo_root) / source
    if not config.is_file():
        raise FileNotFoundError(f'{name} config {config} not found (run from the repository root or pass '
                                '--repo-root)')
    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(case: Case, repo_root: str | Path = REPO_ROOT, cfg_options: dict | None = None) -> nn.Module:
    """The network of ``case`` in train mode on CPU, with deploy folding applied if asked (segmentors: in eval
    mode, folded by the runner that applies their inference options)."""
    import timm

    from mmext.models.backbones.inceptionnext import InceptionNeXt
    from mmext.registry import MODELS as MMEXT_MODELS

    source, name = MODELS[case.model]
    dense = case.protocol == 'dense'
    if source == 'timm':
        if case.deploy:
            raise ValueError(f'{case.label()}: deploy mode applies to mmext models only')
        kw = dict(features_only=True, out_indices=(0, 1, 2, 3)) if dense else {}
        return timm.create_model(name, pretrained=False, **kw)
    if source == 'segmentor':
        from mmext.apis.builder import build_segmentor

        # random weights: speed does not depend on them
        return build_segmentor(segmentor_config(case.model, repo_root, cfg_options), log_dropped=False)
    if source == 'mmext-variant':
        from importlib.util import module_from_spec, spec_from_file_location

        from mmext.models.variants import PAPER_VARIANTS, variant_backbone
        cfg = variant_backbone(name)
        if dense:
            return MMEXT_MODELS.build(dict(cfg, init_cfg=None))
        spec = spec_from_file_location('mmext_tools_paper_variants', REPO_ROOT / 'tools/analysis/paper_variants.py')
        paper_variants = module_from_spec(spec)  # the classification forms, a sibling tool
        spec.loader.exec_module(paper_variants)
        return paper_variants.MetaNeXtClassifier(cfg, PAPER_VARIANTS[name]['head'])
    # PyTorch's default init: speed does not depend on the weights, and init_weights() logs every tensor
    arch = InceptionNeXt._parse_arch(name)
    if source == 'mmext-free':  # the free-mixer bound: the same network with the 'Identity' token mixer
        arch['token_mixer'] = dict(type='Identity')
    backbone = InceptionNeXt(arch, out_indices=(0, 1, 2, 3) if dense else (3,))
    if case.deploy:
        backbone.eval().switch_to_deploy()
    return backbone if dense else _Classifier(backbone, backbone.feature_info[-1]['num_chs'])


def _segmentor_batch(batch_size: int, img_size: int, device: torch.device) -> list:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    gen = torch.Generator().manual_seed(0)
    for _ in range(batch_size):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, img_size, img_size), generator=gen).to(device))
        shape = (img_size, img_size)
        sample.set_metainfo(dict(img_shape=shape, pad_shape=shape, ori_shape=shape))
        samples.append(sample)
    return samples


def calibration_images(calib_dir: str | Path | None, num: int, size: int) -> list[np.ndarray]:
    """``size`` x ``size`` BGR images to calibrate int8 on: the first ``num`` of ``calib_dir`` resized, or ``num``
    random ones without a folder (enough for timing; agreement: tools/analysis/precision_agreement.py)."""
    if calib_dir is None:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(num)]
    import cv2

    from mmext.apis import load_image
    from mmext.datasets.decoding import find_images
    return [cv2.resize(load_image(p), (size, size), interpolation=cv2.INTER_AREA) for p in find_images(calib_dir)[:num]]


def _onnx_session(case: Case, model: nn.Module, calib: Sequence):
    """An onnxruntime session of the segmentor's export (int8: quantized on ``calib``) with torch's threads."""
    import onnxruntime as ort

    from mmext.apis.onnx import export_onnx, quantize_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / 'model.onnx', shape=(case.img_size, case.img_size), deploy=case.deploy)
        if case.dtype == 'int8':
            path = quantize_onnx(path, Path(tmp) / 'model_int8.onnx', calib)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


# ---------------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------------

def _memory_reset(device: torch.device) -> float:
    """Reset the peak-memory counter; returns the memory in use now (bytes)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return float(torch.cuda.memory_allocated(device))
    with contextlib.suppress(OSError):
        Path('/proc/self/clear_refs').write_text('5')  # resets VmHWM (peak RSS) on Linux
    return _rss('VmRSS')


def _memory_peak(device: torch.device, before: float) -> float | None:
    """Peak memory above ``before`` since the last reset, in MiB (CUDA: allocated; CPU: resident set)."""
    if device.type == 'cuda':
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    peak = _rss('VmHWM')
    return None if peak != peak or before != before else max(peak - before, 0.) / 2**20


def _rss(field: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(field + ':'):
                return float(line.split()[1]) * 1024
    return float('nan')


class _Runner:
    """A built case: its model, inputs and one step, plus the timings collected so far."""

    def __init__(self, case: Case, device: torch.device, repo_root: str | Path, calib: Sequence = (),
                 cfg_options: dict | None = None) -> None:
        _validate(case, device)
        self.case, self.device = case, device
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.mem_before = _memory_reset(device)
        model = build_model(case, repo_root, cfg_options)
        segmentor = MODELS[case.model][0] == 'segmentor'
        if segmentor and case.mode == 'infer':
            self.step = self._segmentor_inference(case, model, device, calib)
            return
        model = model.to(device)
        x = torch.randn(case.batch_size, 3, case.img_size, case.img_size, device=device)
        if case.channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        samples = _segmentor_batch(case.batch_size, case.img_size, device) if segmentor else None
        forward = model.loss if segmentor else model
        if case.compile:
            # inference: let inductor freeze the weights (constant-fold the folded BNs, prepack conv weights)
            forward = torch.compile(forward, options=dict(freezing=case.mode == 'infer'))
        amp = dict(device_type=device.type, dtype=torch.bfloat16 if case.dtype == 'bf16' else torch.float16,
                   enabled=case.dtype != 'fp32')
        if case.mode == 'train':
            model.train()
            opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

            def step() -> None:
                with torch.autocast(**amp):
                    out = forward(x, samples) if segmentor else forward(x)
                    if segmentor:
                        loss = sum(v for k, v in out.items() if 'loss' in k)
                    else:
                        loss = sum(o.float().mean() for o in (out if isinstance(out, (list, tuple)) else [out]))
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        else:
            model.eval()

            def step() -> None:
                with torch.inference_mode(), torch.autocast(**amp):
                    forward(x)
        self.step = step

    @staticmethod
    def _segmentor_inference(case: Case, model: nn.Module, device: torch.device,
                             calib: Sequence) -> Callable[[], None]:
        """Image in, logits at the input size out: in PyTorch with the case's inference options applied through
        :func:`mmext.apis.precision.apply_inference_options`, or in onnxruntime."""
        from mmext.apis.onnx import SegmentorForExport
        from mmext.apis.precision import InferenceOptions, apply_inference_options

        image = torch.rand(case.batch_size, 3, case.img_size, case.img_size, generator=torch.Generator()
                           .manual_seed(0)) * 255
        if case.backend == 'onnxruntime':
            session = _onnx_session(case, model, calib or calibration_images(None, 2, case.img_size))
            feed = {'image': image.numpy()}
            return lambda: session.run(['logits'], feed)
        options = InferenceOptions(case.dtype, case.deploy, case.channels_last, case.compile)
        network = SegmentorForExport(apply_inference_options(model.to(device), options)).eval()
        image = image.to(device)

        def step() -> None:
            with torch.inference_mode():
                network(image)
        return step

    def warmup(self, steps: int) -> None:
        for _ in range(steps):
            self.step()
        self._sync()
        self.peak_mib = _memory_peak(self.device, self.mem_before)

    def time(self, steps: int) -> None:
        self._sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.step()
        self._sync()
        self.times.append((time.perf_counter() - start) / steps)
        self.cpu_times.append((time.process_time() - cpu_start) / steps)

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    def result(self) -> dict:
        per_s = sorted(self.case.batch_size / t for t in self.times)
        q1, _, q3 = statistics.quantiles(per_s, n=4) if len(per_s) > 1 else (per_s[0],) * 3
        return dict(dataclasses.asdict(self.case), label=self.case.label(),
                    img_per_s=statistics.median(per_s), img_per_s_min=per_s[0], img_per_s_max=per_s[-1],
                    img_per_s_iqr=(q1, q3), ms_per_step=1e3 * statistics.median(self.times), repeats=len(per_s),
                    cpu_ms_per_step=1e3 * statistics.median(self.cpu_times),
                    img_per_s_each=[self.case.batch_size / t for t in self.times],  # in repeat order
                    peak_mem_mib=self.peak_mib)


def run_cases(cases: Sequence[Case], device: str = 'cpu', warmup: int = 3, repeats: int = 5, steps: int = 5,
              interleave: bool | None = None, budget_s: float | None = None, repo_root: str | Path = REPO_ROOT,
              log: Callable[[str], None] | None = None, calib: Sequence = (),
              cfg_options: dict | None = None) -> list[dict]:
    """Time ``cases`` on ``device`` in this process and return one result dict per case (input order).

    Args:
        warmup: Untimed steps per case (also where peak memory is measured).
        repeats: Timed repeats per case; the result is their median with min/max and interquartile range.
        steps: Steps per repeat.
        interleave: Keep every case built and time them round robin (repeat 1 of every case, then repeat 2, ...),
            which spreads a shared machine's load changes over all cases; default True on CPU. Otherwise each
            case is built, timed and freed in turn (needed for large GPU matrices).
        budget_s: Skip cases not started within this many seconds (they are reported with ``skipped``).
        calib: Calibration images of the int8 cases (default: random images).
        cfg_options: Overrides of mmext's segmentor configs (e.g. a smaller ``model.backbone.arch``).
    """
    dev = torch.device(device)
    for case in cases:
        _validate(case, dev)
    if dev.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    interleave = dev.type == 'cpu' if interleave is None else interleave
    log = log or (lambda msg: None)
    start = time.perf_counter()
    results: dict[int, dict] = {}

    def over_budget() -> bool:
        return budget_s is not None and time.perf_counter() - start > budget_s

    if interleave:
        runners = {}
        for i, case in enumerate(cases):
            if over_budget():
                results[i] = dict(dataclasses.asdict(case), label=case.label(), skipped='time budget')
                continue
            runners[i] = _Runner(case, dev, repo_root, calib, cfg_options)
            runners[i].warmup(warmup)
            log(f'built and warmed {case.label()}')
        for r in range(repeats):
            for runner in runners.values():
                runner.time(steps)
            log(f'repeat {r + 1}/{repeats} done')
        results.update({i: runner.result() for i, runner in runners.items()})
    else:
        for i, case in enumerate(cases):
            if over_budget():
                results[i] = dict(dataclasses.asdict(case), label=case.label(), skipped='time budget')
                continue
            runner = _Runner(case, dev, repo_root, calib, cfg_options)
            runner.warmup(warmup)
            for _ in range(repeats):
                runner.time(steps)
            results[i] = runner.result()
            log(f'{case.label()}: {results[i]["img_per_s"]:.1f} img/s')
            del runner
            if dev.type == 'cuda':
                torch.cuda.empty_cache()
    ordered = [results[i] for i in range(len(cases))]
    add_ratios(ordered)
    return ordered


def add_ratios(results: list[dict], baseline: str = BASELINE) -> None:
    """Add ``ratio_to_<baseline>`` (same settings) to every result, and to mmext's InceptionNeXt rows
    ``ratio_to_timm_eager``: the speed-up over timm's model of the same size run eagerly in NCHW (same protocol,
    mode, batch, resolution and dtype), which is what switches like deploy / channels_last / compile buy."""
    base, timm_eager = {}, {}
    for r in results:
        if 'img_per_s' not in r:
            continue
        if r['model'] == baseline and not r.get('deploy'):
            base[_settings(r)] = r['img_per_s']
        if r['model'].startswith('timm_inception_next_') and not (r['channels_last'] or r['compile']):
            timm_eager[(r['model'].removeprefix('timm_'), *_settings(r)[:5])] = r['img_per_s']
    for r in results:
        ref = base.get(_settings(r))
        r[f'ratio_to_{baseline}'] = r['img_per_s'] / ref if ref and 'img_per_s' in r else None
        ref = timm_eager.get((r['model'].replace('inceptionnext_', 'inception_next_'), *_settings(r)[:5]))
        r['ratio_to_timm_eager'] = r['img_per_s'] / ref if ref and 'img_per_s' in r else None


def _settings(r: dict) -> tuple:
    return tuple(r[k] for k in ('protocol', 'mode', 'batch_size', 'img_size', 'dtype', 'channels_last', 'compile'))


def time_fn(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 3) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` calls (CUDA synchronised around each)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def copy_bandwidth(device: torch.device) -> float:
    """Bytes per second of a 256 MiB device-to-device copy (read + write counted)."""
    src = torch.empty(2**26, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    return 2 * src.numel() * src.element_size() / statistics.median(time_fn(lambda: dst.copy_(src), device, 10))


def gemm_peak(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """Multiply-add throughput (FLOP/s, 2 per MAC) of a ``size``^3 matrix product on the CPU with torch's threads:
    ``torch.matmul`` in fp32 or bf16, onnxruntime's ``MatMulInteger`` (uint8 x int8) for int8. Best of repeats."""
    flop = 2 * size ** 3
    if dtype == 'int8':
        return flop / min(_int8_matmul_times(size, repeats))
    a = torch.randn(size, size, dtype=torch.bfloat16 if dtype == 'bf16' else torch.float32)
    b = torch.randn_like(a)
    return flop / min(time_fn(lambda: torch.matmul(a, b), torch.device('cpu'), repeats, warmup=2))


def _int8_matmul_times(size: int, repeats: int) -> list[float]:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-128, 128, (size, size), dtype=np.int8), 'b')
    graph = helper.make_graph(
        [helper.make_node('MatMulInteger', ['a', 'b'], ['y'])], 'int8_gemm',
        [helper.make_tensor_value_info('a', TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info('y', TensorProto.INT32, [size, size])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), options, providers=['CPUExecutionProvider'])
    feed = {'a': rng.integers(0, 256, (size, size), dtype=np.uint8)}
    onnx.checker.check_model(model)
    return time_fn(lambda: session.run(None, feed), torch.device('cpu'), repeats, warmup=2)


def add_limits(results: list[dict], peaks: dict[str, float], macs: dict[str, int]) -> None:
    """Add to each segmentor inference row its ``ratio_to_fp32_eager`` (the ``upernet_t`` fp32 row without any
    inference form), ``limit_img_per_s`` (``peaks[dtype] / (2 * macs[model])``, the images per second the GEMM
    peak of its arithmetic allows) and ``fraction_of_limit``."""
    eager = next((r['img_per_s'] for r in results if 'img_per_s' in r and r['model'] == 'upernet_t'
                  and r['backend'] == 'torch' and r['dtype'] == 'fp32'
                  and not (r['deploy'] or r['channels_last'] or r['compile'])), None)
    for r in results:
        ok = 'img_per_s' in r
        r['ratio_to_fp32_eager'] = r['img_per_s'] / eager if ok and eager else None
        peak, count = peaks.get(r['dtype']), macs.get(r['model'])
        r['macs'] = count
        r['limit_img_per_s'] = peak / (2 * count) if peak and count else None
        r['fraction_of_limit'] = r['img_per_s'] / r['limit_img_per_s'] if ok and r['limit_img_per_s'] else None


# ---------------------------------------------------------------------------------------------------------------
# Token mixer micro-benchmark (also the per-stage rows of tools/gpu_check.py)
# ---------------------------------------------------------------------------------------------------------------

def mixer_rows(shape: Sequence[int], dtype: torch.dtype, channels_last: bool, device: torch.device,
               bandwidth: float, repeats: int = 20) -> list[dict]:
    """The token mixer op alone, forward + backward: the reference path and (where it runs) the fused one,
    against the memory floor: the bytes the fused kernels must move (forward: read x, write y; backward: read dy
    and x, write dx: five tensors of ``shape``) over ``bandwidth`` (:func:`copy_bandwidth`)."""
    from mmext.ops import HAS_TRITON, inception_dwconv, inception_dwconv_reference

    n, c, h, w = shape
    gc = max(1, c // 8)
    x = torch.randn(tuple(shape), device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    params = [(torch.randn(s, device=device) * 0.1).requires_grad_() for s in
              [(gc, 1, 3, 3), (gc,), (gc, 1, 1, 11), (gc,), (gc, 1, 11, 1), (gc,)]]
    grad = torch.randn_like(x)
    floor_ms = 5 * x.numel() * x.element_size() / bandwidth * 1e3
    paths = {'reference': inception_dwconv_reference}
    if device.type == 'cuda' and HAS_TRITON:
        paths['fused'] = inception_dwconv
    rows = []
    for path, fn in paths.items():
        def step(fn=fn):
            y = fn(x, *[p.to(dtype) if fn is inception_dwconv_reference else p for p in params])
            torch.autograd.grad(y, [x, *params], grad)

        times = time_fn(step, device, repeats)  # the fused op's first call autotunes (in the warmup)
        ms = statistics.median(times) * 1e3
        rows.append(dict(shape=list(shape), dtype=str(dtype).removeprefix('torch.'), channels_last=channels_last,
                         path=path, ms=ms, ms_min=min(times) * 1e3, floor_ms=floor_ms,
                         bandwidth_gb_s=bandwidth / 1e9, x_floor=ms / floor_ms))
    return rows


def mixer_benchmark(device: str = 'cuda', shape: tuple[int, int, int, int] = (128, 96, 56, 56),
                    repeats: int = 20) -> list[dict]:
    """:func:`mixer_rows` for fp32 NCHW and bf16 channels_last at one shape."""
    dev = torch.device(device)
    bandwidth = copy_bandwidth(dev)
    return [row for dtype, channels_last in ((torch.float32, False), (torch.bfloat16, True))
            for row in mixer_rows(shape, dtype, channels_last, dev, bandwidth, repeats)]


# ---------------------------------------------------------------------------------------------------------------
# Presets and reporting
# ---------------------------------------------------------------------------------------------------------------

T_GROUP = ['resnet50', 'convnext_t', 'timm_inception_next_t', 'inceptionnext_t', 'inceptionnext_t_free_mixer']
SB_GROUP = ['convnext_s', 'timm_inception_next_s', 'inceptionnext_s', 'convnext_b', 'timm_inception_next_b',
            'inceptionnext_b']
PRESETS = ('gpu', 'gpu-variants', 'cpu-deploy', 'cpu-seg')


def preset_cases(name: str) -> tuple[list[Case], dict]:
    """``(cases, run_cases kwargs)`` of a named preset: ``gpu`` (the full GPU matrix, about 8 minutes on an
    H100/H200), ``gpu-variants`` (the paper's variants), ``cpu-deploy`` (InceptionNeXt-T backbone inference at
    512x512, batch 1, on CPU) or ``cpu-seg`` (the full UperNet-T segmentor at 512x512, batch 1, on CPU, in each
    precision and form, beside mmseg's UperNet ConvNeXt-T in fp32)."""
    if name == 'gpu':
        cases = []
        fp32, bf16 = dict(dtype='fp32'), dict(dtype='bf16', channels_last=True)
        for prec in (fp32, bf16):  # paper protocol, eager, T group first (it matters most)
            cases += [Case(m, 'paper', mode, 128, 224, **prec) for m in T_GROUP for mode in ('train', 'infer')]
        for prec in (fp32, bf16):  # dense protocol incl. the full segmentor step
            cases += [Case(m, 'dense', 'train', 16, 512, **prec) for m in T_GROUP + ['upernet_t']]
        cases += [Case(m, 'paper', mode, 128, 224, compile=True, **bf16)
                  for m in ('convnext_t', 'timm_inception_next_t', 'inceptionnext_t', 'inceptionnext_t_free_mixer')
                  for mode in ('train', 'infer')]
        for prec in (fp32, bf16):
            cases += [Case(m, 'paper', mode, 128, 224, **prec) for m in SB_GROUP for mode in ('train', 'infer')]
        return cases, dict(device='cuda', warmup=5, repeats=3, steps=10, interleave=False, budget_s=420)
    if name == 'cpu-deploy':
        base = dict(protocol='dense', mode='infer', batch_size=1, img_size=512)
        cases = [Case('timm_inception_next_t', **base), Case('convnext_t', **base),
                 Case('inceptionnext_t', **base), Case('inceptionnext_t', deploy=True, **base),
                 Case('inceptionnext_t', channels_last=True, **base),
                 Case('inceptionnext_t', deploy=True, channels_last=True, **base),
                 Case('inceptionnext_t', deploy=True, channels_last=True, compile=True, **base)]
        return cases, dict(device='cpu', warmup=2, repeats=5, steps=1, interleave=True)
    if name == 'cpu-seg':
        base = dict(protocol='dense', mode='infer', batch_size=1, img_size=512)
        fast = dict(deploy=True, channels_last=True)
        cases = [Case('upernet_t', **base),  # the ratios' reference: fp32, eager, training form
                 Case('upernet_t', **fast, **base),
                 Case('upernet_t', dtype='bf16', **fast, **base),
                 Case('upernet_t', dtype='bf16', compile=True, **fast, **base),
                 Case('upernet_t', backend='onnxruntime', deploy=True, **base),
                 Case('upernet_t', dtype='int8', backend='onnxruntime', deploy=True, **base),
                 Case('mmseg_upernet_convnext_t', **base)]
        return cases, dict(device='cpu', warmup=2, repeats=5, steps=1, interleave=True)
    if name == 'gpu-variants':  # the paper's variants, its protocol (Table 8's throughput columns), eager fp32
        cases = [Case(m, 'paper', mode, 128, 224) for m in VARIANT_GROUP for mode in ('train', 'infer')]
        return cases, dict(device='cuda', warmup=3, repeats=3, steps=5, interleave=False, budget_s=420)
    raise ValueError(f'unknown preset {name!r}; choose from {", ".join(PRESETS)}')


def environment() -> dict:
    """Where the numbers come from: torch/timm versions, CPU or GPU name."""
    import timm

    info = dict(torch=torch.__version__, timm=timm.__version__, python=platform.python_version(),
                cpu=_cpu_name(), threads=torch.get_num_threads(),
                date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda)
    return info


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return platform.processor() or 'unknown'


def _flags(r: dict) -> str:
    return '+'.join([r['dtype']] + [f for f in ('channels_last', 'compile', 'deploy') if r.get(f)]
                    + (['onnxruntime'] if r.get('backend') == 'onnxruntime' else []))


def format_table(results: Sequence[dict], baseline: str = BASELINE) -> str:
    """A markdown table of ``run_cases`` results, one row per case."""
    lines = ['| model | protocol | mode | bs@res | settings | img/s (median) | min-max | ms/step | CPU ms/step | '
             f'x {baseline} | x timm eager | peak mem MiB |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        head = f"| {r['model']} | {r['protocol']} | {r['mode']} | {r['batch_size']}@{r['img_size']} | {_flags(r)} |"
        if 'skipped' in r:
            lines.append(f"{head} skipped ({r['skipped']}) | | | | | | |")
            continue
        ratios = [r.get(f'ratio_to_{baseline}'), r.get('ratio_to_timm_eager')]
        ratios = ' | '.join(f'{x:.2f}x' if x else '' for x in ratios)
        mem = r.get('peak_mem_mib')
        lines.append(f"{head} {r['img_per_s']:.2f} | {r['img_per_s_min']:.2f}-{r['img_per_s_max']:.2f} | "
                     f"{r['ms_per_step']:.1f} | {r['cpu_ms_per_step']:.1f} | {ratios} | "
                     f"{f'{mem:.0f}' if mem is not None else 'n/a'} |")
    return '\n'.join(lines)


def format_seg_table(results: Sequence[dict], peaks: dict[str, float]) -> str:
    """The ``cpu-seg`` table: per row images/s, its ratio to fp32 eager and its fraction of the GEMM limit."""
    lines = ['| model | settings | GMACs | img/s (median) | min-max | x fp32 eager | limit img/s | of limit |',
             '|---|---|---|---|---|---|---|---|']
    for r in results:
        head = f"| {r['model']} | {_flags(r)} | {r['macs'] / 1e9:.1f} |" if r.get('macs') else \
            f"| {r['model']} | {_flags(r)} | |"
        if 'skipped' in r:
            lines.append(f"{head} skipped ({r['skipped']}) | | | | |")
            continue
        ratio, limit, frac = r.get('ratio_to_fp32_eager'), r.get('limit_img_per_s'), r.get('fraction_of_limit')
        lines.append(f"{head} {r['img_per_s']:.3f} | {r['img_per_s_min']:.3f}-{r['img_per_s_max']:.3f} | "
                     f"{f'{ratio:.2f}x' if ratio else ''} | {f'{limit:.3f}' if limit else ''} | "
                     f"{f'{100 * frac:.0f}%' if frac else ''} |")
    peak_text = ', '.join(f'{k} {v / 1e9:.0f} GFLOP/s' for k, v in peaks.items())
    return '\n'.join(lines) + f'\n\nGEMM peak (2048^3, {torch.get_num_threads()} threads): {peak_text}'


def save_json(path: str | Path, results: Sequence[dict], mixer: Sequence[dict] = (), **extra) -> None:
    with atomic_write(path, 'w') as f:
        f.write(json.dumps(dict(environment=environment(), results=list(results), mixer=list(mixer), **extra),
                           indent=1, default=str))


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--preset', choices=PRESETS,
                        help='a ready matrix (gpu-variants: the paper variants of Tables 1/5/8; cpu-seg: the full '
                        'segmentor in every precision); of the other switches only --json, --budget-s, --threads, '
                        '--warmup, --repeats, --img-size and the --calib-* ones apply')
    parser.add_argument('--models', nargs='+', default=['convnext_t', 'timm_inception_next_t', 'inceptionnext_t'],
                        choices=sorted(MODELS), metavar='MODEL', help=f'any of {", ".join(sorted(MODELS))}')
    parser.add_argument('--protocol', choices=['paper', 'dense'], default='paper',
                        help='paper: classifier at --img-size; dense: 4-stage features (and the segmentors)')
    parser.add_argument('--mode', nargs='+', choices=['train', 'infer'], default=['train', 'infer'])
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available, else cpu)')
    parser.add_argument('--batch-size', type=int, default=None, help='default 128 (paper) / 16 (dense)')
    parser.add_argument('--img-size', type=int, default=None, help='default 224 (paper) / 512 (dense)')
    add_precision_args(parser)
    parser.add_argument('--backend', choices=BACKENDS, default='torch',
                        help='onnxruntime: segmentor inference through the ONNX export (fp32; int8 with --int8)')
    parser.add_argument('--int8', action='store_true', help='onnxruntime backend: the statically quantized graph')
    parser.add_argument('--calib-dir', help='images to calibrate int8 on (default: random images, timing only)')
    parser.add_argument('--calib-num', type=int, default=None,
                        help='calibration images used (default 16 of --calib-dir, else 2 random ones)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps per case (default 3)')
    parser.add_argument('--repeats', type=int, default=None, help='timed repeats per case (default 5)')
    parser.add_argument('--steps', type=int, default=5, help='steps per timed repeat')
    parser.add_argument('--interleave', action=argparse.BooleanOptionalAction, default=None,
                        help='time the cases round robin (default: on for CPU, off for CUDA)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (CPU); default: torch\'s')
    parser.add_argument('--budget-s', type=float, default=None, help='skip cases not started within this time')
    parser.add_argument('--mixer', action='store_true', help='also run the token-mixer micro-benchmark '
                        '(always on in the gpu preset)')
    parser.add_argument('--mixer-shape', type=int, nargs=4, default=[128, 96, 56, 56], metavar=('N', 'C', 'H', 'W'),
                        help='token-mixer input shape (default: InceptionNeXt-T stage 1 at batch 128, 224)')
    parser.add_argument('--json', help='write all results and the environment here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help="override mmext's segmentor configs (upernet_t), e.g. model.backbone.arch=atto")
    return parser.parse_args(argv)


def cases_from_args(args: argparse.Namespace) -> tuple[list[Case], dict]:
    if args.preset:
        cases, kwargs = preset_cases(args.preset)
        if args.img_size:
            cases = [dataclasses.replace(c, img_size=args.img_size) for c in cases]
        for key in ('budget_s', 'warmup', 'repeats'):
            if getattr(args, key) is not None:
                kwargs[key] = getattr(args, key)
        if args.device is not None:
            kwargs['device'] = args.device
        return cases, kwargs
    dense = args.protocol == 'dense'
    batch = args.batch_size or (16 if dense else 128)
    size = args.img_size or (512 if dense else 224)
    dtype = 'int8' if args.int8 else (args.precision or 'fp32')
    cases = [Case(m, args.protocol, mode, batch, size, dtype, args.channels_last, args.compile,
                  args.deploy and mode == 'infer' and MODELS[m][0] != 'timm', args.backend)
             for mode in args.mode for m in args.models]
    return cases, dict(device=args.device or ('cuda' if torch.cuda.is_available() else 'cpu'),
                       warmup=3 if args.warmup is None else args.warmup,
                       repeats=5 if args.repeats is None else args.repeats, steps=args.steps,
                       interleave=args.interleave, budget_s=args.budget_s)


def main(argv: list[str] | None = None) -> int:
    quiet_upstream_warnings()
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    try:
        cases, kwargs = cases_from_args(args)
        if kwargs['device'].startswith('cuda') and not torch.cuda.is_available():
            raise ValueError(f'device {kwargs["device"]} asked for (--device or the preset) but CUDA is not '
                             'available; use --device cpu or a cpu-* preset')
        env = environment()
        print(' '.join(f'{k}={v}' for k, v in env.items()), flush=True)
        calib = []
        if any(c.dtype == 'int8' for c in cases):
            num = args.calib_num or (16 if args.calib_dir else 2)
            calib = calibration_images(args.calib_dir, num, cases[0].img_size)
        peaks, macs = {}, {}
        if args.preset == 'cpu-seg':
            peaks = {d: gemm_peak(d) for d in ('fp32', 'bf16', 'int8')}
            macs = _segmentor_macs({c.model for c in cases}, cases[0].img_size, args.cfg_options)
        results = run_cases(cases, repo_root=REPO_ROOT, log=log, calib=calib, cfg_options=args.cfg_options,
                            **kwargs)
        if peaks:  # measured before and after the cases: the better of the two, should load have changed
            peaks = {d: max(peak, gemm_peak(d)) for d, peak in peaks.items()}
            log('GEMM peaks: ' + ', '.join(f'{d} {v / 1e9:.0f} GFLOP/s' for d, v in peaks.items()))
        mixer = []
        if args.mixer or args.preset == 'gpu':
            mixer = mixer_benchmark(kwargs['device'], tuple(args.mixer_shape))
    except (ValueError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    if args.preset == 'cpu-seg':
        add_limits(results, peaks, macs)
        print(format_seg_table(results, peaks))
    else:
        print(format_table(results))
    for row in mixer:
        print(f"mixer {row['shape']} {row['dtype']} cl={row['channels_last']} {row['path']}: {row['ms']:.3f} ms "
              f"fwd+bwd, memory floor {row['floor_ms']:.3f} ms ({row['x_floor']:.1f}x floor)")
    if args.json:
        save_json(args.json, results, mixer, peaks=peaks, command=' '.join(['tools/benchmark.py',
                                                                            *(argv or sys.argv[1:])]))
        print(f'wrote {args.json}')
    return 0


def _segmentor_macs(models: set[str], img_size: int, cfg_options: dict | None = None) -> dict[str, int]:
    """MACs of one forward of each segmentor of ``models`` at ``img_size`` (mmengine's count, as get_flops.py)."""
    from mmext.analysis.complexity import segmentor_complexity

    return {m: segmentor_complexity(segmentor_config(m, cfg_options=cfg_options), shape=(img_size, img_size))['macs']
            for m in sorted(models) if MODELS[m][0] == 'segmentor'}


if __name__ == '__main__':
    sys.exit(main())
