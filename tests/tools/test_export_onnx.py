"""tools/deploy/export_onnx.py: export the real Semantic FPN config (a one-block-per-stage backbone, order-1 random
weights, BatchNorms folded) and the tool's own onnxruntime-vs-PyTorch check on the three real ADE20K samples at
their native sizes; then the graph in :class:`mmext.apis.OnnxSegmentor` against :func:`inference_segmentor`."""
import re

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from mmext.apis import OnnxSegmentor, inference_segmentor, init_segmentor
from mmext.fileio import OutputPathError

FPN_OPTIONS = {'model.neck.out_channels': 16, 'model.decode_head.in_channels': [16] * 4,
               'model.decode_head.channels': 16}


@pytest.fixture(scope='module')
def export_tool(load_tool):
    return load_tool('tools/deploy/export_onnx.py')


@pytest.mark.slow
def test_deploy_export_matches_pytorch_at_native_sizes(export_tool, repo_root, ade20k_samples, randomise_weights,
                                                       tmp_path, capsys):
    config = tmp_path / 'fpn_small.py'  # the export's time grows with the backbone's block count
    config.write_text(f"_base_ = ['{repo_root / 'configs/fpn_inceptionnext_t_ade20k.py'}']\n"
                      f"model = dict(backbone=dict(arch=dict(_delete_=True, depths=(1, 1, 1, 1), "
                      f"dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2))), neck=dict(in_channels=[16, 32, 64, 128]))\n")
    model = randomise_weights(init_segmentor(config, cfg_options=FPN_OPTIONS), seed=1)
    checkpoint = tmp_path / 'fpn_small.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    images = sorted((ade20k_samples / 'images' / 'validation').glob('*.jpg'))
    tiny = tmp_path / 'tiny.png'  # below the network's minimum: reported by name, the other images still checked
    cv2.imwrite(str(tiny), np.full((8, 8, 3), 50, np.uint8))
    out = tmp_path / 'fpn.onnx'

    status = export_tool.main([str(config), str(checkpoint), '--out', str(out), '--shape', '128', '192', '--opset',
                               '18', '--deploy', '--check', str(tiny), *map(str, images),
                               '--cfg-options', *(f'{k}={v}'.replace(' ', '') for k, v in FPN_OPTIONS.items())])
    captured = capsys.readouterr()
    printed = captured.out
    assert status == 1, printed
    assert f'{tiny}: FAILED' in captured.err
    assert f'onnx {onnx.__version__}' in printed and f'onnxruntime {onnxruntime.__version__}' in printed
    for image, size in zip(images, ('683x512', '500x364', '400x300'), strict=True):
        line = next(line for line in printed.splitlines() if line.startswith(f'{image} {size} (w x h)'))
        diff, logit, agreement = map(float, re.search(
            r'max \|logit diff\| (\S+) \(max \|logit\| (\S+)\), argmax agreement (\S+)%', line).groups())
        assert diff < 1e-5 * logit + 1e-4 and agreement >= 99.9, line  # float32 rounding, not a bug
    graph = onnx.load(str(out))
    assert graph.opset_import[0].version == 18
    assert [o.name for o in graph.graph.output] == ['logits']

    # OnnxSegmentor: the test pipeline, the graph and the label map at the image's size, as inference_segmentor
    image = cv2.imread(str(images[1]))
    label_map = OnnxSegmentor(out, model.cfg)(image)
    assert label_map.shape == image.shape[:2] and (label_map == inference_segmentor(model, image)).mean() > 0.999


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
