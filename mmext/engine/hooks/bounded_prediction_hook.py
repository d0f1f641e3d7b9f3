"""Predict images larger than the test scale in bounded memory in every validation and test run."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper

from mmext.models.segmentors.bounded_postprocess import DEFAULT_MAX_TILE_BYTES, bound_postprocess
from mmext.registry import HOOKS


@HOOKS.register_module()
class BoundedPredictionHook(Hook):
    """Before each validation and test run, make the segmentor compute label maps of images larger than its
    logits with :func:`~mmext.models.segmentors.bound_postprocess` (the path of :mod:`mmext.apis`).

    mmseg upsamples every image's logits to the original size before the arg-max (``num_classes x H x W``
    floats: 64.8 GB for a 12000x9000 ADE20K image); with this hook the memory stays that of the test scale.
    Images no larger than their logits, models other than segmentors and test-time augmentation (which merges
    full-size logits of several scales) keep mmseg's path.

    Args:
        max_tile_bytes: Working memory of one step of the bounded resize + arg-max.
    """

    def __init__(self, max_tile_bytes: int = DEFAULT_MAX_TILE_BYTES) -> None:
        self.max_tile_bytes = max_tile_bytes

    def before_val(self, runner) -> None:
        self._bound(runner)

    def before_test(self, runner) -> None:
        self._bound(runner)

    def _bound(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if isinstance(model, BaseTTAModel):
            print_log('BoundedPredictionHook: test-time augmentation merges full-size logits; images larger than '
                      'the test scale are not bounded in memory', logger='current')
            return
        if hasattr(model, 'postprocess_result') and hasattr(model, 'decode_head'):  # an mmseg segmentor
            bound_postprocess(model, self.max_tile_bytes)
