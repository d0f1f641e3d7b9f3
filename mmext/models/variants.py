"""The paper's networks beyond the four released backbones, as backbone configs: Table 1 (ConvNeXt-T with a
shrunk depthwise conv on part of the channels), Table 5 (isotropic networks) and Table 8 (ablations of
InceptionNeXt-T). One source for the complexity tests, the benchmark and (checked by tests) ``configs/ablations``.

Each entry: ``backbone`` (config dict), ``head`` (the classification form's head, see ``MetaNeXtClassifier`` in
``tools/analysis/paper_variants.py``), the paper's ``table`` and ``row``, and the paper's numbers for that row:
``params`` and ``macs`` (classifier at 224x224, 1000 classes), ImageNet-1k ``top1``, and ``train`` / ``infer``
throughput in images/s on ``hardware``. ``config`` names the segmentation counterpart.

Where our MetaNeXt form of a Table 1 row (ConvNeXt-T) differs from ConvNeXt: the stem and downsample norms are
BatchNorm (ConvNeXt: LayerNorm; same parameter count, norms are not counted as MACs) and the MLP is 1x1 convs
(ConvNeXt: Linear layers; the same weights). Block (LayerNorm, ``gamma``, MLP ratio 4 in every stage) and head
(LayerNorm + Linear) are ConvNeXt's.
"""
from __future__ import annotations

import copy

T = dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 3))
CONVNEXT_T = dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), mlp_ratios=(4, 4, 4, 4))
LN2D = dict(type='LN2d', eps=1e-6)  # ConvNeXt's channels-first LayerNorm: Tables 1 and 5's block norm, Table 8's LN
A100 = 'A100, TF32, batch 128 at 224'
GPU_2080TI = '2080Ti, FP32'


def _t(**token_mixer) -> dict:
    arch = dict(T, token_mixer=dict(type='InceptionDWConv2d', **token_mixer)) if token_mixer else dict(T)
    return dict(type='InceptionNeXt', arch=arch)


def _convnext_t(kernel_size: int, ratio: float) -> dict:
    return dict(type='InceptionNeXt',
                arch=dict(CONVNEXT_T, token_mixer=dict(type='DWConv2d', kernel_size=kernel_size, ratio=ratio)),
                block_norm_cfg=LN2D)


def _row(table, row, backbone, head, params, macs, top1, train, infer, hardware, config) -> dict:
    return dict(table=table, row=row, backbone=backbone, head=head, params=params * 1e6, macs=macs * 1e9,
                top1=top1, train=train, infer=infer, hardware=hardware, config=config)


_T1 = [  # (kernel, ratio, params M, MACs G, train, infer, top-1); 7x7 ratio 1 is ConvNeXt-T (82.1 from its paper)
    (7, 1.0, 28.6, 4.5, 575, 2413, 82.1), (5, 1.0, 28.4, 4.4, 675, 2704, 82.0), (3, 1.0, 28.3, 4.4, 798, 2802, 81.5),
    (3, 1 / 2, 28.3, 4.4, 818, 2740, 81.4), (3, 3 / 8, 28.3, 4.4, 847, 2762, 81.4),
    (3, 1 / 4, 28.3, 4.4, 871, 2808, 81.3), (3, 1 / 8, 28.3, 4.4, 901, 2833, 80.8),
    (3, 1 / 16, 28.3, 4.4, 916, 2846, 80.1),
]
_RATIO_NAMES = {1.0: '1', 1 / 2: '1-2', 3 / 8: '3-8', 1 / 4: '1-4', 1 / 8: '1-8', 1 / 16: '1-16'}
_RATIO_TEXT = {1.0: '1', 1 / 2: '1/2', 3 / 8: '3/8', 1 / 4: '1/4', 1 / 8: '1/8', 1 / 16: '1/16'}

PAPER_VARIANTS: dict[str, dict] = {}
for _k, _r, _p, _m, _tr, _inf, _top1 in _T1:
    _name = f'convnext_t_dw{_k}_r{_RATIO_NAMES[_r]}'
    PAPER_VARIANTS[_name] = _row('Table 1', f'DWConv {_k}x{_k}, conv ratio {_RATIO_TEXT[_r]}', _convnext_t(_k, _r),
                                 'linear', _p, _m, _top1, _tr, _inf, A100,
                                 f'configs/ablations/upernet_metanext_t_{_name.removeprefix("convnext_t_")}_ade20k.py')

PAPER_VARIANTS.update({
    # Table 5: isotropic networks (DeiT-S sized), 2080Ti FP32 throughput
    'inceptionnext_iso_s': _row('Table 5', 'InceptionNeXt-S (iso.)',
                                dict(type='InceptionNeXtIsotropic', arch='small'), 'linear', 22, 4.2, 79.7, 310, 998,
                                GPU_2080TI, 'configs/upernet_inceptionnext_iso_s_ade20k.py'),
    'metanext_attn_s': _row('Table 5', 'MetaNeXt-Attn', dict(type='InceptionNeXtIsotropic', arch='attn_small'),
                            'linear', 22, 4.6, 3.9, 288, 816, GPU_2080TI,
                            'configs/upernet_metanext_attn_iso_s_ade20k.py'),
    'convnext_iso_s': _row('Table 5', 'ConvNeXt-S (iso.)', dict(
        type='InceptionNeXtIsotropic', arch=dict(depth=18, dim=384, mlp_ratio=4,
                                                 token_mixer=dict(type='DWConv2d', kernel_size=7)),
        block_norm_cfg=LN2D),
        'linear', 22, 4.3, 79.7, 270, 879, GPU_2080TI, None),
    # Table 8: ablations of InceptionNeXt-T, A100
    'inceptionnext_t': _row('Table 8', 'baseline (InceptionNeXt-T)', dict(type='InceptionNeXt', arch='tiny'), 'mlp',
                            28.1, 4.2, 82.3, 901, 2900, A100, 'configs/upernet_inceptionnext_t_ade20k.py'),
    'inceptionnext_t_no_hband': _row('Table 8', 'remove horizontal band (1 x k_b)', _t(branches=('hw', 'h')),
                                     'mlp', 28.0, 4.2, 81.9, 947, 3093, A100, None),
    'inceptionnext_t_no_vband': _row('Table 8', 'remove vertical band (k_b x 1)', _t(branches=('hw', 'w')),
                                     'mlp', 28.0, 4.2, 81.9, 954, 3173, A100, None),
    'inceptionnext_t_no_square': _row('Table 8', 'remove small square kernel (3x3)', _t(branches=('w', 'h')),
                                      'mlp', 28.0, 4.2, 82.0, 940, 3004, A100, None),
    'inceptionnext_t_seq_bands': _row('Table 8', 'bands parallel -> sequential', _t(bands='sequential'),
                                      'mlp', 28.1, 4.2, 82.1, 903, 2971, A100, None),
    'inceptionnext_t_band7': _row('Table 8', 'band kernel 11 -> 7', _t(band_kernel_size=7),
                                  'mlp', 28.0, 4.2, 82.1, 905, 2946, A100, None),
    'inceptionnext_t_band9': _row('Table 8', 'band kernel 11 -> 9', _t(band_kernel_size=9),
                                  'mlp', 28.1, 4.2, 82.1, 904, 2916, A100, None),
    'inceptionnext_t_band13': _row('Table 8', 'band kernel 11 -> 13', _t(band_kernel_size=13),
                                   'mlp', 28.1, 4.2, 82.0, 896, 2895, A100, None),
    'inceptionnext_t_ratio1-4': _row('Table 8', 'branch ratio 1/8 -> 1/4', _t(branch_ratio=0.25),
                                     'mlp', 28.1, 4.2, 82.2, 834, 2499, A100, None),
    'inceptionnext_t_ratio1-16': _row('Table 8', 'branch ratio 1/8 -> 1/16', _t(branch_ratio=0.0625),
                                      'mlp', 28.0, 4.2, 81.8, 936, 3097, A100, None),
    'inceptionnext_t_ln': _row('Table 8', 'BN -> LN (block norm)',
                               dict(type='InceptionNeXt', arch=dict(T), block_norm_cfg=LN2D),
                               'mlp', 28.1, 4.2, 82.4, 721, 2646, A100, None),
})
for _name, _v in PAPER_VARIANTS.items():
    if _v['config'] is None:
        _v['config'] = f'configs/ablations/upernet_{_name}_ade20k.py'


def variant_backbone(name: str) -> dict:
    """A copy of the backbone config of the paper variant ``name`` (a key of :data:`PAPER_VARIANTS`)."""
    if name not in PAPER_VARIANTS:
        raise KeyError(f'unknown paper variant {name!r}; choose from {sorted(PAPER_VARIANTS)}')
    return copy.deepcopy(PAPER_VARIANTS[name]['backbone'])
