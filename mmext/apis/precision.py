"""Inference precision and the inference forms of a segmentor, declared once for the API and every tool.

:class:`InferenceOptions` holds the choices: ``precision`` (``'fp32'``; ``'bf16'`` or ``'fp16'`` autocast),
``deploy`` (the backbone's BatchNorms folded into its convs), ``channels_last`` (NHWC memory format) and
``compile`` (``torch.compile`` with inductor's weight freezing). :func:`apply_inference_options` puts them on a
built segmentor; it is the one mechanism :func:`mmext.apis.init_segmentor`, ``tools/test.py``, the demos, the
agreement tool and the benchmark go through. It wraps the forward of the backbone, the neck and the decode head
(mmseg's decode heads call ``self.forward`` directly, so hooks would miss them): each runs under
``torch.autocast``, and the decode head's logits come back as float32, so resizing, arg-max, the bounded-memory
label map and the metrics run in float32 as before.

Safe defaults: fp32 unless asked. A precision the device does not run natively is refused with the reason
(:func:`precision_support`): fp16 on a CPU without AMX-FP16, bf16 on a CPU without AVX512-BF16 or AMX, bf16 on a
GPU without it. ``MMEXT_PRECISION`` sets the default of the API and the tools' ``--precision``; only a precision
whose measured label-map agreement with fp32 (:data:`MEASURED_AGREEMENT`) reaches :data:`MIN_DEFAULT_AGREEMENT`
may be made the default, and asking for one below it explicitly logs a warning.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmext.compat.upstream import cpu_has

PRECISIONS = ('fp32', 'bf16', 'fp16')
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
PRECISION_ENV = 'MMEXT_PRECISION'
# A precision may be a default (MMEXT_PRECISION) only when its label maps agree with fp32's on this share of pixels.
MIN_DEFAULT_AGREEMENT = 0.99
# Smallest per-image pixel agreement of the label map with fp32 (deploy form, channels_last), measured by
# tools/analysis/precision_agreement.py on the `make demo` model (its 20 validation scenes: bf16 99.74%, fp16
# 99.96%; the 3 ADE20K samples: bf16 99.60%, fp16 99.94%), rounded down; see
# docs/en/advanced_guides/benchmarks.md. A precision missing here has not been measured and cannot be a default.
MEASURED_AGREEMENT = {'fp32': 1.0, 'bf16': 0.996, 'fp16': 0.999}


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    """How a segmentor runs at inference; the defaults are the training form in fp32."""

    precision: str = 'fp32'
    deploy: bool = False
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {self.precision!r}')

    def as_kwargs(self) -> dict:
        """The options as keyword arguments of :func:`mmext.apis.init_segmentor`."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """``'bf16+deploy+channels_last'``: the precision and the forms switched on."""
        forms = [name for name in ('deploy', 'channels_last', 'compile') if getattr(self, name)]
        return '+'.join([self.precision, *forms])


def default_precision() -> str:
    """``MMEXT_PRECISION`` if set (checked against :data:`MIN_DEFAULT_AGREEMENT`), else ``'fp32'``."""
    name = os.environ.get(PRECISION_ENV, '').strip().lower() or 'fp32'
    if name not in PRECISIONS:
        raise ValueError(f'{PRECISION_ENV}={name!r} is not a precision; choose one of {PRECISIONS}')
    agreement = MEASURED_AGREEMENT.get(name)
    if agreement is None or agreement < MIN_DEFAULT_AGREEMENT:
        raise ValueError(f'{PRECISION_ENV}={name}: its measured label-map agreement with fp32 is '
                         f'{_percent(agreement)}, below the {_percent(MIN_DEFAULT_AGREEMENT)} a default needs; '
                         f'ask for it per call (precision={name!r}, --precision {name}) or unset {PRECISION_ENV}')
    return name


def _percent(value: float | None) -> str:
    return 'not measured' if value is None else f'{100 * value:.2f}%'


def precision_support(precision: str, device: str | torch.device) -> str | None:
    """``None`` when ``device`` runs ``precision`` natively, else the reason it does not."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    dev = torch.device(device)
    if precision == 'fp32':
        return None
    if dev.type == 'cuda':
        if precision == 'bf16' and not torch.cuda.is_bf16_supported(including_emulation=False):
            return f'{torch.cuda.get_device_name(dev)} has no native bf16; use fp16 or fp32'
        return None
    if dev.type == 'cpu':
        if precision == 'bf16' and not (cpu_has('avx512_bf16') or cpu_has('amx_tile')):
            return 'this CPU has neither AVX512-BF16 nor AMX: bf16 would be emulated, slower than fp32; use fp32'
        if precision == 'fp16' and not cpu_has('amx_fp16'):
            return ('this CPU has no AMX-FP16: fp16 would be emulated, slower than fp32; use bf16 where the CPU has '
                    'AVX512-BF16 or AMX, else fp32')
        return None
    return f'{precision} autocast is not supported on {dev.type} devices; use fp32'


def check_precision(precision: str, device: str | torch.device, allow_emulated: bool = False) -> None:
    """Raise ``ValueError`` if ``device`` lacks native ``precision`` (unless ``allow_emulated``)."""
    reason = precision_support(precision, device)
    if reason and not allow_emulated:
        raise ValueError(f'precision {precision!r} on {device}: {reason}')


def _warn_if_low_agreement(precision: str) -> None:
    agreement = MEASURED_AGREEMENT.get(precision)
    if agreement is None or agreement < MIN_DEFAULT_AGREEMENT:
        print_log(f'precision {precision}: label maps agree with fp32 on {_percent(agreement)} of pixels (measured '
                  f'worst case), below {_percent(MIN_DEFAULT_AGREEMENT)}', logger='current', level=logging.WARNING)


class _InferenceForward:
    """A module's ``forward`` under autocast, optionally compiled, with float32 outputs if asked.

    Holds the module and the class's forward function rather than a bound method, so a deep copy of the model
    wraps the copied module.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype | None, channels_last: bool, compile: bool,
                 float_outputs: bool) -> None:
        self.module, self.function = module, type(module).forward
        self.dtype, self.channels_last, self.float_outputs = dtype, channels_last, float_outputs
        self.compile = compile
        self._compiled: Callable | None = None

    def __deepcopy__(self, memo: dict) -> _InferenceForward:
        from copy import deepcopy
        return _InferenceForward(deepcopy(self.module, memo), self.dtype, self.channels_last, self.compile,
                                 self.float_outputs)

    def _run(self, x: Any, *args, **kwargs) -> Any:
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        device_type = _device_type(x)
        with torch.autocast(device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            out = self.function(self.module, x, *args, **kwargs)
        return _to_float32(out) if self.float_outputs else out

    def __call__(self, *args, **kwargs) -> Any:
        if not self.compile:
            return self._run(*args, **kwargs)
        if self._compiled is None:
            # freezing: inductor folds the (deploy-folded) weights into constants and prepacks them for its kernels
            self._compiled = torch.compile(self._run, options=dict(freezing=True))
        return self._compiled(*args, **kwargs)


def _device_type(x: Any) -> str:
    while isinstance(x, (list, tuple)) and x:
        x = x[0]
    return x.device.type if isinstance(x, torch.Tensor) else 'cpu'


def _to_float32(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (list, tuple)):
        return type(out)(_to_float32(o) for o in out)
    return out


def find_segmentor(model: nn.Module) -> nn.Module:
    """The mmseg segmentor inside ``model`` (itself, or under wrappers' ``.module``: DDP, mmseg's TTA model)."""
    inner = model
    while not hasattr(inner, 'decode_head') and isinstance(getattr(inner, 'module', None), nn.Module):
        inner = inner.module
    if not hasattr(inner, 'decode_head') or not hasattr(inner, 'backbone'):
        raise TypeError(f'inference options apply to mmseg segmentors (backbone + decode_head); got '
                        f'{type(model).__name__}')
    return inner


def apply_inference_options(model: nn.Module, options: InferenceOptions | None = None,
                            allow_emulated: bool = False, **kwargs) -> nn.Module:
    """Put ``options`` (or ``InferenceOptions(**kwargs)``) on a segmentor in eval mode, in place; returns it.

    ``deploy`` folds the backbone's BatchNorms now (load the checkpoint first), ``channels_last`` converts the
    weights now and each backbone input at the call; precision and compilation act at each forward. The model's
    device is read at each call, so the model may be moved afterwards; the precision is checked against the
    device the model is on now (see :func:`check_precision`); one whose measured agreement with fp32 is below
    :data:`MIN_DEFAULT_AGREEMENT` is applied with a logged warning.

    Raises:
        ValueError: the precision is not native on the model's device, or options were applied already.
        TypeError: ``model`` is not an mmseg segmentor.
    """
    if options is not None and kwargs:
        raise TypeError(f'give options or keyword arguments, not both (got {sorted(kwargs)})')
    options = options if options is not None else InferenceOptions(**kwargs)
    segmentor = find_segmentor(model)
    if getattr(segmentor, 'inference_options', InferenceOptions()) != InferenceOptions():
        raise ValueError(f'inference options were applied to this model already '
                         f'({segmentor.inference_options.describe()}); build a new one')
    device = next(segmentor.parameters()).device
    if options.precision != 'fp32':
        check_precision(options.precision, device, allow_emulated)
        _warn_if_low_agreement(options.precision)
    if options.deploy:
        if not hasattr(segmentor.backbone, 'switch_to_deploy'):
            raise ValueError(f'deploy needs a backbone with switch_to_deploy(); {type(segmentor.backbone).__name__} '
                             'has none')
        segmentor.backbone.eval().switch_to_deploy()
    if options.channels_last:
        segmentor.to(memory_format=torch.channels_last)
    if options != InferenceOptions(deploy=options.deploy):  # anything that acts at the forward
        dtype = None if options.precision == 'fp32' else DTYPES[options.precision]
        parts = [('backbone', False), ('neck', False), ('decode_head', True)]
        for name, float_outputs in parts:
            part = getattr(segmentor, name, None)
            if isinstance(part, nn.Module):
                part.forward = _InferenceForward(part, dtype, options.channels_last and name == 'backbone',
                                                 options.compile, float_outputs)
    segmentor.inference_options = options
    return model


def add_precision_args(parser: argparse.ArgumentParser, forms: bool = True) -> argparse.ArgumentParser:
    """Add ``--precision`` (and, with ``forms``, ``--deploy``, ``--channels-last``, ``--compile``) to a tool."""
    parser.add_argument('--precision', choices=PRECISIONS, default=None,
                        help=f'fp32, or bf16/fp16 autocast where the device runs it natively (default: '
                             f'${PRECISION_ENV} or fp32)')
    if forms:
        parser.add_argument('--deploy', action='store_true',
                            help="fold the backbone's BatchNorms into its convs (same outputs, faster)")
        parser.add_argument('--channels-last', action='store_true', help='NHWC memory format (faster on CPU)')
        parser.add_argument('--compile', action='store_true',
                            help='torch.compile the network (the first image of each size compiles: slow)')
    return parser


def options_from_args(args: argparse.Namespace) -> InferenceOptions:
    """The :class:`InferenceOptions` of a tool's parsed :func:`add_precision_args` flags."""
    return InferenceOptions(precision=args.precision or default_precision(),
                            deploy=getattr(args, 'deploy', False), channels_last=getattr(args, 'channels_last', False),
                            compile=getattr(args, 'compile', False))
