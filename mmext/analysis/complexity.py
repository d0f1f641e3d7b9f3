"""Parameters and MACs of a segmentor or detector built from a config, next to the paper's numbers.

MACs come from mmengine's complexity analysis (a traced forward of ``model._forward``, i.e. the inference path
without auxiliary heads); parameters count the whole model, auxiliary head included, as the paper's tables do.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

from mmext.registry import MODELS

# Paper (CVPR 2024) Table 6 (UperNet, MACs at 2048x512) and Table 7 (Semantic FPN, MACs at 512x512), keyed by the
# config name. ``shape`` is (width, height) of the input the paper's MACs refer to.
PAPER_COMPLEXITY: dict[str, dict] = {
    'upernet_inceptionnext_t_ade20k': dict(params=56e6, macs=933e9, shape=(2048, 512)),
    'upernet_inceptionnext_s_ade20k': dict(params=78e6, macs=1020e9, shape=(2048, 512)),
    'upernet_inceptionnext_b_ade20k': dict(params=115e6, macs=1159e9, shape=(2048, 512)),
    'fpn_inceptionnext_t_ade20k': dict(params=28e6, macs=44e9, shape=(512, 512)),
    'fpn_inceptionnext_s_ade20k': dict(params=50e6, macs=65e9, shape=(512, 512)),
    'fpn_inceptionnext_b_ade20k': dict(params=85e6, macs=100e9, shape=(512, 512)),
}


def build_segmentor_for_analysis(cfg: Config) -> torch.nn.Module:
    """Build ``cfg.model`` on the CPU in eval mode, SyncBN turned into BN, without loading pretrained weights."""
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    return model.eval()


class _DetectorTensorForward(torch.nn.Module):
    """``detector(inputs, data_samples, mode='tensor')`` as a one-tensor module, so it can be traced.

    Two-stage detectors read image metadata in their tensor path (the RPN's proposals need ``img_shape``), so a
    sample describing the unpadded, unscaled input goes along, as mmdet's own ``get_flops.py`` does.
    """

    def __init__(self, detector: torch.nn.Module, height: int, width: int) -> None:
        super().__init__()
        from mmdet.structures import DetDataSample
        self.detector = detector
        shape = (height, width)
        self.samples = [DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                                    batch_input_shape=shape, scale_factor=(1., 1.)))]

    def forward(self, inputs: torch.Tensor):
        return self.detector(inputs, self.samples, mode='tensor')


def segmentor_complexity(config: str | Path | Config, shape: tuple[int, int] | None = None,
                         cfg_options: dict | None = None) -> dict:
    """Count parameters and MACs of the segmentor (or mmdet detector) a config describes.

    Args:
        config: A config file or a loaded :class:`~mmengine.config.Config`.
        shape: Input ``(width, height)``, like mmseg's ``Resize`` scale ``(2048, 512)``. ``None`` uses the shape
            of the paper's number for configs in :data:`PAPER_COMPLEXITY`, else ``(2048, 512)``.
        cfg_options: Overrides merged into the config (as ``--cfg-options`` does).

    Returns:
        ``dict(name, shape, params, macs, paper)`` with ``paper`` the matching :data:`PAPER_COMPLEXITY` entry or
        ``None``; ``params`` counts every parameter, ``macs`` one forward of ``model._forward`` on a 1-image batch.
    """
    if isinstance(config, Config):
        cfg, name = copy.deepcopy(config), Path(config.filename or 'config').stem  # cfg_options leave it intact
    else:
        if not Path(config).is_file():
            raise FileNotFoundError(f'config file {config} does not exist')
        cfg, name = Config.fromfile(config), Path(config).stem
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    paper = PAPER_COMPLEXITY.get(name)
    if shape is None:
        shape = paper['shape'] if paper else (2048, 512)
    width, height = shape
    if width < 32 or height < 32:
        raise ValueError(f'input shape {shape} is too small for a stride-32 backbone; give (width, height) >= 32')

    model = build_segmentor_for_analysis(cfg)
    traced = _DetectorTensorForward(model, height, width) if cfg.get('default_scope') == 'mmdet' else model
    inputs = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        # mmengine's FLOP counter counts one multiply-add as one "flop": its total is MACs.
        analyzer = FlopAnalyzer(traced, inputs=(inputs, ))
        # Element-wise ops, norms and resizes are not counted (fvcore's convention, which papers report).
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = analyzer.total()
    return dict(name=name, shape=(width, height), params=sum(p.numel() for p in model.parameters()),
                macs=int(macs), paper=paper)


def format_complexity_table(results: list[dict]) -> str:
    """A markdown table of :func:`segmentor_complexity` results with the paper's numbers beside them."""
    lines = ['| config | input (w x h) | params | paper params | MACs | paper MACs |', '|---|---|---|---|---|---|']
    for r in results:
        paper = r['paper']
        paper_params = f'{paper["params"] / 1e6:.0f}M' if paper else '-'
        if not paper:
            paper_macs = '-'
        elif tuple(paper['shape']) == tuple(r['shape']):
            paper_macs = f'{paper["macs"] / 1e9:.0f}G'
        else:
            paper_macs = f'{paper["macs"] / 1e9:.0f}G at {paper["shape"][0]}x{paper["shape"][1]}'
        lines.append(f'| {r["name"]} | {r["shape"][0]}x{r["shape"][1]} | {r["params"] / 1e6:.1f}M | {paper_params} '
                     f'| {r["macs"] / 1e9:.1f}G | {paper_macs} |')
    return '\n'.join(lines)


def _sdpa_macs(inputs: list, outputs: list) -> int:
    """MACs of ``aten::scaled_dot_product_attention``: ``q k^T`` and ``attn v``, ``2 * N * heads * L * S * d``."""
    from mmengine.analysis.jit_handles import get_shape

    q, k = get_shape(inputs[0]), get_shape(inputs[1])
    return 2 * math.prod(q[:-1]) * k[-2] * q[-1]


def classifier_complexity(variant: str, img_size: int = 224, num_classes: int = 1000,
                          trace_size: int | None = None) -> dict:
    """Parameters and MACs of a paper variant's ImageNet classification form (see :mod:`mmext.models.variants`).

    The attention of MetaNeXt-Attn (``scaled_dot_product_attention``) is counted as its two matrix products, as
    DeiT's MACs are; norms and element-wise ops are not counted (fvcore's convention). The model is built without
    initialising its weights (values do not change a count).

    ``trace_size`` (a multiple of 32, like ``img_size``) traces a smaller input and scales the count to
    ``img_size``: every feature map then shrinks by the same factor, so conv and linear MACs scale with the pixel
    count, attention with its square and the classification head not at all; the result is exact and several
    times faster to get.

    Returns:
        ``dict(name, params, macs, paper)``, ``paper`` being the :data:`~mmext.models.variants.PAPER_VARIANTS` entry.
    """
    from mmext.models.classifiers import MetaNeXtClassifier
    from mmext.models.variants import PAPER_VARIANTS, variant_backbone

    trace_size = trace_size or img_size
    if img_size % 32 or trace_size % 32:
        raise ValueError(f'img_size ({img_size}) and trace_size ({trace_size}) must be multiples of 32')
    with torch.device('meta'):
        model = MetaNeXtClassifier(variant_backbone(variant), PAPER_VARIANTS[variant]['head'], num_classes)
    model = model.to_empty(device='cpu').eval()
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, inputs=(torch.zeros(1, 3, trace_size, trace_size), ))
        analyzer.set_op_handle('aten::scaled_dot_product_attention', _sdpa_macs)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        total, head = analyzer.total(), analyzer.total('head')
        attention = analyzer.by_operator().get('scaled_dot_product_attention', 0)
    scale = (img_size / trace_size) ** 2
    macs = head + (total - head - attention) * scale + attention * scale ** 2
    return dict(name=variant, params=sum(p.numel() for p in model.parameters()), macs=round(macs),
                paper=PAPER_VARIANTS[variant])
