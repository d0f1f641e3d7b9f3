"""Side-by-side throughput of mmext's InceptionNeXt against timm's ConvNeXt, ResNet-50 and InceptionNeXt.

All cases run in one process on one device, so their ratios are comparable; on a shared CPU the repeats are
interleaved across cases (round robin) so that load changes hit every case alike. Each case reports images/s as
the median over repeats with min and max, the process CPU time per step (all threads; on a loaded machine with one
thread it tracks the work done better than wall time), peak memory, and its ratio to ConvNeXt-T under the same
settings.

Protocols:
    ``paper``: classification models at ``img_size`` (paper: batch 128 at 224); mmext's backbone gets timm's
        InceptionNeXt head so the networks are the same. ``train`` = forward + backward + SGD step.
    ``dense``: the four stage outputs at ``img_size`` (512x512, batch 16 for dense prediction), loss = sum of
        their means; the ``upernet_t`` model is the full UperNet-T segmentor (``configs/upernet_inceptionnext_t_
        ade20k.py``, SyncBN reverted, no pretrained weights) with its decode and auxiliary losses.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn as nn


def _paper_variant_names() -> list[str]:
    from mmext.models.variants import PAPER_VARIANTS
    return list(PAPER_VARIANTS)


# name -> (source, timm name or arch); 'free' is mmext's InceptionNeXt-T with token_mixer = Identity, the ceiling
# a faster token mixer could reach (see docs/benchmarks.md).
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
}
# the paper's variants (Tables 1, 5, 8; mmext.models.variants), under their variant names: compare their speed
# ordering with the paper's throughput columns
VARIANT_GROUP = [f'variant:{name}' for name in _paper_variant_names()]
MODELS.update({name: ('mmext-variant', name.removeprefix('variant:')) for name in VARIANT_GROUP})
BASELINE = 'convnext_t'


@dataclasses.dataclass(frozen=True)
class Case:
    """One measurement: a model under one protocol and one set of switches."""

    model: str
    protocol: str = 'paper'  # 'paper' or 'dense'
    mode: str = 'train'  # 'train' or 'infer'
    batch_size: int = 128
    img_size: int = 224
    dtype: str = 'fp32'  # 'fp32' or 'bf16' (autocast)
    channels_last: bool = False
    compile: bool = False
    deploy: bool = False  # fold BNs (mmext models, inference only)

    def settings(self) -> tuple:
        """Everything but the model: cases with equal settings are compared with each other."""
        return (self.protocol, self.mode, self.batch_size, self.img_size, self.dtype, self.channels_last,
                self.compile)

    def label(self) -> str:
        flags = [self.dtype] + [f for f, on in (('cl', self.channels_last), ('compile', self.compile),
                                                ('deploy', self.deploy)) if on]
        return f'{self.model}[{"+".join(flags)}]'


def _validate(case: Case) -> None:
    if case.model not in MODELS:
        raise ValueError(f'unknown model {case.model!r}; choose from {sorted(MODELS)}')
    if case.protocol not in ('paper', 'dense'):
        raise ValueError(f"protocol must be 'paper' or 'dense', got {case.protocol!r}")
    if case.mode not in ('train', 'infer'):
        raise ValueError(f"mode must be 'train' or 'infer', got {case.mode!r}")
    if case.dtype not in ('fp32', 'bf16'):
        raise ValueError(f"dtype must be 'fp32' or 'bf16', got {case.dtype!r}")
    if case.model == 'upernet_t' and case.protocol != 'dense':
        raise ValueError('upernet_t runs in the dense protocol only')
    if case.deploy and case.mode == 'train':
        raise ValueError(f'{case.label()}: deploy mode folds BatchNorms and is for inference only')


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


def build_model(case: Case, repo_root: str | Path = '.') -> nn.Module:
    """The network of ``case`` in train mode on CPU, with deploy folding applied if asked."""
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
        return _build_segmentor(Path(repo_root) / name, case.deploy)
    if source == 'mmext-variant':
        from mmext.models.classifiers import MetaNeXtClassifier
        from mmext.models.variants import PAPER_VARIANTS, variant_backbone
        cfg = variant_backbone(name)
        if dense:
            return MMEXT_MODELS.build(dict(cfg, init_cfg=None))
        return MetaNeXtClassifier(cfg, PAPER_VARIANTS[name]['head'])
    # PyTorch's default init: speed does not depend on the weights, and init_weights() logs every tensor
    arch = InceptionNeXt._parse_arch(name)
    if source == 'mmext-free':  # the free-mixer bound: the same network with the 'Identity' token mixer
        arch['token_mixer'] = dict(type='Identity')
    backbone = InceptionNeXt(arch, out_indices=(0, 1, 2, 3) if dense else (3,))
    if case.deploy:
        backbone.eval().switch_to_deploy()
    return backbone if dense else _Classifier(backbone, backbone.feature_info[-1]['num_chs'])


def _build_segmentor(config: Path, deploy: bool) -> nn.Module:
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as SEG_MODELS

    if not config.is_file():
        raise FileNotFoundError(f'UperNet config {config} not found (run from the repository root or pass '
                                '--repo-root)')
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None  # no pretrained download: speed does not depend on the weights
    cfg.model.pretrained = None
    init_default_scope('mmseg')
    model = revert_sync_batchnorm(SEG_MODELS.build(cfg.model))
    if deploy:
        model.backbone.eval().switch_to_deploy()
    return model


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

    def __init__(self, case: Case, device: torch.device, repo_root: str | Path) -> None:
        _validate(case)
        self.case, self.device = case, device
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        mem_before = _memory_reset(device)
        model = build_model(case, repo_root).to(device)
        x = torch.randn(case.batch_size, 3, case.img_size, case.img_size, device=device)
        if case.channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        self.model, self.x = model, x
        segmentor = MODELS[case.model][0] == 'segmentor'
        samples = _segmentor_batch(case.batch_size, case.img_size, device) if segmentor else None
        if segmentor:
            forward = model.loss if case.mode == 'train' else functools.partial(model, mode='tensor')
        else:
            forward = model
        if case.compile:
            # inference: let inductor freeze the weights (constant-fold the folded BNs, prepack conv weights)
            forward = torch.compile(forward, options=dict(freezing=case.mode == 'infer'))
        amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=case.dtype == 'bf16')
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
        self.mem_before = mem_before

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
              interleave: bool | None = None, budget_s: float | None = None, repo_root: str | Path = '.',
              log: Callable[[str], None] | None = None) -> list[dict]:
    """Time ``cases`` on ``device`` in this process and return one result dict per case (input order).

    Args:
        warmup: Untimed steps per case (also where peak memory is measured).
        repeats: Timed repeats per case; the result is their median with min/max and interquartile range.
        steps: Steps per repeat.
        interleave: Keep every case built and time them round robin (repeat 1 of every case, then repeat 2, ...),
            which spreads a shared machine's load changes over all cases; default True on CPU. Otherwise each
            case is built, timed and freed in turn (needed for large GPU matrices).
        budget_s: Skip cases not started within this many seconds (they are reported with ``skipped``).
    """
    for case in cases:
        _validate(case)
    dev = torch.device(device)
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
            runners[i] = _Runner(case, dev, repo_root)
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
            runner = _Runner(case, dev, repo_root)
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


# ---------------------------------------------------------------------------------------------------------------
# Token mixer micro-benchmark
# ---------------------------------------------------------------------------------------------------------------

def mixer_benchmark(device: str = 'cuda', shape: tuple[int, int, int, int] = (128, 96, 56, 56),
                    repeats: int = 20) -> list[dict]:
    """Token mixer alone, forward + backward, reference vs fused path, against its memory floor.

    The floor is the bytes the fused kernels must move (forward: read x, write y; backward: read dy and x, write
    dx: five tensors of ``shape``) divided by the bandwidth of a large device copy measured now.
    """
    from mmext.models.backbones.inceptionnext import InceptionDWConv2d

    dev = torch.device(device)
    n, c, h, w = shape
    bandwidth = _copy_bandwidth(dev)
    rows = []
    for dtype, channels_last in ((torch.float32, False), (torch.bfloat16, True)):
        x = torch.randn(shape, device=dev, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        grad = torch.randn_like(x)
        floor_ms = 5 * x.numel() * x.element_size() / bandwidth * 1e3
        for fast in (False, True):
            mixer = InceptionDWConv2d(c).to(dev)
            mixer.fast_mixer = fast
            if fast and not (dev.type == 'cuda' and _has_triton()):
                continue
            autocast = dict(device_type=dev.type, dtype=dtype, enabled=dtype != torch.float32)

            def step(mixer=mixer, autocast=autocast, x=x, grad=grad):
                with torch.autocast(**autocast):
                    y = mixer(x)
                y.backward(grad.to(y.dtype))

            times = _time_fn(step, dev, repeats)
            rows.append(dict(shape=list(shape), dtype=str(dtype).removeprefix('torch.'), channels_last=channels_last,
                             path='fused' if fast else 'reference', ms=statistics.median(times) * 1e3,
                             ms_min=min(times) * 1e3, floor_ms=floor_ms, bandwidth_gb_s=bandwidth / 1e9,
                             x_floor=statistics.median(times) * 1e3 / floor_ms))
    return rows


def _has_triton() -> bool:
    from mmext.ops import HAS_TRITON
    return HAS_TRITON


def _copy_bandwidth(dev: torch.device) -> float:
    """Bytes per second of a 256 MiB device-to-device copy (read + write counted)."""
    src = torch.empty(2**26, device=dev, dtype=torch.float32)
    dst = torch.empty_like(src)
    times = _time_fn(lambda: dst.copy_(src), dev, 10)
    return 2 * src.numel() * src.element_size() / statistics.median(times)


def _time_fn(fn: Callable[[], object], dev: torch.device, repeats: int) -> list[float]:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if dev.type == 'cuda':
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        fn()
        if dev.type == 'cuda':
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - start)
    return times


# ---------------------------------------------------------------------------------------------------------------
# Presets and reporting
# ---------------------------------------------------------------------------------------------------------------

T_GROUP = ['resnet50', 'convnext_t', 'timm_inception_next_t', 'inceptionnext_t', 'inceptionnext_t_free_mixer']
SB_GROUP = ['convnext_s', 'timm_inception_next_s', 'inceptionnext_s', 'convnext_b', 'timm_inception_next_b',
            'inceptionnext_b']


def preset_cases(name: str) -> tuple[list[Case], dict]:
    """``(cases, run_cases kwargs)`` of a named preset: ``gpu`` (the full GPU matrix, about 8 minutes on an
    H100/H200) or ``cpu-deploy`` (InceptionNeXt-T backbone inference at 512x512, batch 1, on CPU)."""
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
    if name == 'gpu-variants':  # the paper's variants, its protocol (Table 8's throughput columns), eager fp32
        cases = [Case(m, 'paper', mode, 128, 224) for m in VARIANT_GROUP for mode in ('train', 'infer')]
        return cases, dict(device='cuda', warmup=3, repeats=3, steps=5, interleave=False, budget_s=420)
    raise ValueError(f"unknown preset {name!r}; choose 'gpu', 'gpu-variants' or 'cpu-deploy'")


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


def format_table(results: Sequence[dict], baseline: str = BASELINE) -> str:
    """A markdown table of ``run_cases`` results, one row per case."""
    lines = ['| model | protocol | mode | bs@res | settings | img/s (median) | min-max | ms/step | CPU ms/step | '
             f'x {baseline} | x timm eager | peak mem MiB |', '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        flags = '+'.join([r['dtype']] + [f for f in ('channels_last', 'compile', 'deploy') if r.get(f)])
        head = f"| {r['model']} | {r['protocol']} | {r['mode']} | {r['batch_size']}@{r['img_size']} | {flags} |"
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


def save_json(path: str | Path, results: Sequence[dict], mixer: Sequence[dict] = (), **extra) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(dict(environment=environment(), results=list(results), mixer=list(mixer),
                                          **extra), indent=1))
