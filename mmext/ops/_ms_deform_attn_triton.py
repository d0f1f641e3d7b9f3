"""Triton kernels of multi-scale deformable attention (Deformable DETR's sampling step, mmcv's
``ms_deform_attn_forward`` / ``_backward``).

For a query ``q`` of image ``b`` and head ``h``, the output is ``sum_{l,p} a[b,q,h,l,p] * bilinear(value_l[b,:,h,:],
loc[b,q,h,l,p])`` over the levels ``l`` and points ``p``, where ``loc`` is in ``[0, 1]`` image coordinates
(``x * W_l - 0.5`` pixels, as ``grid_sample(align_corners=False)``) and samples outside the map read zeros.

:func:`_ms_deform_attn` is both directions (``BACKWARD``, a constexpr: each compiles to its own kernel, sharing
the sampling code). One program computes ``BLOCK_Q`` queries x all ``D`` channels of one ``(b, h)``; levels and
points are runtime loops. Backward: the location and weight gradients are reductions over the program's own channels
(plain stores), the value gradient is scattered with fp32 atomics into a buffer the caller casts back
(half-precision atomics would round every addition).

Tensors are contiguous: value ``(B, S, NH, D)``, locations ``(B, Q, NH, L, P, 2)``, weights ``(B, Q, NH, L, P)``,
output ``(B, Q, NH * D)``. Accumulation is fp32 whatever the input dtype. The body is a plain function jitted per
mode by :func:`get_kernel` (compiled, or interpreted on CPU under ``TRITON_INTERPRET=1``).
"""
from __future__ import annotations

import triton.language as tl

from mmext.compat.upstream import triton_sum_combine

from ._token_mixer_triton import interpreter_active, jit_for_mode  # noqa: F401  (interpreter_active: re-exported)

_SUM = triton_sum_combine()  # tl.sum's combine function: ``tl.reduce(x, axis, _SUM)`` works in both modes


def _ms_deform_attn(value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr, grad_value_ptr, grad_loc_ptr,
                    grad_attn_ptr, S, Q, NH, D, L, P, BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr,
                    BACKWARD: tl.constexpr):
    """Grid ``(cdiv(Q, BLOCK_Q), B * NH)``. Forward: writes ``out_ptr``; the ``grad_*`` pointers are not touched.
    Backward: reads the output's gradient from ``out_ptr`` and writes the ``grad_*`` tensors; ``grad_value_ptr``
    is an fp32 buffer shaped like the value."""
    pid_q = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // NH).to(tl.int64)
    h = bh % NH
    q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_mask = q < Q
    d = tl.arange(0, BLOCK_D)
    d_mask = d < D
    row = (b * Q + q) * NH + h  # (b, q, h) in the query-side tensors
    img = b * S * NH * D  # 64-bit image base; 32-bit offsets within the image
    v_img = value_ptr + img
    if BACKWARD:
        go = tl.load(out_ptr + (row * D)[:, None] + d[None, :], mask=q_mask[:, None] & d_mask[None, :],
                     other=0.).to(tl.float32)
        g_img = grad_value_ptr + img
    else:
        acc = tl.full([BLOCK_Q, BLOCK_D], 0., tl.float32)
    for lvl in range(L):
        height = tl.load(shapes_ptr + 2 * lvl).to(tl.int32)
        width = tl.load(shapes_ptr + 2 * lvl + 1).to(tl.int32)
        start = tl.load(starts_ptr + lvl).to(tl.int32)
        for pt in range(P):
            lp = (row * L + lvl) * P + pt
            a = tl.load(attn_ptr + lp, mask=q_mask, other=0.).to(tl.float32)
            x = tl.load(loc_ptr + 2 * lp, mask=q_mask, other=0.).to(tl.float32) * width - 0.5
            y = tl.load(loc_ptr + 2 * lp + 1, mask=q_mask, other=0.).to(tl.float32) * height - 0.5
            x0f = tl.floor(x)
            y0f = tl.floor(y)
            lx = x - x0f
            ly = y - y0f
            x0 = x0f.to(tl.int32)
            y0 = y0f.to(tl.int32)
            if BACKWARD:
                val = tl.full([BLOCK_Q, BLOCK_D], 0., tl.float32)  # the bilinear sample
                d_dx = tl.full([BLOCK_Q, BLOCK_D], 0., tl.float32)  # its derivatives in pixels
                d_dy = tl.full([BLOCK_Q, BLOCK_D], 0., tl.float32)
            for corner in tl.static_range(4):  # one corner's loads in flight at a time keeps registers low
                dy = corner // 2
                dx = corner % 2
                yy = y0 + dy
                xx = x0 + dx
                wy = ly if dy else 1. - ly
                wx = lx if dx else 1. - lx
                w = wy * wx
                ok = q_mask & (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
                offs = ((start + yy * width + xx) * NH + h) * D
                v = tl.load(v_img + offs[:, None] + d[None, :], mask=ok[:, None] & d_mask[None, :],
                            other=0.).to(tl.float32)
                if BACKWARD:
                    val += w[:, None] * v
                    d_dx += (wy * (2. * dx - 1.))[:, None] * v
                    d_dy += (wx * (2. * dy - 1.))[:, None] * v
                    tl.atomic_add(g_img + offs[:, None] + d[None, :], (a * w)[:, None] * go,
                                  mask=ok[:, None] & d_mask[None, :])
                else:
                    acc += (a * w)[:, None] * v
            if BACKWARD:
                g_attn = tl.reduce(go * val, 1, _SUM)
                tl.store(grad_attn_ptr + lp, g_attn.to(grad_attn_ptr.dtype.element_ty), mask=q_mask)
                gx = a * width * tl.reduce(go * d_dx, 1, _SUM)
                gy = a * height * tl.reduce(go * d_dy, 1, _SUM)
                tl.store(grad_loc_ptr + 2 * lp, gx.to(grad_loc_ptr.dtype.element_ty), mask=q_mask)
                tl.store(grad_loc_ptr + 2 * lp + 1, gy.to(grad_loc_ptr.dtype.element_ty), mask=q_mask)
    if not BACKWARD:
        tl.store(out_ptr + (row * D)[:, None] + d[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=q_mask[:, None] & d_mask[None, :])  # the output pointers only now: fewer live registers


_KERNELS: dict[bool, tuple] = {}


def get_kernel():
    """The kernel for the current mode (compiled, or interpreted under ``TRITON_INTERPRET=1``)."""
    return jit_for_mode(_KERNELS, _ms_deform_attn)[0]
