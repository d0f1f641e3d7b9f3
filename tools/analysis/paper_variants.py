"""Parameters and MACs of the paper's variants (Tables 1, 5, 8) in their ImageNet classification form, beside the
paper's figures.

    python tools/analysis/paper_variants.py                      # every variant of mmext.models.variants
    python tools/analysis/paper_variants.py inceptionnext_t_ln metanext_attn_s

The paper's tables report whole classifiers at 224x224 with 1000 classes. InceptionNeXt uses an MLP head
(:class:`MlpClassifierHead`, the released ``head.*``); ConvNeXt (Table 1) and the isotropic networks (Table 5, like
DeiT-S / ConvNeXt-S iso.) a LayerNorm + Linear head (:class:`LinearClassifierHead`). These forms exist to count (and,
in ``tools/benchmark.py``, to time) the paper's rows; they are not for training, so they live here and not in the
installed package. The tests load this file with the ``load_tool`` fixture.
"""
from __future__ import annotations

import argparse
import copy
import math

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer

import mmext  # noqa: F401  (registers the backbones)
from mmext.models.variants import PAPER_VARIANTS, variant_backbone
from mmext.quiet import quiet_upstream_warnings
from mmext.registry import MODELS


class MlpClassifierHead(nn.Module):
    """Mean pool, Linear ``C -> ratio * C``, GELU, LayerNorm (eps 1e-6), Linear: InceptionNeXt's head (released
    key names ``fc1``, ``norm``, ``fc2``)."""

    def __init__(self, in_channels: int, num_classes: int = 1000, mlp_ratio: float = 3) -> None:
        super().__init__()
        hidden = int(mlp_ratio * in_channels)
        self.fc1 = nn.Linear(in_channels, hidden)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(self.act(self.fc1(x.mean((2, 3))))))


class LinearClassifierHead(nn.Module):
    """Mean pool, LayerNorm (eps 1e-6), Linear: ConvNeXt's head."""

    def __init__(self, in_channels: int, num_classes: int = 1000) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_channels, eps=1e-6)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((2, 3))))


HEADS = {'mlp': MlpClassifierHead, 'linear': LinearClassifierHead}


class MetaNeXtClassifier(nn.Module):
    """A backbone config (``InceptionNeXt`` or ``InceptionNeXtIsotropic``) with a classification head on its
    last stride-32 (4-stage) or stride-16 (isotropic) map.

    Args:
        backbone: The backbone's config dict (``type`` and its arguments); ``out_indices`` is set here.
        head: ``'mlp'`` (:class:`MlpClassifierHead`) or ``'linear'`` (:class:`LinearClassifierHead`).
        num_classes: Classifier outputs (ImageNet-1k: 1000).
    """

    def __init__(self, backbone: dict, head: str = 'mlp', num_classes: int = 1000) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f'head must be one of {sorted(HEADS)}, got {head!r}')
        cfg = copy.deepcopy(backbone)
        # the isotropic network's own map is pyramid level 2 (stride 16); the 4-stage one's last is stage -1
        cfg['out_indices'] = (2,) if cfg.get('type') == 'InceptionNeXtIsotropic' else (-1,)
        cfg.setdefault('init_cfg', None)
        self.backbone = MODELS.build(cfg)
        self.head = HEADS[head](self.backbone.channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])


def _sdpa_macs(inputs: list, outputs: list) -> int:
    """MACs of ``aten::scaled_dot_product_attention``: ``q k^T`` and ``attn v``, ``2 * N * heads * L * S * d``."""
    from mmengine.analysis.jit_handles import get_shape

    q, k = get_shape(inputs[0]), get_shape(inputs[1])
    return 2 * math.prod(q[:-1]) * k[-2] * q[-1]


def classifier_complexity(variant: str, img_size: int = 224, num_classes: int = 1000,
                          trace_size: int | None = None) -> dict:
    """Parameters and MACs of a paper variant's classification form (a key of
    :data:`mmext.models.variants.PAPER_VARIANTS`).

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


def main(argv: list[str] | None = None) -> None:
    quiet_upstream_warnings()
    parser = argparse.ArgumentParser(description="Params and MACs of the paper's variants (classification form)")
    parser.add_argument('variants', nargs='*', metavar='VARIANT', help=f'default: all of {", ".join(PAPER_VARIANTS)}')
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants) - set(PAPER_VARIANTS))
    if unknown:
        parser.error(f'unknown variant(s) {unknown}; choose from {", ".join(PAPER_VARIANTS)}')
    print('| variant | table, row | params M (paper) | MACs G at 224 (paper) |\n|---|---|---|---|')
    for name in args.variants or PAPER_VARIANTS:
        r = classifier_complexity(name, trace_size=32)
        p = r['paper']
        print(f"| {name} | {p['table']}, {p['row']} | {r['params'] / 1e6:.1f} ({p['params'] / 1e6:g}) | "
              f"{r['macs'] / 1e9:.2f} ({p['macs'] / 1e9:g}) |")


if __name__ == '__main__':
    main()
