"""Multi-scale deformable attention without compiled mmcv: mmcv's own Function and module through the stand-in,
the grid_sample reference, and the Triton kernels in Triton's CPU interpreter, all against mmcv's PyTorch version.
"""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttention,
    MultiScaleDeformableAttnFunction,
    multi_scale_deformable_attn_pytorch,
)

from mmext.ops import ms_deform_attn as op

# Four levels of unequal, non-square sizes (a 2:3 image at strides 8..64) and one map narrower than it is tall.
LEVELS = [(13, 17), (7, 9), (4, 5), (2, 3)]


def _inputs(batch, num_queries, num_heads, head_dims, num_points, levels=LEVELS, dtype=torch.float32, seed=0):
    """Value, shapes, level starts, locations (a fifth of them outside [0, 1]) and softmaxed weights."""
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    num_keys = int((shapes[:, 0] * shapes[:, 1]).sum())
    value = torch.randn(batch, num_keys, num_heads, head_dims, generator=g).to(dtype)
    loc = torch.rand(batch, num_queries, num_heads, len(levels), num_points, 2, generator=g) * 1.5 - 0.25
    weights = torch.randn(batch, num_queries, num_heads, len(levels) * num_points, generator=g).softmax(-1)
    weights = weights.view(batch, num_queries, num_heads, len(levels), num_points)
    return value, shapes, starts, loc.to(dtype), weights.to(dtype)


def _grads(fn, value, loc, weights, grad_out):
    leaves = [t.detach().requires_grad_() for t in (value, loc, weights)]
    out = fn(*leaves)
    return (out, *torch.autograd.grad(out, leaves, grad_out))


def _assert_close(actual, expected, rtol, atol_scale):
    for name, a, b in zip(('output', 'grad_value', 'grad_locations', 'grad_weights'), actual, expected, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        a, b = a.float(), b.float()
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol_scale * b.abs().max().item(),
                                   msg=lambda m, name=name: f'{name}: {m}')


@pytest.fixture
def interpreter(monkeypatch):
    """Run Triton kernels in the CPU interpreter for this test."""
    pytest.importorskip('triton')
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    from mmext.ops._ms_deform_attn_triton import get_kernel, interpreter_active
    assert interpreter_active()
    assert type(get_kernel()).__name__ == 'InterpretedFunction'


def test_mmcv_function_on_cpu_matches_mmcv_pytorch_version():
    """``MultiScaleDeformableAttnFunction.apply`` on CPU tensors calls the stand-in's ext ops (mmcv's own module
    never does on CPU); output and all three gradients equal mmcv's ``multi_scale_deformable_attn_pytorch``."""
    value, shapes, starts, loc, weights = _inputs(2, 50, 4, 8, 3, dtype=torch.float64)
    grad_out = torch.randn(2, 50, 32, dtype=torch.float64)
    ours = _grads(lambda v, s, w: MultiScaleDeformableAttnFunction.apply(v, shapes, starts, s, w, 64),
                  value, loc, weights, grad_out)
    mmcv = _grads(lambda v, s, w: multi_scale_deformable_attn_pytorch(v, shapes, s, w), value, loc, weights,
                  grad_out)
    assert ours[2].abs().sum() > 0 and ours[1].abs().sum() > 0
    _assert_close(ours, mmcv, rtol=1e-10, atol_scale=1e-12)
    # the backward is mmcv's once_differentiable Function calling ext_module.ms_deform_attn_backward: gradcheck it
    value, shapes, starts, loc, weights = _inputs(1, 3, 1, 2, 2, levels=[(3, 4), (2, 1)], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda v, s, w: MultiScaleDeformableAttnFunction.apply(v, shapes, starts, s, w, 64),
        [t.requires_grad_() for t in (value, loc.clamp(0.05, 0.95), weights)])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=str)
def test_mmcv_function_half_precision(dtype):
    """fp16/bf16 in, same dtype out (mmcv's own CUDA kernel has no fp16), computed in fp32 and rounded once."""
    value, shapes, starts, loc, weights = _inputs(1, 20, 2, 8, 2)
    grad_out = torch.randn(1, 20, 16)
    ours = _grads(lambda v, s, w: MultiScaleDeformableAttnFunction.apply(v, shapes, starts, s, w, 64),
                  value.to(dtype), loc, weights.to(dtype), grad_out.to(dtype))
    assert ours[0].dtype == dtype and ours[1].dtype == dtype and ours[3].dtype == dtype
    assert ours[2].dtype == torch.float32  # mmcv casts the locations to value's dtype; autograd casts back
    ref = _grads(lambda v, s, w: multi_scale_deformable_attn_pytorch(v, shapes, s, w), value.to(dtype).float(),
                 loc.to(dtype).float(), weights.to(dtype).float(), grad_out.to(dtype).float())
    _assert_close([t.float() for t in ours], ref, rtol=2e-2, atol_scale=2e-2)


def _mmcv_attention(embed_dims: int, num_heads: int, num_points: int, num_queries: int, std: float, seed: int):
    """mmcv's ``MultiScaleDeformableAttention`` over the four levels of :func:`_inputs`, its sampling offsets and
    attention weights drawn with ``std`` (spread samples), a query and the module's other inputs (batch 2)."""
    torch.manual_seed(seed)
    attn = MultiScaleDeformableAttention(embed_dims=embed_dims, num_heads=num_heads, num_levels=4,
                                         num_points=num_points, batch_first=True, dropout=0.)
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=std)
    torch.nn.init.normal_(attn.attention_weights.weight, std=std)
    _, shapes, starts, _, _ = _inputs(1, 1, 1, 1, 1)
    query = torch.randn(2, num_queries, embed_dims)
    value = torch.randn(2, int((shapes[:, 0] * shapes[:, 1]).sum()), embed_dims)
    return attn, query, dict(value=value, reference_points=torch.rand(2, num_queries, 4, 2), spatial_shapes=shapes,
                             level_start_index=starts)


def test_mmcv_module_through_the_function(monkeypatch):
    """mmcv's ``MultiScaleDeformableAttention`` routed through the Function (the path CUDA tensors take) equals its
    own CPU path, output and parameter gradients."""
    import mmcv.ops.multi_scale_deform_attn as mmcv_msda

    attn, query, kwargs = _mmcv_attention(embed_dims=32, num_heads=4, num_points=2, num_queries=30, std=0.5, seed=0)
    starts = kwargs['level_start_index']

    def run():
        out = attn(query, **kwargs)
        return (out, *torch.autograd.grad(out.square().sum(), list(attn.parameters())))

    expected = run()
    monkeypatch.setattr(mmcv_msda, 'multi_scale_deformable_attn_pytorch',
                        lambda v, s, loc, w: MultiScaleDeformableAttnFunction.apply(v, s, starts, loc, w, 64))
    for a, b in zip(run(), expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * (b.abs().max().item() + 1))


def test_triton_kernels_match_reference_in_interpreter(interpreter):
    """Odd shapes: 4 unequal non-square levels, 1200 queries, 3 heads of 8 channels, 3 points, points off the map."""
    value, shapes, starts, loc, weights = _inputs(1, 1200, 3, 8, 3, seed=1)
    outside = ((loc < 0) | (loc > 1)).any(-1)
    assert 0.2 < outside.float().mean() < 0.6
    grad_out = torch.randn(1, 1200, 24)
    assert op._use_triton(value)
    cfg = op._choose(value, loc, op._tune_key(value, shapes, loc), 'fwd', lambda cfg: None)
    assert cfg == op.interpreter_config(1200)  # off CUDA the tuner returns the interpreter's config, untimed
    fused = (op.ms_deform_attn_forward(value, shapes, starts, loc, weights),
             *op.ms_deform_attn_backward(value, shapes, starts, loc, weights, grad_out))
    ref = _grads(lambda v, s, w: multi_scale_deformable_attn_pytorch(v, shapes, s, w), value, loc, weights,
                 grad_out)
    _assert_close(fused, ref, rtol=1e-4, atol_scale=1e-5)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=str)
def test_triton_kernels_half_precision_in_interpreter(interpreter, dtype):
    """Half-precision tensors: fp32 accumulation (value gradient in an fp32 buffer), one rounding per output."""
    value, shapes, starts, loc, weights = _inputs(1, 40, 2, 4, 2, seed=2)
    value, loc, weights = value.to(dtype), loc.to(dtype), weights.to(dtype)
    grad_out = torch.randn(1, 40, 8).to(dtype)
    cfg = op.AttnConfig(32, 1)  # two query blocks, the second partly masked
    fused = (op._fused_forward(value, shapes, starts, loc, weights, cfg),
             *op._fused_backward(value, shapes, starts, loc, weights, grad_out, cfg))
    assert all(t.dtype == dtype for t in fused)
    ref = _grads(lambda v, s, w: multi_scale_deformable_attn_pytorch(v, shapes, s, w), value.float(), loc.float(),
                 weights.float(), grad_out.float())
    _assert_close([t.float() for t in fused], ref, rtol=2e-2, atol_scale=2e-2)


def test_autotuner_keeps_reference_when_kernels_are_slower(interpreter):
    """The token mixer's rule: time every candidate on the real inputs and keep the fastest correct one, the
    reference included (here a timer that makes every kernel config slower)."""
    from mmext.ops.autotune import REFERENCE, Autotuner, set_autotuner

    value, shapes, starts, loc, weights = _inputs(1, 20, 1, 4, 1, levels=[(3, 5), (2, 2)], seed=3)
    timed = []

    def timer(name, fn, device):
        fn()
        timed.append(name)
        return 1. if name == REFERENCE else 2.

    previous = set_autotuner(Autotuner(timer=timer, devices=('cpu',), cache_dir=''))
    try:
        out = op.ms_deform_attn_forward(value, shapes, starts, loc, weights)
        from mmext.ops import autotune_table
        (entry,) = autotune_table()
    finally:
        set_autotuner(previous)
    assert entry['choice'] == REFERENCE and entry['key'].startswith('ms_deform_attn|cpu|float32|')
    assert set(timed) == {REFERENCE, *(c.name for c in op.tuning_space('fwd')), op.interpreter_config(20).name}
    torch.testing.assert_close(out, multi_scale_deformable_attn_pytorch(value, shapes, loc, weights))


def test_bad_shapes_name_the_culprit():
    value, shapes, starts, loc, weights = _inputs(1, 5, 2, 4, 2)
    wrong = torch.tensor([(13, 17), (7, 9), (4, 5), (2, 2)])
    with pytest.raises(ValueError, match=r'value has 310 keys but spatial_shapes .* cover 308'):
        op.ms_deform_attn_forward(value, wrong, starts, loc, weights)
    with pytest.raises(ValueError, match='sampling_locations must be'):
        op.ms_deform_attn_forward(value, shapes, starts, loc[..., :1], weights)


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_cuda_every_tuning_config_matches_reference(dtype):
    """Every config the autotuner may pick, whatever it picks on this GPU: Deformable DETR's 8 heads of 32 channels,
    4 odd levels, 4 points, a query count no block size divides."""
    value, shapes, starts, loc, weights = _inputs(2, 1111, 8, 32, 4, seed=5)
    value, shapes, starts, loc, weights = (t.cuda() for t in (value, shapes, starts, loc, weights))
    value, loc, weights = value.to(dtype), loc.to(dtype), weights.to(dtype)
    grad_out = torch.randn(2, 1111, 256, device='cuda').to(dtype)
    ref = (op.ms_deform_attn_reference(value, shapes, starts, loc, weights),
           *op._reference_backward(value, shapes, starts, loc, weights, grad_out))
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    configs = {*op.tuning_space('fwd'), *op.tuning_space('bwd')}
    assert configs
    for cfg in sorted(configs, key=lambda c: c.name):
        fused = (op._fused_forward(value, shapes, starts, loc, weights, cfg),
                 *op._fused_backward(value, shapes, starts, loc, weights, grad_out, cfg))
        for name, a, b in zip(('output', 'grad_value', 'grad_locations', 'grad_weights'), fused, ref, strict=True):
            assert a.dtype == b.dtype, name
            torch.testing.assert_close(a.float(), b.float(), rtol=tol, atol=tol * b.float().abs().max().item(),
                                       msg=lambda m, cfg=cfg, name=name: f'{cfg.name} {name}: {m}')


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16], ids=str)
def test_cuda_mmcv_module_matches_cpu(dtype):
    """mmcv's MultiScaleDeformableAttention on CUDA (the ext-op path, autotuned) against the same module on CPU
    (its PyTorch path, fp32): output and parameter gradients, the CUDA run under bf16 autocast for bf16."""
    attn, query, kwargs = _mmcv_attention(embed_dims=256, num_heads=8, num_points=4, num_queries=500, std=0.05,
                                          seed=6)

    def run(device, autocast):
        module = attn.to(device)
        with torch.autocast(device, dtype, enabled=autocast):
            out = module(query.to(device), **{k: v.to(device) for k, v in kwargs.items()})
        grads = torch.autograd.grad(out.float().square().sum(), list(module.parameters()))
        return [out.float().cpu(), *(g.float().cpu() for g in grads)]

    expected = run('cpu', autocast=False)
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    for a, b in zip(run('cuda', autocast=dtype != torch.float32), expected, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item())
