"""The fused token mixer op against its reference (split + three depthwise convs + cat).

The Triton kernels run on CPU tensors in Triton's interpreter (``TRITON_INTERPRET=1``, read when the kernels are
jitted, which :func:`get_kernels` does per mode), so CI checks the same kernel code a GPU compiles.
"""
import pytest
import torch

from mmext.models.backbones.inceptionnext import InceptionNeXt
from mmext.models.backbones.token_mixers import InceptionDWConv2d
from mmext.ops import fast_mixer_enabled, inception_dwconv, inception_dwconv_reference, set_fast_mixer
from mmext.ops import token_mixer as op_module
from mmext.ops.mixer_configs import TileConfig

# (channels, branch ratio, band kernel, height, width): odd sizes, bands wider than the map, both released ratios
SHAPES = [(16, 1 / 8, 11, 7, 9), (16, 1 / 4, 9, 7, 9), (24, 1 / 8, 11, 5, 3)]


@pytest.fixture
def interpreter(monkeypatch):
    """Run Triton kernels in the CPU interpreter for this test."""
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    from mmext.ops._token_mixer_triton import get_kernels, interpreter_active
    assert interpreter_active()
    fwd, bwd = get_kernels()
    assert type(fwd).__name__ == 'InterpretedFunction' and type(bwd).__name__ == 'InterpretedFunction'


def _params(channels, ratio, band, dtype=torch.float32, square=3):
    gc = int(channels * ratio)
    shapes = [(gc, 1, square, square), (gc,), (gc, 1, 1, band), (gc,), (gc, 1, band, 1), (gc,)]
    return [torch.randn(s).to(dtype).requires_grad_() for s in shapes]


def _input(n, c, h, w, dtype=torch.float32, channels_last=False):
    x = torch.randn(n, c, h, w).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_()


def _fwd_bwd(fn, x, params, grad):
    y = fn(x, *params)
    return (y, *torch.autograd.grad(y, [x, *params], grad))


def _assert_close(fast, ref, rtol, atol_scale):
    names = ['out', 'grad_x', 'grad_w_hw', 'grad_b_hw', 'grad_w_w', 'grad_b_w', 'grad_w_h', 'grad_b_h']
    for name, a, b in zip(names, fast, ref, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        b = b.float()
        torch.testing.assert_close(a.float(), b, rtol=rtol, atol=atol_scale * b.abs().max().item() + 1e-6,
                                   msg=lambda m, name=name: f'{name}: {m}')


@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'c{}_r{:.3f}_b{}_{}x{}'.format(*s))
def test_triton_kernels_match_reference_fp32(interpreter, shape, channels_last):
    torch.manual_seed(0)
    channels, ratio, band, h, w = shape
    x = _input(2, channels, h, w, channels_last=channels_last)
    params = _params(channels, ratio, band)
    assert op_module._use_triton(x)
    grad = torch.randn(2, channels, h, w)
    fast = _fwd_bwd(inception_dwconv, x, params, grad)
    ref = _fwd_bwd(inception_dwconv_reference, x, params, grad)
    _assert_close(fast, ref, rtol=1e-5, atol_scale=1e-6)
    assert fast[0].stride() == x.stride() and fast[1].stride() == x.stride()


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=str)
def test_triton_kernels_half_precision(interpreter, dtype):
    """Half-precision activations with fp32 weights (the autocast case): fp32 accumulation, one output rounding."""
    torch.manual_seed(1)
    x = _input(2, 16, 7, 9, dtype=dtype, channels_last=True)
    params = _params(16, 1 / 8, 11)
    grad = torch.randn(2, 16, 7, 9).to(dtype)
    fast = _fwd_bwd(inception_dwconv, x, params, grad)
    assert fast[0].dtype == dtype and fast[1].dtype == dtype and fast[2].dtype == torch.float32
    x32 = x.detach().float().requires_grad_()
    ref = _fwd_bwd(inception_dwconv_reference, x32, params, grad.float())
    ref = (ref[0].to(dtype), ref[1].to(dtype), *ref[2:])
    _assert_close(fast, ref, rtol=1e-2, atol_scale=1e-2)


def test_triton_kernels_strided_input(interpreter):
    """A channel slice of a larger tensor (non-dense strides) is read in place."""
    torch.manual_seed(2)
    base = torch.randn(2, 24, 6, 5)
    x = base[:, 4:20].requires_grad_()
    assert not x.is_contiguous()
    params = _params(16, 1 / 4, 9)
    grad = torch.randn(2, 16, 6, 5)
    _assert_close(_fwd_bwd(inception_dwconv, x, params, grad),
                  _fwd_bwd(inception_dwconv_reference, x, params, grad), rtol=1e-5, atol_scale=1e-6)


def test_custom_op_registration_opcheck(interpreter):
    """Schema, fake (meta) implementation, autograd registration and AOT dispatch, on the Triton path."""
    torch.manual_seed(3)
    x = _input(1, 16, 5, 7, channels_last=True)
    torch.library.opcheck(torch.ops.mmext.inception_dwconv.default, (x, *_params(16, 1 / 4, 9)))


def test_custom_op_compiles_fullgraph():
    """torch.compile traces the op as one node (fake impl + registered backward); CPU uses the reference impl."""
    torch.manual_seed(4)
    x = _input(2, 16, 7, 9)
    params = _params(16, 1 / 8, 11)
    grad = torch.randn(2, 16, 7, 9)

    @torch.compile(backend='aot_eager', fullgraph=True)
    def compiled(x, *params):
        return inception_dwconv(x, *params) * 2

    def reference(x, *params):
        return inception_dwconv_reference(x, *params) * 2

    _assert_close(_fwd_bwd(compiled, x, params, grad), _fwd_bwd(reference, x, params, grad),
                  rtol=1e-5, atol_scale=1e-6)


def test_meta_tensors_keep_memory_format():
    x = torch.empty(2, 16, 7, 9, device='meta').contiguous(memory_format=torch.channels_last)
    params = [p.detach().to('meta') for p in _params(16, 1 / 8, 11)]
    y = inception_dwconv(x, *params)
    assert y.shape == x.shape and y.stride() == x.stride()


def test_op_rejects_too_few_channels():
    x = torch.randn(1, 8, 4, 4)
    with pytest.raises(ValueError, match='at least 9 channels'):
        inception_dwconv_reference(x, *_params(16, 3 / 16, 11))


def test_fast_mixer_switch_precedence():
    """Explicit ``fast_mixer=`` wins over the process default, which :func:`set_fast_mixer` changes."""
    from mmext.ops import token_mixer
    mixer, forced_off = InceptionDWConv2d(16), InceptionDWConv2d(16, fast_mixer=False)
    default = token_mixer._FAST_MIXER
    try:
        set_fast_mixer(False)
        assert not fast_mixer_enabled() and mixer.fast_mixer is None
        set_fast_mixer(True)
        assert fast_mixer_enabled() and forced_off.fast_mixer is False
        with pytest.raises(TypeError, match='bool'):
            set_fast_mixer('0')
    finally:
        set_fast_mixer(default)
    arch = dict(depths=(1, 1), dims=(16, 32), mlp_ratios=(2, 2))
    for explicit in (False, True):
        model = InceptionNeXt(arch, out_indices=(0, 1), fast_mixer=explicit)
        mixers = [m for m in model.modules() if isinstance(m, InceptionDWConv2d)]
        assert len(mixers) == 2 and all(m.fast_mixer is explicit for m in mixers)


@pytest.mark.gpu
@pytest.mark.parametrize('autocast', [False, True], ids=['fp32', 'bf16'])
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
def test_cuda_module_fast_path_matches_reference(autocast, channels_last):
    torch.manual_seed(5)
    mixer = InceptionDWConv2d(96).cuda()
    x = torch.randn(4, 96, 56, 56, device='cuda')
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    params = list(mixer.parameters())
    grad = torch.randn_like(x)

    def run():
        with (torch.autocast('cuda', torch.bfloat16, enabled=autocast),
              torch.backends.cudnn.flags(enabled=True, allow_tf32=False)):
            return _fwd_bwd(lambda x, *p: mixer(x), x, params, grad)

    fast = run()
    assert fast[0].dtype == (torch.bfloat16 if autocast else torch.float32)
    mixer.fast_mixer = False
    ref = run()
    tol = 2e-2 if autocast else 1e-5
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol * b.abs().max().item())
    mixer.fast_mixer = True
    compiled = torch.compile(mixer, fullgraph=True)
    torch.testing.assert_close(compiled(x.detach()), mixer(x.detach()))


@pytest.mark.gpu
def test_cuda_backbone_fast_path_matches_reference():
    torch.manual_seed(6)
    fast = InceptionNeXt('atto').cuda().train()
    ref = InceptionNeXt('atto', fast_mixer=False).cuda().train()
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 64, 64, device='cuda')
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        outs = [model(x) for model in (fast, ref)]
        grads = [torch.autograd.grad(sum(o.sum() for o in out), list(m.parameters()))
                 for out, m in zip(outs, (fast, ref), strict=True)]
    for a, b in zip(outs[0] + grads[0], outs[1] + grads[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_fused_backward_over_chunks_and_channel_blocks(interpreter):
    """Weight-gradient programs that walk several tiles, several chunks per image and several channel blocks."""
    torch.manual_seed(7)
    x = _input(1, 16, 5, 7, channels_last=True)
    params = _params(16, 1 / 4, 9)  # gc = 4 over two channel blocks of 2
    grad = torch.randn(1, 16, 5, 7)
    cfg = TileConfig(16, 2, 1, 1, 2)  # 35 pixels: 3 tiles of 16, so chunks of 2 tiles and of 1
    fused = op_module._fused_backward(grad, x.detach(), params[0], params[2], params[4], cfg)
    ref = op_module._reference_backward(grad, x.detach(), params[0], params[2], params[4])
    for a, b in zip(fused, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())
    y = op_module._fused_forward(x.detach(), params, cfg)
    torch.testing.assert_close(y, inception_dwconv_reference(x.detach(), *params), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'nhwc'])
def test_cuda_every_tuning_config_matches_reference(dtype, channels_last):
    """Every config the autotuner may pick, whatever it picks on this GPU: odd sizes, several channel blocks."""
    from mmext.ops.mixer_configs import tuning_space
    torch.manual_seed(8)
    x = torch.randn(3, 160, 13, 17, device='cuda').to(dtype)  # gc = 20
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    params = [p.detach().cuda() for p in _params(160, 1 / 8, 11)]
    grad = torch.randn_like(x)
    ref = (inception_dwconv_reference(x, *[p.to(dtype) for p in params]),
           *op_module._reference_backward(grad, x, params[0], params[2], params[4]))
    configs = tuning_space(channels_last, 20)
    assert configs
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    for cfg in configs:
        fused = (op_module._fused_forward(x, params, cfg),
                 *op_module._fused_backward(grad, x, params[0], params[2], params[4], cfg))
        for a, b in zip(fused, ref, strict=True):
            torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol * b.float().abs().max().item(),
                                       msg=lambda m, cfg=cfg: f'{cfg.name}: {m}')
