"""Parameters and MACs of a segmentor or detector built from a config.

MACs come from mmengine's complexity analysis (a traced forward of ``model._forward``, i.e. the inference path
without auxiliary heads); parameters count the whole model, auxiliary head included, as the paper's tables do.
The paper's figures and the measured ones are in ``configs/metafile.yaml``; ``tools/analysis/get_flops.py`` prints
both side by side.
"""
from __future__ import annotations

from pathlib import Path

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config

from mmext.apis.builder import build_segmentor, load_model_config


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


def segmentor_complexity(config: str | Path | Config, shape: tuple[int, int] = (512, 2048),
                         cfg_options: dict | None = None) -> dict:
    """Count parameters and MACs of the segmentor (or mmdet detector) a config describes.

    Args:
        config: A config file or a loaded :class:`~mmengine.config.Config`.
        shape: Input ``(height, width)``; the default is ADE20K's test scale, the input of the paper's UperNet MACs.
        cfg_options: Overrides merged into the config (as ``--cfg-options`` does).

    Returns:
        ``dict(name, shape, params, macs)``: ``name`` the config's file stem, ``shape`` ``(height, width)``,
        ``params`` every parameter, ``macs`` one forward of ``model._forward`` on a 1-image batch.
    """
    name = Path((config.filename if isinstance(config, Config) else config) or 'config').stem
    cfg = load_model_config(config, cfg_options)  # a Config given stays intact
    height, width = shape
    if width < 32 or height < 32:
        raise ValueError(f'input shape {shape} is too small for a stride-32 backbone; give (height, width) >= 32')

    model = build_segmentor(cfg, log_dropped=False)  # no weights: counts do not depend on them
    traced = _DetectorTensorForward(model, height, width) if cfg.get('default_scope') == 'mmdet' else model
    inputs = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        # mmengine's FLOP counter counts one multiply-add as one "flop": its total is MACs.
        analyzer = FlopAnalyzer(traced, inputs=(inputs, ))
        # Element-wise ops, norms and resizes are not counted (fvcore's convention, which papers report).
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = analyzer.total()
    return dict(name=name, shape=(height, width), params=sum(p.numel() for p in model.parameters()),
                macs=int(macs))

