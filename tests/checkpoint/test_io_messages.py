"""Checkpoint and input messages that say what is actually wrong (issue 12)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from mmext.apis.image_demo import output_names
from mmext.apis.inference import label_map_from_logits, load_image
from mmext.checkpoint import CheckpointError, UnsafeCheckpointError, check_finite_state_dict, read_checkpoint


def test_directory_as_checkpoint_or_image_is_named_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match='is a directory'):
        read_checkpoint(tmp_path)
    with pytest.raises(IsADirectoryError, match='is a directory'):
        load_image(tmp_path)


def test_numpy_state_dict_is_called_numpy(tmp_path):
    torch.save({'w': np.ones(3)}, tmp_path / 'np.pth')
    with pytest.raises(UnsafeCheckpointError, match='holds numpy arrays') as err:
        read_checkpoint(tmp_path / 'np.pth')
    assert 'WeightsOnlyCheckpointHook' not in str(err.value)


def test_torch_file_named_safetensors_is_read(tmp_path):
    torch.save({'w': torch.ones(2)}, tmp_path / 'model.safetensors')
    assert torch.equal(read_checkpoint(tmp_path / 'model.safetensors')['w'], torch.ones(2))


def test_non_finite_tensors_are_named():
    with pytest.raises(CheckpointError, match=r'2 tensor\(s\): a \(1 of 2\), c \(2 of 2\)'):
        check_finite_state_dict({'a': torch.tensor([1., float('nan')]), 'b': torch.ones(2),
                                 'c': torch.tensor([float('inf')] * 2)})


def test_same_stem_inputs_get_distinct_outputs():
    names = output_names([Path('x/rgba.jpg'), Path('x/rgba.png'), Path('x/b.png')], Path('out'))
    assert names == {Path('x/rgba.jpg'): Path('out/rgba_jpg.png'), Path('x/rgba.png'): Path('out/rgba_png.png'),
                     Path('x/b.png'): Path('out/b.png')}


@pytest.mark.parametrize('align_corners', [False, True])
def test_banded_label_map_equals_full_resize(align_corners):
    logits = torch.randn(20, 17, 23, generator=torch.Generator().manual_seed(0))
    full = torch.nn.functional.interpolate(logits[None], size=(121, 170), mode='bilinear',
                                           align_corners=align_corners)[0].argmax(0).numpy()
    banded = label_map_from_logits(logits, (121, 170), align_corners, max_tile_bytes=20 * 170 * 4 * 3 * 8)
    assert (banded == full).all()
