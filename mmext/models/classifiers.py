"""ImageNet classification forms of the backbones, to count the paper's params and MACs (not for training).

The paper's tables report whole classifiers at 224x224 with 1000 classes. InceptionNeXt uses an MLP head
(:class:`MlpClassifierHead`, the released ``head.*``); ConvNeXt (Table 1) and the isotropic networks (Table 5, like
DeiT-S / ConvNeXt-S iso.) a LayerNorm + Linear head (:class:`LinearClassifierHead`).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

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
