"""Segmentor-level pieces mmseg lacks: the bounded-memory prediction path."""
from .bounded_postprocess import bound_postprocess, bounded_label_map, label_map_from_logits

__all__ = ['bound_postprocess', 'bounded_label_map', 'label_map_from_logits']
