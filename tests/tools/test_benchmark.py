"""tools/benchmark.py and mmext.analysis.benchmark on CPU with tiny inputs (the numbers themselves are not checked)."""
import json

import pytest

from mmext.analysis import benchmark as bench


def _check_result(r):
    assert 'skipped' not in r, r
    assert r['img_per_s'] > 0 and r['img_per_s_min'] <= r['img_per_s'] <= r['img_per_s_max']
    assert r['ms_per_step'] > 0 and r['repeats'] == 2


def test_run_cases_side_by_side():
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



def _row(model, img_per_s, **settings):
    case = bench.Case(model, **settings)
    return dict(model=model, img_per_s=img_per_s, deploy=case.deploy,
                **dict(zip(('protocol', 'mode', 'batch_size', 'img_size', 'dtype', 'channels_last', 'compile'),
                           case.settings())))


def test_ratios_pair_rows_with_the_same_settings_only():
    """Hand-made rows: each ratio divides by the ConvNeXt-T (or eager NCHW timm) row of the same settings."""
    rows = [_row('convnext_t', 100.), _row('convnext_t', 40., dtype='bf16'),
            _row('convnext_t', 1000., mode='infer', deploy=True),  # a folded baseline is no baseline
            _row('inceptionnext_t', 150.), _row('inceptionnext_t', 60., dtype='bf16'),
            _row('inceptionnext_t', 90., channels_last=True), _row('inceptionnext_t', 300., mode='infer'),
            _row('timm_inception_next_t', 120.),
            {k: v for k, v in _row('convnext_t', 0., img_size=512).items() if k != 'img_per_s'}]
    bench.add_ratios(rows)
    ratios = [r['ratio_to_convnext_t'] for r in rows[:8]]
    assert [None if x is None else round(x, 6) for x in ratios] == [1., 1., None, 1.5, 1.5, None, None, 1.2]
    assert rows[3]['ratio_to_timm_eager'] == pytest.approx(150 / 120)
    assert rows[5]['ratio_to_timm_eager'] == pytest.approx(90 / 120)  # channels_last vs timm's eager NCHW
    assert rows[4]['ratio_to_timm_eager'] is None  # no bf16 timm row
    assert rows[8]['ratio_to_convnext_t'] is None  # a skipped case (no img_per_s)


def test_upernet_segmentor_train_step(repo_root):
    case = bench.Case('upernet_t', 'dense', 'train', 2, 32)
    model = bench.build_model(case, repo_root)
    assert type(model).__name__ == 'EncoderDecoder' and not model.backbone.out_norms['0'].__class__.__name__ \
        .startswith('Sync')
    result, = bench.run_cases([case], device='cpu', warmup=1, repeats=1, steps=1, repo_root=repo_root)
    assert result['img_per_s'] > 0 and result['repeats'] == 1


def test_cli_json_and_errors(tmp_path, load_tool, capsys):
    cli = load_tool('tools/benchmark.py')
    out = tmp_path / 'bench.json'
    argv = ['--device', 'cpu', '--protocol', 'dense', '--mode', 'infer', '--batch-size', '1', '--img-size', '32',
            '--models', 'convnext_t', 'inceptionnext_t', '--deploy', '--warmup', '1', '--repeats', '2', '--steps',
            '1', '--mixer', '--mixer-shape', '1', '16', '8', '8', '--json', str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'inceptionnext_t | dense | infer | 1@32 | fp32+deploy |' in printed and 'memory floor' in printed
    saved = json.loads(out.read_text())
    assert saved['environment']['torch'] and len(saved['results']) == 2
    assert saved['results'][1]['deploy'] and not saved['results'][0]['deploy']  # --deploy skips timm models
    assert [m['path'] for m in saved['mixer']] == ['reference', 'reference']  # no fused path on CPU
    assert cli.main(['--device', 'cpu', '--models', 'upernet_t', '--protocol', 'paper']) == 1
    assert 'dense protocol only' in capsys.readouterr().err


def test_presets_cover_the_matrix():
    cases, kwargs = bench.preset_cases('gpu')
    assert kwargs['device'] == 'cuda' and kwargs['budget_s'] < 480
    models = {c.model for c in cases}
    assert models == set(bench.MODELS) - set(bench.VARIANT_GROUP)  # the paper variants have their own preset
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
    with pytest.raises(ValueError, match='unknown preset'):
        bench.preset_cases('tpu')


@pytest.mark.parametrize('case, match', [
    (bench.Case('inceptionnext_t', mode='train', deploy=True), 'inference only'),
    (bench.Case('vit_b'), 'unknown model'),
    (bench.Case('convnext_t', dtype='fp16'), 'dtype'),
])
def test_invalid_cases(case, match):
    with pytest.raises(ValueError, match=match):
        bench.run_cases([case], device='cpu')
