"""tools/deploy/quantize.py and tools/analysis/precision_agreement.py in-process, on a tiny UperNet config with
order-1 random weights and the real ADE20K samples."""
import json

import onnx
import pytest
import torch

from mmext.apis import apply_inference_options, init_segmentor
from mmext.apis.precision import precision_support
from mmext.fileio import OutputPathError


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, write_tiny_seg_config, ade20k_samples, randomise_weights, load_tool):
    """``(config, checkpoint, exported fp32 deploy graph)`` of the tiny test-only config, the graph exported as
    precision_agreement.py exports it without ``--onnx`` (one export serves every test here: each takes seconds)."""
    folder = tmp_path_factory.mktemp('precision_tools')
    config = write_tiny_seg_config(folder / 'tiny.py', ade20k_samples, max_iters=None)
    model = randomise_weights(init_segmentor(config), seed=5)
    torch.save(dict(state_dict=model.state_dict(), meta={}), folder / 'tiny.pth')
    graph = load_tool('tools/analysis/precision_agreement.py').export_fp32(model, folder / 'tiny.onnx')
    assert onnx.load(str(graph)).graph.input[0].type.tensor_type.shape.dim[2].dim_param  # dynamic height
    return config, folder / 'tiny.pth', graph


@pytest.mark.slow
def test_quantize_tool_writes_int8_and_reports_agreement(tiny, load_tool, ade20k_samples, tmp_path, capsys):
    config, _, graph = tiny
    tool = load_tool('tools/deploy/quantize.py')
    images = ade20k_samples / 'images' / 'validation'
    out = tmp_path / 'tiny_int8.onnx'
    argv = [str(config), str(graph), '--calib-dir', str(images), '--calib-num', '2', '--out', str(out)]
    assert tool.main([*argv, '--min-agreement', '0']) == 0
    printed = capsys.readouterr().out
    assert 'calibrated on 2 images' in printed and printed.count('int8 vs float32 pixel agreement') == 2
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear', 'Conv'} <= ops
    assert tool.main([*argv, '--overwrite', '--min-agreement', '1.01', '--check', str(images)]) == 1
    assert capsys.readouterr().out.count('pixel agreement') == 3
    with pytest.raises(OutputPathError, match='--out'):
        tool.main([str(config), str(graph), '--calib-dir', str(images), '--out', str(graph)])


@pytest.mark.slow
def test_precision_agreement_tool_prints_agreement_and_miou(tiny, load_tool, ade20k_samples, tmp_path, capsys):
    config, checkpoint, graph = tiny
    tool = load_tool('tools/analysis/precision_agreement.py')
    out = tmp_path / 'agreement.json'
    argv = [str(config), str(checkpoint), '--images', str(ade20k_samples / 'images' / 'validation'),
            '--ann-dir', str(ade20k_samples / 'annotations' / 'validation'), '--precisions', 'bf16', 'int8',
            '--calib-num', '2', '--onnx', str(graph), '--json', str(out)]
    assert tool.main([*argv, '--min-agreement', '0']) == 0
    printed = capsys.readouterr().out
    assert '| precision | pixel agreement with fp32 | worst image | mIoU | mIoU - fp32 |' in printed
    rows = json.loads(out.read_text())['rows']
    assert [r['precision'] for r in rows] == ['fp32', 'bf16', 'int8']
    assert rows[0]['agreement'] == 1. and all(0 < r['agreement'] <= 1 for r in rows)
    assert all(r['worst_image'] <= r['agreement'] + 1e-12 for r in rows)
    assert all(r['miou'] is not None and 0 <= r['miou'] <= 100 for r in rows)
    assert len(rows[1]['per_image']) == 3
    assert tool.main([*argv[:-2], '--precisions', 'bf16', '--min-agreement', '1.01']) == 1  # no image reaches 101%
    with pytest.raises(FileNotFoundError, match='--onnx .*missing.onnx: no such file'):
        tool.main([*argv[:-4], '--onnx', str(tmp_path / 'missing.onnx')])
    with pytest.raises(OutputPathError, match='--json'):
        tool.main([*argv[:-2], '--json', str(checkpoint)])  # the report over the checkpoint: refused, before work
    assert checkpoint.stat().st_size > 1000


@pytest.mark.skipif(precision_support('bf16', 'cpu') is not None, reason='this CPU has no native bf16')
@pytest.mark.slow
def test_test_tool_runs_the_runner_in_bf16(tiny, load_tool, monkeypatch, tmp_path, capsys):
    """tools/test.py --precision bf16: the real Runner's test loop, with the options on the segmentor it built."""
    config, checkpoint, _ = tiny
    tool = load_tool('tools/test.py')
    applied = []

    def spy(model, options):
        applied.append(apply_inference_options(model, options))
        return model
    monkeypatch.setattr(tool, 'apply_inference_options', spy)
    monkeypatch.setattr('sys.argv', ['test.py', str(config), str(checkpoint), '--precision', 'bf16',
                                     '--work-dir', str(tmp_path)])
    tool.main()
    segmentor, = applied
    assert segmentor.inference_options.precision == 'bf16'
    assert type(segmentor.backbone.forward).__name__ == '_InferenceForward'
    assert 'mIoU' in capsys.readouterr().out + ''.join(p.read_text() for p in tmp_path.rglob('*.log'))
