"""tools/deploy/export_onnx.py: export the real Semantic FPN config (a one-block-per-stage backbone, random
weights), then the tool's own onnxruntime-vs-PyTorch check on a real ADE20K sample at its native size."""
import re

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest

from mmext.fileio import OutputPathError


@pytest.fixture(scope='module')
def export_tool(load_tool):
    return load_tool('tools/deploy/export_onnx.py')


@pytest.mark.slow
def test_export_prints_parity_and_versions(export_tool, repo_root, ade20k_samples, tmp_path, capsys):
    image = ade20k_samples / 'images' / 'validation' / 'ADE_val_00000003.jpg'  # the smallest, 400x300
    tiny = tmp_path / 'tiny.png'  # below the network's minimum: reported by name, the other image still checked
    cv2.imwrite(str(tiny), np.full((8, 8, 3), 50, np.uint8))
    out = tmp_path / 'fpn.onnx'
    config = tmp_path / 'fpn_small.py'  # the export's time grows with the backbone's block count
    config.write_text(f"_base_ = ['{repo_root / 'configs/fpn_inceptionnext_t_ade20k.py'}']\n"
                      f"model = dict(backbone=dict(arch=dict(_delete_=True, depths=(1, 1, 1, 1), "
                      f"dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2))), neck=dict(in_channels=[16, 32, 64, 128]))\n")
    status = export_tool.main([
        str(config), '--out', str(out), '--shape', '128', '192', '--opset', '18', '--check', str(tiny), str(image),
        '--cfg-options', 'model.neck.out_channels=16', 'model.decode_head.in_channels=[16,16,16,16]',
        'model.decode_head.channels=16'])
    captured = capsys.readouterr()
    printed = captured.out
    assert status == 1, printed
    assert f'{tiny}: FAILED' in captured.err
    assert f'onnx {onnx.__version__}' in printed and f'onnxruntime {onnxruntime.__version__}' in printed
    line = next(line for line in printed.splitlines() if line.startswith(f'{image} 400x300 (w x h)'))
    diff, agreement = re.search(r'max \|logit diff\| (\S+) .*argmax agreement (\S+)%', line).groups()
    assert float(diff) < 1e-3 and float(agreement) >= 99.9, line
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 18
    assert [o.name for o in model.graph.output] == ['logits']


def test_export_refuses_shape_below_minimum(export_tool, repo_root, tmp_path):
    with pytest.raises(ValueError, match='64'):
        export_tool.main([str(repo_root / 'configs/fpn_inceptionnext_t_ade20k.py'), '--out',
                          str(tmp_path / 'x.onnx'), '--shape', '32', '32', '--cfg-options', 'model.backbone.arch=atto',
                          'model.neck.in_channels=[40,80,160,320]'])


def test_out_over_the_checkpoint_is_refused(export_tool, repo_root, tmp_path):
    """BAD 6: ``--out <the checkpoint>`` replaced the checkpoint with the graph."""
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'the only copy of the weights')
    with pytest.raises(OutputPathError, match=f'--out {checkpoint} is the input CHECKPOINT'):
        export_tool.main([str(repo_root / 'configs/fpn_inceptionnext_t_ade20k.py'), str(checkpoint), '--out',
                          str(checkpoint)])
    assert checkpoint.read_bytes() == b'the only copy of the weights'


def test_failed_export_leaves_no_file(export_tool, repo_root, tmp_path):
    out = tmp_path / 'x.onnx'
    out.write_bytes(b'previous graph')
    with pytest.raises(ValueError, match='64'):  # fails inside the export, after the temporary name is handed out
        export_tool.main([str(repo_root / 'configs/fpn_inceptionnext_t_ade20k.py'), '--out', str(out), '--overwrite',
                          '--shape', '32', '32', '--cfg-options', 'model.backbone.arch=atto',
                          'model.neck.in_channels=[40,80,160,320]'])
    assert out.read_bytes() == b'previous graph' and [p.name for p in tmp_path.iterdir()] == ['x.onnx']
