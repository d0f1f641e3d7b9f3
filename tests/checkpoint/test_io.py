"""mmext.checkpoint.io: reading any supported file safely, downloads, and a clear error naming the file."""
import os
import pickle

import numpy as np
import pytest
import safetensors.torch
import torch

from mmext.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    check_weights_only_loadable,
    read_checkpoint,
    unsafe_globals,
)
from mmext.models import InceptionNeXt
from mmext.models.backbones.inceptionnext_weights import load_backbone_checkpoint


@pytest.mark.filterwarnings('ignore:Detected pickle protocol 4')  # torch's note on the plain pickle
@pytest.mark.parametrize('protocol', ['torch_zip', 'plain_pickle'])
def test_malicious_pickle_is_refused_without_running_it(protocol, tmp_path):
    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)

    path = tmp_path / 'inceptionnext_tiny.pth'
    if protocol == 'torch_zip':
        torch.save({'stem.0.weight': torch.zeros(1), 'x': Payload()}, path)
    else:
        path.write_bytes(pickle.dumps({'x': Payload()}, protocol=4))
    with pytest.raises(UnsafeCheckpointError) as info:
        load_backbone_checkpoint(InceptionNeXt('atto'), path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and 'posix.system' in message and 'Nothing from it was executed' in message
    assert 'posix.system' in unsafe_globals(path)


@pytest.mark.parametrize('protocol', [2, 4, 5])
def test_pickle_scan_names_exactly_what_a_file_imports(protocol, tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'posix': 'system', 'w': torch.ones(2)}, good, pickle_protocol=protocol)  # decoy strings
    assert unsafe_globals(good) == []  # torch's own rebuild functions are what weights_only allows
    check_weights_only_loadable(good)  # a pre-check must not block a good file
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(pickle.dumps(['posix', {'x': np.float64(1.0)}], protocol=protocol))
    assert set(unsafe_globals(bad)) == {'numpy._core.multiarray.scalar', 'numpy.dtype'}
    with pytest.raises(UnsafeCheckpointError, match='numpy'):
        check_weights_only_loadable(bad)


@pytest.mark.parametrize('kind', ['torch_truncated', 'safetensors_truncated', 'html', 'empty', 'text'])
def test_unreadable_files_raise_naming_the_file(kind, timm_atto_state_dict, tmp_path):
    if kind == 'torch_truncated':
        torch.save(timm_atto_state_dict, tmp_path / 'full.pth')
        full = (tmp_path / 'full.pth').read_bytes()
        path, data, match = tmp_path / 'cut.pth', full[:len(full) // 2], 'truncated or corrupt'
    elif kind == 'safetensors_truncated':
        safetensors.torch.save_file(timm_atto_state_dict, tmp_path / 'full.safetensors')
        full = (tmp_path / 'full.safetensors').read_bytes()
        path, data, match = tmp_path / 'cut.safetensors', full[:-100], 'truncated or corrupt'
    elif kind == 'html':
        path, data, match = tmp_path / 'model.pth', b'<!DOCTYPE html><title>404</title>', 'HTML'
    elif kind == 'empty':
        path, data, match = tmp_path / 'model.pth', b'', 'empty'
    else:
        path, data, match = tmp_path / 'model.pth', b'stem.0.weight 1 2 3\n', 'not a readable checkpoint'
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=match) as info:
        load_backbone_checkpoint(InceptionNeXt('atto'), path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        read_checkpoint(tmp_path / 'missing.pth')


def test_download_copies_once_and_names_a_failed_url(tmp_path, monkeypatch):
    """The URL path of the loader, exercised offline through a file:// URL."""
    from mmext.checkpoint import io as ckpt

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    src = tmp_path / 'inceptionnext_atto.pth'
    torch.save({'stem.0.weight': torch.ones(2)}, src)
    path = ckpt._download(src.as_uri())
    assert torch.load(path)['stem.0.weight'].sum().item() == 2
    src.unlink()
    assert ckpt._download(src.as_uri()) == path  # cached: no second download
    with pytest.raises(ckpt.CheckpointError, match='could not download checkpoint file://.*missing.pth'):
        ckpt._download((tmp_path / 'missing.pth').as_uri())
