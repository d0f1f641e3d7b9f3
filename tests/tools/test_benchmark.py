"""tools/benchmark.py and tools/gpu_check.py on CPU with tiny inputs (the numbers themselves are not checked)."""
import json

import pytest
import torch

from mmext.apis.precision import precision_support

# a small arch for upernet_t (--cfg-options): what these tests check does not depend on the width
SMALL = {'model.backbone.arch': dict(_delete_=True, depths=(1, 1, 1, 1), dims=(16, 32, 64, 128),
                                     mlp_ratios=(2, 2, 2, 2)),
         'model.decode_head.in_channels': [16, 32, 64, 128], 'model.decode_head.channels': 16,
         'model.auxiliary_head.in_channels': 64, 'model.auxiliary_head.channels': 16}


@pytest.fixture(scope='module')
def bench(load_tool):
    return load_tool('tools/benchmark.py')


def _check_result(r):
    assert 'skipped' not in r, r
    assert r['img_per_s'] > 0 and r['img_per_s_min'] <= r['img_per_s'] <= r['img_per_s_max']
    assert r['ms_per_step'] > 0 and r['repeats'] == 2


def test_run_cases_side_by_side(bench):
    cases = [bench.Case('convnext_t', 'paper', 'infer', 1, 32),
             bench.Case('inceptionnext_t', 'paper', 'infer', 1, 32, deploy=True),
             bench.Case('inceptionnext_t_free_mixer', 'dense', 'train', 2, 32, channels_last=True)]
    logged = []
    results = bench.run_cases(cases, device='cpu', warmup=1, repeats=2, steps=1, log=logged.append)
    assert [r['label'] for r in results] == [c.label() for c in cases]
    for r in results:
        _check_result(r)
    assert results[1]['ratio_to_convnext_t'] == pytest.approx(results[1]['img_per_s'] / results[0]['img_per_s'])
    assert results[2]['ratio_to_convnext_t'] is None  # no ConvNeXt-T with the same settings
    assert any('repeat 2/2' in m for m in logged)
    table = bench.format_table(results)
    assert table.count('\n') == len(cases) + 1 and '| 1.00x |' in table


def _row(bench, model, img_per_s, **settings):
    case = bench.Case(model, **settings)
    return dict(model=model, img_per_s=img_per_s, deploy=case.deploy,
                **dict(zip(('protocol', 'mode', 'batch_size', 'img_size', 'dtype', 'channels_last', 'compile'),
                           case.settings())))


def test_ratios_pair_rows_with_the_same_settings_only(bench):
    """Hand-made rows: each ratio divides by the ConvNeXt-T (or eager NCHW timm) row of the same settings."""
    rows = [_row(bench, 'convnext_t', 100.), _row(bench, 'convnext_t', 40., dtype='bf16'),
            _row(bench, 'convnext_t', 1000., mode='infer', deploy=True),  # a folded baseline is no baseline
            _row(bench, 'inceptionnext_t', 150.), _row(bench, 'inceptionnext_t', 60., dtype='bf16'),
            _row(bench, 'inceptionnext_t', 90., channels_last=True), _row(bench, 'inceptionnext_t', 300., mode='infer'),
            _row(bench, 'timm_inception_next_t', 120.),
            {k: v for k, v in _row(bench, 'convnext_t', 0., img_size=512).items() if k != 'img_per_s'}]
    bench.add_ratios(rows)
    ratios = [r['ratio_to_convnext_t'] for r in rows[:8]]
    assert [None if x is None else round(x, 6) for x in ratios] == [1., 1., None, 1.5, 1.5, None, None, 1.2]
    assert rows[3]['ratio_to_timm_eager'] == pytest.approx(150 / 120)
    assert rows[5]['ratio_to_timm_eager'] == pytest.approx(90 / 120)  # channels_last vs timm's eager NCHW
    assert rows[4]['ratio_to_timm_eager'] is None  # no bf16 timm row
    assert rows[8]['ratio_to_convnext_t'] is None  # a skipped case (no img_per_s)


def test_upernet_segmentor_train_step(bench, repo_root):
    case = bench.Case('upernet_t', 'dense', 'train', 2, 32)
    model = bench.build_model(case, repo_root, SMALL)
    assert type(model).__name__ == 'EncoderDecoder' and not model.backbone.out_norms['0'].__class__.__name__ \
        .startswith('Sync')
    result, = bench.run_cases([case], device='cpu', warmup=1, repeats=1, steps=1, repo_root=repo_root,
                               cfg_options=SMALL)
    assert result['img_per_s'] > 0 and result['repeats'] == 1


@pytest.mark.slow
def test_segmentor_inference_forms_and_onnxruntime_int8(bench, repo_root):
    """The cpu-seg rows at a small size on the small arch: PyTorch through apply_inference_options
    (bf16 + deploy + channels_last), onnxruntime's int8 graph; then the limits and the table."""
    base = dict(protocol='dense', mode='infer', batch_size=1, img_size=64)
    cases = [bench.Case('upernet_t', **base),
             bench.Case('upernet_t', dtype='bf16', deploy=True, channels_last=True, **base),
             bench.Case('upernet_t', dtype='int8', backend='onnxruntime', deploy=True, **base)]
    if precision_support('bf16', 'cpu'):
        cases.pop(1)  # this CPU runs bf16 emulated; the tool refuses it (tested in test_invalid_cases)
    results = bench.run_cases(cases, device='cpu', warmup=1, repeats=1, steps=1, repo_root=repo_root,
                              calib=bench.calibration_images(None, 1, 64), cfg_options=SMALL)
    assert all(r['img_per_s'] > 0 for r in results)
    peaks = {'fp32': 100e9, 'bf16': 200e9, 'int8': 400e9}
    bench.add_limits(results, peaks, macs={'upernet_t': 10**9})
    assert results[0]['ratio_to_fp32_eager'] == 1.
    int8 = results[-1]
    assert int8['limit_img_per_s'] == pytest.approx(400e9 / 2e9)
    assert int8['fraction_of_limit'] == pytest.approx(int8['img_per_s'] / 200)
    table = bench.format_seg_table(results, peaks)
    assert '| upernet_t | int8+deploy+onnxruntime | 1.0 |' in table and '| 1.00x |' in table
    assert 'int8 400 GFLOP/s' in table


def test_mmseg_convnext_upernet_builds_from_mmsegs_own_config(bench):
    model = bench.build_model(bench.Case('mmseg_upernet_convnext_t', 'dense', 'infer', 1, 64))
    assert type(model).__name__ == 'EncoderDecoder' and type(model.decode_head).__name__ == 'UPerHead'
    assert type(model.backbone).__name__ == 'TIMMBackbone'
    assert model.backbone.timm_model.pretrained_cfg['architecture'] == 'convnext_tiny'
    assert model.cfg.filename.endswith(bench.MMSEG_CONVNEXT_CONFIG)


def test_gemm_peaks_run_for_every_arithmetic(bench):
    for dtype in ('fp32', 'bf16', 'int8'):
        assert bench.gemm_peak(dtype, size=64, repeats=1) > 0


def test_cli_json_and_errors(bench, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    argv = ['--protocol', 'dense', '--mode', 'infer', '--batch-size', '1', '--img-size', '32',
            '--models', 'convnext_t', 'inceptionnext_t', '--deploy', '--warmup', '1', '--repeats', '2', '--steps',
            '1', '--mixer', '--mixer-shape', '1', '16', '8', '8', '--json', str(out)]
    if torch.cuda.is_available():
        argv += ['--device', 'cpu']
    assert bench.main(argv) == 0  # no --device: CUDA when present, else the CPU
    printed = capsys.readouterr().out
    assert 'inceptionnext_t | dense | infer | 1@32 | fp32+deploy |' in printed and 'memory floor' in printed
    saved = json.loads(out.read_text())
    assert saved['environment']['torch'] and len(saved['results']) == 2
    assert saved['results'][1]['deploy'] and not saved['results'][0]['deploy']  # --deploy skips timm models
    assert [m['path'] for m in saved['mixer']] == ['reference', 'reference']  # no fused path on CPU
    assert bench.main(['--device', 'cpu', '--models', 'upernet_t', '--protocol', 'paper']) == 1
    assert 'dense protocol only' in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert bench.main(['--preset', 'gpu']) == 1
        assert 'CUDA is not available' in capsys.readouterr().err


def test_presets_cover_the_matrix(bench):
    cases, kwargs = bench.preset_cases('gpu')
    assert kwargs['device'] == 'cuda' and kwargs['budget_s'] < 480
    models = {c.model for c in cases}
    assert models == set(bench.MODELS) - set(bench.VARIANT_GROUP) - {'mmseg_upernet_convnext_t'}
    variants, _ = bench.preset_cases('gpu-variants')
    assert {c.model for c in variants} == set(bench.VARIANT_GROUP) != set()
    settings = {(c.protocol, c.mode, c.batch_size, c.img_size, c.dtype, c.channels_last, c.compile) for c in cases}
    assert ('paper', 'train', 128, 224, 'fp32', False, False) in settings
    assert ('paper', 'infer', 128, 224, 'bf16', True, True) in settings
    assert ('dense', 'train', 16, 512, 'bf16', True, False) in settings
    assert len(set(cases)) == len(cases)
    cpu, kwargs = bench.preset_cases('cpu-deploy')
    assert kwargs['device'] == 'cpu' and kwargs['interleave']
    assert {c.model for c in cpu} >= {'timm_inception_next_t', 'convnext_t', 'inceptionnext_t'}
    assert any(c.deploy and c.channels_last for c in cpu)
    assert all((c.protocol, c.mode, c.batch_size, c.img_size) == ('dense', 'infer', 1, 512) for c in cpu)
    seg, kwargs = bench.preset_cases('cpu-seg')
    assert kwargs['device'] == 'cpu' and kwargs['interleave']
    assert all((c.protocol, c.mode, c.batch_size, c.img_size) == ('dense', 'infer', 1, 512) for c in seg)
    assert seg[0] == bench.Case('upernet_t', 'dense', 'infer', 1, 512)  # the ratios' reference row
    rows = {(c.model, c.dtype, c.backend, c.compile) for c in seg}
    assert rows >= {('upernet_t', 'bf16', 'torch', False), ('upernet_t', 'bf16', 'torch', True),
                    ('upernet_t', 'fp32', 'onnxruntime', False), ('upernet_t', 'int8', 'onnxruntime', False),
                    ('mmseg_upernet_convnext_t', 'fp32', 'torch', False)}
    with pytest.raises(ValueError, match='unknown preset'):
        bench.preset_cases('tpu')


@pytest.mark.parametrize('case, match', [
    (dict(model='inceptionnext_t', mode='train', deploy=True), 'inference only'),
    (dict(model='vit_b'), 'unknown model'),
    (dict(model='convnext_t', dtype='fp16'), 'dtype fp16: .*AMX-FP16'),
    (dict(model='upernet_t', protocol='dense', dtype='int8'), 'onnxruntime backend only'),
    (dict(model='convnext_t', backend='onnxruntime'), 'segmentor inference at batch 1'),
])
def test_invalid_cases(bench, case, match):
    if 'fp16' in match and not precision_support('fp16', 'cpu'):
        pytest.skip('this CPU runs fp16 natively (AMX-FP16)')
    with pytest.raises(ValueError, match=match):
        bench.run_cases([bench.Case(**case)], device='cpu')


def test_gpu_check_shapes_table_and_cpu_exit(load_tool, monkeypatch, repo_root, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(repo_root / 'tools'))  # as when run: it imports its sibling benchmark.py
    check = load_tool('tools/gpu_check.py')
    shapes = check.stage_shapes(('dense',))
    assert shapes[0] == ('dense', 0, (16, 96, 128, 128)) and shapes[-1] == ('dense', 3, (16, 768, 16, 16))
    row = dict(kernel='inception_dwconv', setting='dense', stage=0, shape=[16, 96, 128, 128], dtype='bfloat16',
               channels_last=True, fused_ms=1., reference_ms=3., floor_ms=.5, fused_x_floor=2., speedup=3.)
    tuned = [dict(key='cuda|bfloat16/float32|channels_last|16x96x128x128|g12|k3b11', direction='fwd',
                  choice='s64c16')]
    assert '| inception_dwconv | dense | 1 | 16x96x128x128 | bfloat16 | channels_last | s64c16 |' in \
        check.format_table([row], tuned)
    if not torch.cuda.is_available():
        assert check.main(['--out', str(tmp_path)]) == 2
        assert 'needs a GPU' in capsys.readouterr().err
