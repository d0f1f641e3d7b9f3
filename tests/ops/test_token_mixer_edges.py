"""The fused token mixer at its edges, against the reference, in Triton's CPU interpreter: an empty batch, and a
mixer with no identity channels (``C == 3 * gc``)."""
import pytest
import torch

from mmext.ops import inception_dwconv, inception_dwconv_reference
from mmext.ops import token_mixer as op_module


@pytest.fixture
def interpreter(monkeypatch):
    """Run Triton kernels in the CPU interpreter for this test (``TRITON_INTERPRET`` is read at jit time)."""
    pytest.importorskip('triton')
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    from mmext.ops._token_mixer_triton import interpreter_active
    assert interpreter_active()


def _params(gc: int, band: int) -> list[torch.Tensor]:
    shapes = [(gc, 1, 3, 3), (gc,), (gc, 1, 1, band), (gc,), (gc, 1, band, 1), (gc,)]
    return [torch.randn(s).requires_grad_() for s in shapes]


def _fwd_bwd(fn, x, params, grad):
    y = fn(x, *params)
    return (y, *torch.autograd.grad(y, [x, *params], grad))


def _check(x, params):
    assert op_module._use_triton(x)  # the fused path, not a fallback
    grad = torch.randn(x.shape)
    fast = _fwd_bwd(inception_dwconv, x, params, grad)
    ref = _fwd_bwd(inception_dwconv_reference, x, params, grad)
    names = ['out', 'grad_x', 'grad_w_hw', 'grad_b_hw', 'grad_w_w', 'grad_b_w', 'grad_w_h', 'grad_b_h']
    for name, a, b in zip(names, fast, ref, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * (b.abs().max().item() if b.numel() else 1) + 1e-6,
                                   msg=lambda m, name=name: f'{name}: {m}')
    return fast


@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
def test_empty_batch(interpreter, channels_last):
    torch.manual_seed(0)
    x = torch.randn(0, 16, 7, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fast = _check(x.requires_grad_(), _params(2, 11))
    assert fast[0].shape == (0, 16, 7, 9)
    assert all(torch.count_nonzero(g) == 0 for g in fast[2:])  # no pixels, no weight gradient


@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
def test_no_identity_channels(interpreter, channels_last):
    torch.manual_seed(1)
    x = torch.randn(2, 12, 5, 7)  # gc = 4: square, band-w and band-h take all 12 channels
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fast = _check(x.requires_grad_(), _params(4, 9))
    assert not torch.allclose(fast[0], x)  # every channel was mixed
