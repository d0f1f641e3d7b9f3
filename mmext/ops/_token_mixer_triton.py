"""Triton kernels of the fused Inception depthwise token mixer (forward and backward).

One launch covers all four channel groups ``(identity, square, band-w, band-h)``: each program owns a tile of
``BLOCK_S`` pixels by ``BLOCK_C`` channels of one image inside one group, so the input is read once (the conv taps
re-read neighbouring pixels through the cache) and the output written once, with no split or cat copies. Tensors
are addressed through their strides, so contiguous and channels_last inputs work alike; accumulation is fp32.

The kernel bodies are plain functions jitted on first use (:func:`get_kernels`), keyed on Triton's interpreter
switch: with ``TRITON_INTERPRET=1`` they run on CPU tensors, which is how CI checks them against the reference.
"""
from __future__ import annotations

import triton
import triton.language as tl
from triton.language.standard import _sum_combine

# The kernels use only core builtins plus ``tl.reduce`` with Triton's own sum combiner (what ``tl.sum`` expands
# to): the ``@jit`` helpers of ``triton.language.standard`` (``tl.zeros``, ``tl.sum``) are bound to the mode Triton
# was imported in, and the interpreter recognises ``_sum_combine`` and reduces it with numpy.


def _mixer_fwd(x_ptr, y_ptr, w_hw_ptr, b_hw_ptr, w_w_ptr, b_w_ptr, w_h_ptr, b_h_ptr,
               H, W, sxn, sxc, sxh, sxw, syn, syc, syh, syw, C_ID, GC, NB_ID, NB_G,
               KS: tl.constexpr, KB: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    offs_s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    s_mask = offs_s < H * W
    h = offs_s // W
    w = offs_s % W
    x_img = x_ptr + n * sxn
    y_img = y_ptr + n * syn
    if pid_c < NB_ID:
        c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = s_mask[:, None] & (c < C_ID)[None, :]
        v = tl.load(x_img + c[None, :] * sxc + h[:, None] * sxh + w[:, None] * sxw, mask=mask)
        tl.store(y_img + c[None, :] * syc + h[:, None] * syh + w[:, None] * syw, v, mask=mask)
    else:
        r = pid_c - NB_ID
        branch = r // NB_G
        lc = (r % NB_G) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_mask = lc < GC
        c = C_ID + branch * GC + lc
        x_c = x_img + c[None, :] * sxc
        acc = tl.full([BLOCK_S, BLOCK_C], 0., tl.float32)
        if branch == 0:
            acc += tl.load(b_hw_ptr + lc, mask=c_mask, other=0.).to(tl.float32)[None, :]
            for i in tl.static_range(KS):
                for j in tl.static_range(KS):
                    hh = h + (i - KS // 2)
                    ww = w + (j - KS // 2)
                    m = s_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
                    xv = tl.load(x_c + hh[:, None] * sxh + ww[:, None] * sxw, mask=m[:, None] & c_mask[None, :],
                                 other=0.).to(tl.float32)
                    wv = tl.load(w_hw_ptr + lc * (KS * KS) + (i * KS + j), mask=c_mask, other=0.).to(tl.float32)
                    acc += xv * wv[None, :]
        elif branch == 1:
            acc += tl.load(b_w_ptr + lc, mask=c_mask, other=0.).to(tl.float32)[None, :]
            for j in tl.static_range(KB):
                ww = w + (j - KB // 2)
                m = s_mask & (ww >= 0) & (ww < W)
                xv = tl.load(x_c + h[:, None] * sxh + ww[:, None] * sxw, mask=m[:, None] & c_mask[None, :],
                             other=0.).to(tl.float32)
                wv = tl.load(w_w_ptr + lc * KB + j, mask=c_mask, other=0.).to(tl.float32)
                acc += xv * wv[None, :]
        else:
            acc += tl.load(b_h_ptr + lc, mask=c_mask, other=0.).to(tl.float32)[None, :]
            for i in tl.static_range(KB):
                hh = h + (i - KB // 2)
                m = s_mask & (hh >= 0) & (hh < H)
                xv = tl.load(x_c + hh[:, None] * sxh + w[:, None] * sxw, mask=m[:, None] & c_mask[None, :],
                             other=0.).to(tl.float32)
                wv = tl.load(w_h_ptr + lc * KB + i, mask=c_mask, other=0.).to(tl.float32)
                acc += xv * wv[None, :]
        mask = s_mask[:, None] & c_mask[None, :]
        tl.store(y_img + c[None, :] * syc + h[:, None] * syh + w[:, None] * syw,
                 acc.to(y_ptr.dtype.element_ty), mask=mask)


def _mixer_bwd(dy_ptr, x_ptr, dx_ptr, w_hw_ptr, w_w_ptr, w_h_ptr, dw_hw_ptr, dw_w_ptr, dw_h_ptr, db_ptr,
               H, W, sdn, sdc, sdh, sdw, sxn, sxc, sxh, sxw, sgn, sgc, sgh, sgw, C_ID, GC, NB_ID, NB_G,
               KS: tl.constexpr, KB: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr):
    """Input gradient plus per-program partial weight and bias gradients (summed over programs by the caller).

    Partial buffers: ``dw_hw [P, GC, KS*KS]``, ``dw_w / dw_h [P, GC, KB]``, ``db [P, 3, GC]`` with program index
    ``P = n * num_spatial_blocks + pid_s``; every (program, channel) slot is written exactly once.
    """
    pid_s = tl.program_id(0)
    pid_c = tl.program_id(1)
    n = tl.program_id(2).to(tl.int64)
    part = n * tl.num_programs(0) + pid_s
    offs_s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    s_mask = offs_s < H * W
    h = offs_s // W
    w = offs_s % W
    dy_img = dy_ptr + n * sdn
    x_img = x_ptr + n * sxn
    dx_img = dx_ptr + n * sgn
    if pid_c < NB_ID:
        c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = s_mask[:, None] & (c < C_ID)[None, :]
        v = tl.load(dy_img + c[None, :] * sdc + h[:, None] * sdh + w[:, None] * sdw, mask=mask)
        tl.store(dx_img + c[None, :] * sgc + h[:, None] * sgh + w[:, None] * sgw, v, mask=mask)
    else:
        r = pid_c - NB_ID
        branch = r // NB_G
        lc = (r % NB_G) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_mask = lc < GC
        c = C_ID + branch * GC + lc
        dy_c = dy_img + c[None, :] * sdc
        x_c = x_img + c[None, :] * sxc
        mask = s_mask[:, None] & c_mask[None, :]
        g = tl.load(dy_c + h[:, None] * sdh + w[:, None] * sdw, mask=mask, other=0.).to(tl.float32)
        tl.store(db_ptr + (part * 3 + branch) * GC + lc, tl.reduce(g, 0, _sum_combine), mask=c_mask)
        acc = tl.full([BLOCK_S, BLOCK_C], 0., tl.float32)
        if branch == 0:
            for i in tl.static_range(KS):
                for j in tl.static_range(KS):
                    # dx[h, w] += w[i, j] * dy[h - di, w - dj]; dw[i, j] += dy[h, w] * x[h + di, w + dj]
                    di = i - KS // 2
                    dj = j - KS // 2
                    hh = h - di
                    ww = w - dj
                    m = s_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
                    gv = tl.load(dy_c + hh[:, None] * sdh + ww[:, None] * sdw, mask=m[:, None] & c_mask[None, :],
                                 other=0.).to(tl.float32)
                    wv = tl.load(w_hw_ptr + lc * (KS * KS) + (i * KS + j), mask=c_mask, other=0.).to(tl.float32)
                    acc += gv * wv[None, :]
                    hh = h + di
                    ww = w + dj
                    m = s_mask & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
                    xv = tl.load(x_c + hh[:, None] * sxh + ww[:, None] * sxw, mask=m[:, None] & c_mask[None, :],
                                 other=0.).to(tl.float32)
                    tl.store(dw_hw_ptr + (part * GC + lc) * (KS * KS) + (i * KS + j),
                             tl.reduce(g * xv, 0, _sum_combine), mask=c_mask)
        elif branch == 1:
            for j in tl.static_range(KB):
                dj = j - KB // 2
                ww = w - dj
                m = s_mask & (ww >= 0) & (ww < W)
                gv = tl.load(dy_c + h[:, None] * sdh + ww[:, None] * sdw, mask=m[:, None] & c_mask[None, :],
                             other=0.).to(tl.float32)
                wv = tl.load(w_w_ptr + lc * KB + j, mask=c_mask, other=0.).to(tl.float32)
                acc += gv * wv[None, :]
                ww = w + dj
                m = s_mask & (ww >= 0) & (ww < W)
                xv = tl.load(x_c + h[:, None] * sxh + ww[:, None] * sxw, mask=m[:, None] & c_mask[None, :],
                             other=0.).to(tl.float32)
                tl.store(dw_w_ptr + (part * GC + lc) * KB + j, tl.reduce(g * xv, 0, _sum_combine), mask=c_mask)
        else:
            for i in tl.static_range(KB):
                di = i - KB // 2
                hh = h - di
                m = s_mask & (hh >= 0) & (hh < H)
                gv = tl.load(dy_c + hh[:, None] * sdh + w[:, None] * sdw, mask=m[:, None] & c_mask[None, :],
                             other=0.).to(tl.float32)
                wv = tl.load(w_h_ptr + lc * KB + i, mask=c_mask, other=0.).to(tl.float32)
                acc += gv * wv[None, :]
                hh = h + di
                m = s_mask & (hh >= 0) & (hh < H)
                xv = tl.load(x_c + hh[:, None] * sxh + w[:, None] * sxw, mask=m[:, None] & c_mask[None, :],
                             other=0.).to(tl.float32)
                tl.store(dw_h_ptr + (part * GC + lc) * KB + i, tl.reduce(g * xv, 0, _sum_combine), mask=c_mask)
        tl.store(dx_img + c[None, :] * sgc + h[:, None] * sgh + w[:, None] * sgw,
                 acc.to(dx_ptr.dtype.element_ty), mask=mask)


_KERNELS: dict[bool, tuple] = {}


def get_kernels() -> tuple:
    """``(forward, backward)`` jitted for the current mode (compiled, or interpreted under ``TRITON_INTERPRET=1``)."""
    interpret = bool(triton.knobs.runtime.interpret)
    if interpret not in _KERNELS:
        _KERNELS[interpret] = (triton.jit(_mixer_fwd), triton.jit(_mixer_bwd))
    return _KERNELS[interpret]


def interpreter_active() -> bool:
    """Whether Triton kernels launched now run in the CPU interpreter."""
    return bool(triton.knobs.runtime.interpret)
