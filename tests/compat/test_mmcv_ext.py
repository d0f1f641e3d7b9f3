"""mmext's ``mmcv._ext`` stand-in: mmcv's own ``mmcv.ops`` front ends running on torchvision's kernels."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from mmcv.ops import (
    CARAFE,
    DeformConv2d,
    DeformConv2dPack,
    ModulatedDeformConv2dPack,
    PSAMask,
    RoIAlign,
    batched_nms,
    nms,
    roi_align,
    sigmoid_focal_loss,
)
from mmcv.utils import ext_loader
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
from mmengine.utils.dl_utils import mmcv_full_available

from mmext.compat import PROVIDED_OPS, MissingMmcvOpError, install_mmcv_ext_stand_in, mmcv_ext_stand_in_installed


def random_boxes(n: int, seed: int, size: float = 60.) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered boxes (so that many overlap) and distinct scores."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1), torch.rand(n, generator=g)


def reference_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, offset: int) -> list[int]:
    """Greedy NMS as mmcv's CPU kernel does it: width = x2 - x1 + offset, suppress when IoU > threshold."""
    order = np.argsort(-scores, kind='stable')
    area = (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        w = np.maximum(0, np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]) + offset)
        h = np.maximum(0, np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]) + offset)
        inter = w * h
        suppressed |= inter / (area[i] + area - inter) > iou_threshold
    return keep


def reference_roi_align(feats: np.ndarray, rois: np.ndarray, out_size: tuple[int, int], spatial_scale: float,
                        sampling_ratio: int, aligned: bool) -> np.ndarray:
    """mmcv's RoIAlign (pool_mode='avg') written out point by point."""
    _, channels, height, width = feats.shape

    def bilinear(f, y, x):
        if y < -1 or y > height or x < -1 or x > width:
            return np.zeros(channels)
        y, x = max(y, 0.), max(x, 0.)
        y0, x0 = int(y), int(x)
        y1, x1 = (y0 + 1, x0 + 1)
        if y0 >= height - 1:
            y0 = y1 = height - 1
            y = float(y0)
        if x0 >= width - 1:
            x0 = x1 = width - 1
            x = float(x0)
        ly, lx = y - y0, x - x0
        return ((1 - ly) * (1 - lx) * f[:, y0, x0] + (1 - ly) * lx * f[:, y0, x1] + ly * (1 - lx) * f[:, y1, x0]
                + ly * lx * f[:, y1, x1])

    ph, pw = out_size
    out = np.zeros((len(rois), channels, ph, pw))
    shift = 0.5 if aligned else 0.
    for n, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 * spatial_scale - shift, y1 * spatial_scale - shift
        rw, rh = x2 * spatial_scale - shift - sx, y2 * spatial_scale - shift - sy
        if not aligned:
            rw, rh = max(rw, 1.), max(rh, 1.)
        bh, bw = rh / ph, rw / pw
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / ph)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / pw)
        for i in range(ph):
            for j in range(pw):
                acc = sum(bilinear(feats[int(b)], sy + i * bh + (iy + .5) * bh / gh, sx + j * bw + (ix + .5) * bw / gw)
                          for iy in range(gh) for ix in range(gw))
                out[n, :, i, j] = acc / max(gh * gw, 1)
    return out


def test_stand_in_is_installed_and_honest():
    assert mmcv_ext_stand_in_installed()
    assert not install_mmcv_ext_stand_in()  # already there: a second call changes nothing
    # mmengine must not believe full mmcv is present (it would then use mmcv.ops' SyncBN / DCN classes)
    assert mmcv_full_available() is False
    ext = ext_loader.load_ext('_ext', ['nms', 'roi_align_forward', 'deform_conv_forward', 'any_future_op'])
    assert ext.nms is PROVIDED_OPS['nms']


@pytest.mark.parametrize('offset', [0, 1])
@pytest.mark.parametrize('iou_threshold', [0.3, 0.6])
def test_nms_matches_reference_and_torchvision(offset, iou_threshold):
    boxes, scores = random_boxes(200, seed=offset + int(10 * iou_threshold))
    dets, keep = nms(boxes, scores, iou_threshold, offset=offset)
    expected = reference_nms(boxes.numpy(), scores.numpy(), iou_threshold, offset)
    assert 5 < len(expected) < 200  # the boxes overlap enough for NMS to matter
    assert keep.tolist() == expected
    torch.testing.assert_close(dets, torch.cat([boxes[keep], scores[keep, None]], dim=1))
    if offset == 0:
        assert keep.tolist() == torchvision.ops.nms(boxes, scores, iou_threshold).tolist()
    else:  # offset 1 makes every box a pixel larger: more overlap, fewer boxes survive
        assert len(keep) < len(reference_nms(boxes.numpy(), scores.numpy(), iou_threshold, 0))


def test_nms_numpy_score_threshold_max_num_and_empty():
    boxes, scores = random_boxes(100, seed=3)
    dets, keep = nms(boxes.numpy(), scores.numpy(), 0.5, score_threshold=0.3, max_num=4)
    full = reference_nms(boxes.numpy(), scores.numpy(), 0.5, 0)
    assert isinstance(keep, np.ndarray)
    assert keep.tolist() == [i for i in full if scores[i] > 0.3][:4]
    _, keep = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.long
    with pytest.raises(ValueError, match='offset'):
        PROVIDED_OPS['nms'](boxes, scores, iou_threshold=0.5, offset=2)


def test_batched_nms_matches_torchvision():
    boxes, scores = random_boxes(300, seed=5)
    labels = torch.randint(0, 4, (300,), generator=torch.Generator().manual_seed(5))
    dets, keep = batched_nms(boxes, scores, labels, dict(type='nms', iou_threshold=0.5))
    expected = torchvision.ops.batched_nms(boxes, scores, labels, 0.5)
    assert len(expected) > 20
    assert keep.tolist() == expected.tolist()  # both sorted by decreasing score
    torch.testing.assert_close(dets[:, 4], scores[expected])


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_roi_align_forward_matches_reference_and_torchvision(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 12, 16, generator=g, dtype=torch.float64)
    rois = torch.tensor([[0, 2.3, 1.1, 20.7, 14.2], [1, 0., 0., 31.9, 23.9], [0, 10.2, 5.5, 11.0, 6.1],
                         [1, -3., -2., 8., 30.]], dtype=torch.float64)  # a sub-pixel box, one leaving the image
    out = roi_align(feats, rois, (3, 4), 0.5, sampling_ratio, 'avg', aligned)
    expected = reference_roi_align(feats.numpy(), rois.numpy(), (3, 4), 0.5, sampling_ratio, aligned)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out, torchvision.ops.roi_align(feats, rois, (3, 4), 0.5, sampling_ratio, aligned))


def test_roi_align_backward_through_mmcv_module():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 2, 9, 11, generator=g, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 1.2, 0.7, 15.3, 12.9], [1, 4.0, 2.5, 9.5, 17.0]], dtype=torch.float64)
    module = RoIAlign((3, 3), spatial_scale=0.5, sampling_ratio=0, aligned=True)
    assert torch.autograd.gradcheck(lambda f: module(f, rois), (feats,))

    weights = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((module(feats, rois) * weights).sum(), feats)
    (expected,) = torch.autograd.grad(
        (torchvision.ops.roi_align(feats, rois, (3, 3), 0.5, 0, True) * weights).sum(), feats)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, expected)


def test_roi_align_float32_features_with_float64_rois():
    feats = torch.randn(1, 4, 10, 10)
    rois = torch.tensor([[0, 1., 1., 8., 8.]], dtype=torch.float64)
    out = RoIAlign(2, 1.0)(feats, rois)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torchvision.ops.roi_align(feats, rois.float(), 2, 1.0, 0, True))


@pytest.mark.parametrize('reduction', ['none', 'mean'])
def test_sigmoid_focal_loss_matches_mmdet_pytorch_version(reduction):
    # mmdet's FocalLoss sends CUDA tensors to mmcv's compiled op and CPU tensors to its own PyTorch version; the
    # stand-in must agree with the latter, gradient included (mmcv's backward is analytic, mmdet's autograd).
    g = torch.Generator().manual_seed(2)
    logits = (torch.randn(40, 5, generator=g, dtype=torch.float64) * 3).requires_grad_()
    labels = torch.randint(0, 6, (40,), generator=g)  # 5 = background
    assert (labels == 5).any() and (labels < 5).any()
    loss = sigmoid_focal_loss(logits, labels, 2.0, 0.25, None, reduction)
    one_hot = torch.nn.functional.one_hot(labels, 6)[:, :5].to(logits.dtype)
    expected = py_sigmoid_focal_loss(logits, one_hot, gamma=2.0, alpha=0.25, reduction='none')
    if reduction == 'mean':
        expected = expected.sum() / len(labels)  # mmcv's 'mean' divides by rows, not elements
    torch.testing.assert_close(loss, expected)
    upstream = torch.randn(loss.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((loss * upstream).sum(), logits)
    (expected_grad,) = torch.autograd.grad((expected * upstream).sum(), logits)
    torch.testing.assert_close(grad, expected_grad)

    weight = torch.rand(5, generator=g, dtype=torch.float64)
    foreground = labels < 5
    weighted = sigmoid_focal_loss(logits[foreground], labels[foreground], 2.0, 0.25, weight, 'none')
    torch.testing.assert_close(weighted, sigmoid_focal_loss(logits[foreground], labels[foreground], 2.0, 0.25, None,
                                                            'none') * weight[labels[foreground], None])
    with pytest.raises(ValueError, match='background rows'):
        sigmoid_focal_loss(logits, labels, 2.0, 0.25, weight, 'none')


def test_unsupported_ops_raise_clear_errors():
    feats, rois = torch.randn(1, 2, 8, 8), torch.tensor([[0, 1., 1., 6., 6.]])
    with pytest.raises(MissingMmcvOpError, match="pool_mode='max'.*mmcv==2.1.0"):
        RoIAlign(2, 1.0, pool_mode='max')(feats, rois)
    with pytest.raises(MissingMmcvOpError, match="'carafe_forward' needs compiled mmcv.*mmcv==2.1.0"):
        CARAFE(kernel_size=3, group_size=1, scale_factor=2)(feats, torch.rand(1, 9, 16, 16))
    ext = ext_loader.load_ext('_ext', ['softnms'])
    with pytest.raises(RuntimeError, match="'softnms'.*provides deform_conv_backward_input, .*, psamask_forward, "
                                           "roi_align_backward, roi_align_forward"):
        ext.softnms(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1, 5))
    with pytest.raises(AttributeError):
        ext.__file__  # noqa: B018  (dunder lookups keep Python's semantics)


def reference_deform_conv(x, offset, weight, bias=None, mask=None, stride=1, padding=0, dilation=1, groups=1):
    """Deformable conv written out with grid_sample: each tap samples the input bilinearly at its regular position
    plus its ``(dy, dx)`` offset (zeros outside), scaled by the mask (DCNv2), then a grouped matmul."""
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    _, offset_channels, out_h, out_w = offset.shape
    dg = offset_channels // (2 * kh * kw)
    off = offset.view(n, dg, kh * kw, 2, out_h, out_w)
    base_y = (torch.arange(out_h, dtype=x.dtype) * stride - padding)[:, None]
    base_x = (torch.arange(out_w, dtype=x.dtype) * stride - padding)[None, :]
    cols = []
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        y = base_y + i * dilation + off[:, :, k, 0]  # (n, dg, out_h, out_w), pixels
        xx = base_x + j * dilation + off[:, :, k, 1]
        grid = torch.stack([2 * xx / (width - 1) - 1, 2 * y / (height - 1) - 1], dim=-1).flatten(0, 1)
        sampled = F.grid_sample(x.reshape(n * dg, channels // dg, height, width), grid, mode='bilinear',
                                padding_mode='zeros', align_corners=True)
        if mask is not None:
            sampled = sampled * mask.view(n, dg, kh * kw, out_h, out_w)[:, :, k].reshape(n * dg, 1, out_h, out_w)
        cols.append(sampled.reshape(n, channels, out_h, out_w))
    cols = torch.stack(cols, 2).view(n, groups, channels // groups, kh * kw, out_h, out_w)
    out = torch.einsum('ngckhw,gock->ngohw', cols, weight.view(groups, out_channels // groups, -1, kh * kw))
    out = out.reshape(n, out_channels, out_h, out_w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize('modulated', [False, True], ids=['dcn', 'dcnv2'])
def test_deform_conv_packs_forward_backward_match_reference(modulated):
    """mmcv's DeformConv2dPack / ModulatedDeformConv2dPack (the DCN layers of mmseg/mmdet configs) on the stand-in:
    output and every gradient equal the direct computation, strided, dilated, grouped, two deformable groups."""
    torch.manual_seed(0)
    cls = ModulatedDeformConv2dPack if modulated else DeformConv2dPack
    layer = cls(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, deform_groups=2).double()
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.3)  # mmcv zero-inits the offsets: make them matter
    torch.nn.init.normal_(layer.conv_offset.bias, std=1.0)
    x = torch.randn(2, 4, 9, 11, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    offset_out = layer.conv_offset(x)
    if modulated:
        o1, o2, m = torch.chunk(offset_out, 3, dim=1)
        expected = reference_deform_conv(x, torch.cat((o1, o2), 1), layer.weight, layer.bias, torch.sigmoid(m),
                                         stride=2, padding=2, dilation=2, groups=2)
    else:
        expected = reference_deform_conv(x, offset_out, layer.weight, stride=2, padding=2, dilation=2, groups=2)
    assert out.shape == (2, 6, 5, 6)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    params = [x, *layer.parameters()]
    grads = torch.autograd.grad(out, params, grad)
    expected_grads = torch.autograd.grad(expected, params, grad)
    assert all(g.abs().sum() > 0 for g in grads)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


def test_deform_conv_zero_offset_is_a_conv_and_float32_runs():
    torch.manual_seed(1)
    layer = DeformConv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 8, 7, requires_grad=True)
    out = layer(x, torch.zeros(2, 18, 8, 7))
    torch.testing.assert_close(out, F.conv2d(x, layer.weight, padding=1), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    torch.testing.assert_close(x.grad, torch.autograd.grad(F.conv2d(x, layer.weight, padding=1).sum(), x)[0],
                               rtol=1e-5, atol=1e-5)


def reference_psamask(x, psa_type, h_mask, w_mask):
    """mmcv's CPU psamask kernel, loop for loop."""
    n, _, h_feature, w_feature = x.shape
    half_h, half_w = (h_mask - 1) // 2, (w_mask - 1) // 2
    out = torch.zeros(n, h_feature * w_feature, h_feature, w_feature, dtype=x.dtype)
    for h in range(h_feature):
        for w in range(w_feature):
            for i in range(max(0, half_h - h), min(h_mask, h_feature + half_h - h)):
                for j in range(max(0, half_w - w), min(w_mask, w_feature + half_w - w)):
                    y, xx = i + h - half_h, j + w - half_w
                    if psa_type == 'collect':
                        out[:, y * w_feature + xx, h, w] = x[:, i * w_mask + j, h, w]
                    else:
                        out[:, h * w_feature + w, y, xx] = x[:, i * w_mask + j, h, w]
    return out


@pytest.mark.parametrize('psa_type', ['collect', 'distribute'])
def test_psamask_matches_mmcv_kernel_and_gradcheck(psa_type):
    """PSANet's PSAMask: a mask window larger than the map on one side, smaller on the other."""
    torch.manual_seed(2)
    x = torch.randn(2, 5 * 9, 4, 6, dtype=torch.float64, requires_grad=True)
    module = PSAMask(psa_type, (5, 9))
    out = module(x)
    torch.testing.assert_close(out, reference_psamask(x.detach(), psa_type, 5, 9), rtol=0, atol=0)
    assert (out != 0).any() and (out == 0).any()
    assert torch.autograd.gradcheck(module, (x[:1, :, :3, :4].detach().clone().requires_grad_(),))
