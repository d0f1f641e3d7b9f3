"""Label maps at the original image size without the full-size logits: the one bounded-memory path of mmext's
inference API (:func:`mmext.apis.inference_segmentor`), ``tools/test.py`` and validation during training.

mmseg's ``BaseSegmentor.postprocess_result`` resizes every image's logits to the image's original size before the
arg-max: ``num_classes x H x W`` float32, 64.8 GB for a 12000x9000 image and ADE20K's 150 classes, although the
network itself only ever worked at the test scale. :func:`label_map_from_logits` computes the same arg-max in
bounded memory; :func:`bound_postprocess` makes a segmentor use it for every image larger than its logits, and
:class:`~mmext.engine.hooks.BoundedPredictionHook` does that before every validation and test run.
"""
from __future__ import annotations

import types

import numpy as np
import torch
from mmengine.structures import PixelData

# label_map_from_logits interpolates at most this many classes per pixel where few can win (measured: 2-3).
_MAX_CONTENDERS = 8
#: Working memory of one step of :func:`label_map_from_logits`.
DEFAULT_MAX_TILE_BYTES = 256 * 2**20


def _source_coords(in_size: int, out_size: int, align_corners: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output index: the two source indices and their weights, as torch's ``upsample_bilinear2d`` sets them."""
    dst = torch.arange(out_size, dtype=torch.float32)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.)
    else:
        src = ((dst + 0.5) * torch.tensor(in_size / out_size, dtype=torch.float32) - 0.5).clamp_(min=0)
    i0 = src.long().clamp_(max=in_size - 1)
    i1 = (i0 + 1).clamp_(max=in_size - 1)
    w1 = src - i0.float()
    return i0, i1, 1 - w1, w1


def label_map_from_logits(logits: torch.Tensor, size: tuple[int, int], align_corners: bool = False,
                          max_tile_bytes: int = 256 * 2**20) -> np.ndarray:
    """``argmax(bilinear_resize(logits, size))`` over classes, without the full-size logits.

    Args:
        logits: ``(C, h, w)`` logits.
        size: Output ``(H, W)``.
        align_corners: As in :func:`torch.nn.functional.interpolate`.
        max_tile_bytes: Bound for the working memory of one step. When ``C x H x W`` float32 fit in it, this is
            exactly ``F.interpolate`` + ``argmax``.

    A bilinear value lies between the smallest and the largest of its four source pixels, so in a source cell
    where one class's smallest corner beats every other class's largest one (by a margin far above float
    rounding), every output pixel of that cell takes that class without being interpolated. Only pixels of the
    other cells (class boundaries) are interpolated, for the few classes that can win there (all classes where
    more than eight can), in chunks of at most ``max_tile_bytes``.
    Memory: a few copies of ``logits`` plus the ``(H, W)`` label map, whatever the output size. Where two
    classes' interpolated logits differ by less than float rounding (~1e-5) the winner may differ from a full
    resize, as between any two bilinear implementations.
    """
    c, in_h, in_w = logits.shape
    out_h, out_w = size
    logits = logits.detach().float().cpu()
    if c * out_h * out_w * 4 <= max_tile_bytes:  # fits at once: exactly mmseg's computation
        full = torch.nn.functional.interpolate(logits[None], size=(out_h, out_w), mode='bilinear',
                                               align_corners=align_corners)[0]
        return full.argmax(0).numpy().astype(np.int64)
    y0, y1, hy0, hy1 = _source_coords(in_h, out_h, align_corners)
    x0, x1, wx0, wx1 = _source_coords(in_w, out_w, align_corners)
    # Per source cell (y, x) (corners y|y+1, x|x+1, edges clamped): the classes whose largest corner reaches the
    # best smallest corner. The winner of every pixel in the cell is one of them; with one, it is the label.
    padded = torch.cat([logits, logits[:, -1:]], 1)
    padded = torch.cat([padded, padded[:, :, -1:]], 2)
    k = min(c, _MAX_CONTENDERS)
    contenders = torch.empty(k, in_h, in_w, dtype=torch.int64)  # ascending class ids, padded with the last
    count = torch.empty(in_h, in_w, dtype=torch.int64)
    order = -torch.arange(c, dtype=torch.float32)[:, None, None]
    rows = max(1, max_tile_bytes // (4 * 6 * c * (in_w + 1)))
    for start in range(0, in_h, rows):
        block = padded[:, start:min(in_h, start + rows) + 1]
        corners = (block[:, :-1, :-1], block[:, :-1, 1:], block[:, 1:, :-1], block[:, 1:, 1:])
        low = torch.minimum(torch.minimum(corners[0], corners[1]), torch.minimum(corners[2], corners[3]))
        high = torch.maximum(torch.maximum(corners[0], corners[1]), torch.maximum(corners[2], corners[3]))
        best = low.amax(0)
        reach = high >= (best - 1e-3 * (1 + best.abs()))[None]  # margin far above float rounding
        count[start:start + rows] = reach.sum(0)
        ids = torch.where(reach, order, float('-inf')).topk(k, 0).indices  # smallest ids first
        n = count[start:start + rows].clamp(max=k)
        last = ids.gather(0, (n - 1)[None])
        contenders[:, start:start + rows] = torch.where(torch.arange(k)[:, None, None] < n[None], ids, last)
    flat = logits.permute(1, 2, 0).contiguous().view(-1)  # pixel-major, so a pixel's classes gather fast
    label = np.empty((out_h, out_w), dtype=np.int64)
    band = max(1, max_tile_bytes // (8 * 4 * out_w))  # output rows per step: a few int64 maps of the band
    for band_start in range(0, out_h, band):
        band_rows = torch.arange(band_start, min(out_h, band_start + band))
        cell = y0[band_rows, None] * in_w + x0[None, :]  # source cell of each output pixel of the band
        band_label = contenders[0].view(-1)[cell.view(-1)]
        cell_count = count.view(-1)[cell]
        for few in (True, False):
            rows_at, cols_at = torch.nonzero((cell_count > 1) & (cell_count <= k) if few else cell_count > k,
                                             as_tuple=True)
            width = k if few else c
            chunk = max(1, max_tile_bytes // (4 * width * 12))
            for start in range(0, rows_at.numel(), chunk):
                i, q = rows_at[start:start + chunk], cols_at[start:start + chunk]
                r = band_rows[i]
                if few:
                    ids = contenders.view(k, -1)[:, y0[r] * in_w + x0[q]].T  # (P, k)
                else:
                    ids = torch.arange(c).expand(r.numel(), c)
                top, bottom, left, right = y0[r, None] * in_w, y1[r, None] * in_w, x0[q, None], x1[q, None]
                wl, wr = wx0[q, None], wx1[q, None]
                upper = flat[(top + left) * c + ids] * wl + flat[(top + right) * c + ids] * wr
                lower = flat[(bottom + left) * c + ids] * wl + flat[(bottom + right) * c + ids] * wr
                mixed = upper * hy0[r, None] + lower * hy1[r, None]
                band_label[i * out_w + q] = ids.gather(1, mixed.argmax(1, keepdim=True))[:, 0]
        label[band_start:band_start + band] = band_label.view(-1, out_w).numpy()
    return label


def crop_and_unflip(logits: torch.Tensor, meta: dict) -> torch.Tensor:
    """``(C, h, w)`` logits of one padded, possibly flipped input, cropped and flipped back as mmseg's
    ``postprocess_result`` does before resizing them to ``meta['ori_shape']``."""
    _, h, w = logits.shape
    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
    logits = logits[:, top:h - bottom, left:w - right]
    if meta.get('flip'):
        logits = logits.flip(dims=(2,) if meta.get('flip_direction') == 'horizontal' else (1,))
    return logits


def bounded_label_map(segmentor, logits: torch.Tensor, meta: dict,
                      max_tile_bytes: int = DEFAULT_MAX_TILE_BYTES) -> np.ndarray:
    """The ``(H, W)`` ``int64`` label map at ``meta['ori_shape']`` of one image's ``(C, h, w)`` logits, as
    mmseg's ``postprocess_result`` computes it (a binary head thresholds the sigmoid), in bounded memory."""
    logits = crop_and_unflip(logits, meta)
    if logits.shape[0] == 1:  # binary head: one channel, the full-size map costs what the label map costs
        full = torch.nn.functional.interpolate(logits[None], size=meta['ori_shape'][:2], mode='bilinear',
                                               align_corners=segmentor.align_corners)[0]
        return (full.sigmoid() > segmentor.decode_head.threshold)[0].cpu().numpy().astype(np.int64)
    return label_map_from_logits(logits, meta['ori_shape'][:2], segmentor.align_corners, max_tile_bytes)


def bounded_postprocess_result(segmentor, seg_logits: torch.Tensor, data_samples: list | None = None,
                               max_tile_bytes: int = DEFAULT_MAX_TILE_BYTES) -> list:
    """mmseg's ``postprocess_result``, except that an image larger than its logits (after cropping the padding)
    gets its ``pred_sem_seg`` from :func:`bounded_label_map` and no full-size ``seg_logits``.

    Every other image goes through mmseg's own method unchanged, so results and fields are mmseg's wherever the
    full-size logits are no larger than those the network already computed.
    """
    postprocess = type(segmentor).postprocess_result
    if data_samples is None:
        return postprocess(segmentor, seg_logits, data_samples)
    for i, sample in enumerate(data_samples):
        meta = sample.metainfo
        cropped = crop_and_unflip(seg_logits[i], meta)
        out_h, out_w = meta['ori_shape'][:2]
        if cropped.shape[0] == 1 or out_h * out_w <= cropped.shape[1] * cropped.shape[2]:
            postprocess(segmentor, seg_logits[i:i + 1], [sample])
            continue
        label = bounded_label_map(segmentor, seg_logits[i], meta, max_tile_bytes)
        sample.set_data(dict(pred_sem_seg=PixelData(data=torch.from_numpy(label)[None].to(seg_logits.device))))
    return data_samples


def bound_postprocess(segmentor, max_tile_bytes: int = DEFAULT_MAX_TILE_BYTES):
    """Make ``segmentor`` (an mmseg ``BaseSegmentor``) use :func:`bounded_postprocess_result` in ``predict``, for
    every caller (the Runner's val and test loops, ``test_step``, mmseg's inferencer); returns it. Idempotent."""
    def postprocess_result(self, seg_logits, data_samples=None):
        return bounded_postprocess_result(self, seg_logits, data_samples, max_tile_bytes)
    segmentor.postprocess_result = types.MethodType(postprocess_result, segmentor)
    return segmentor
