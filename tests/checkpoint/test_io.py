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


def _seed_download_cache(url: str, hub_dir, state: dict) -> None:
    """Put ``state`` where :func:`mmext.checkpoint.io._download` caches ``url`` (one folder per URL under torch's
    hub dir), so the name resolves offline exactly as it would after a first download."""
    import hashlib
    from urllib.parse import urlparse

    folder = hub_dir / 'checkpoints' / 'mmext' / hashlib.sha256(url.encode()).hexdigest()[:16]
    folder.mkdir(parents=True)
    torch.save(state, folder / os.path.basename(urlparse(url).path))


@pytest.mark.parametrize('name, table', [('open-mmlab://resnet50_v1c', 'get_external_models'),
                                         ('torchvision://resnet50', 'get_torchvision_models')])
def test_openmmlab_model_names_resolve_through_mmengine_tables(name, table, tmp_path, monkeypatch):
    from mmengine.runner import checkpoint as mm_checkpoint

    url = getattr(mm_checkpoint, table)()[name.split('://', 1)[1]]
    assert url.startswith('https://')  # mmengine's own table, as installed
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    _seed_download_cache(url, tmp_path / 'hub', {'conv1.weight': torch.full((2,), 3.)})
    assert read_checkpoint(name)['conv1.weight'].tolist() == [3., 3.]
    with pytest.raises(CheckpointError, match=r"open-mmlab://no_such_net: mmengine knows no open-mmlab:// model "
                                              r"named 'no_such_net'"):
        read_checkpoint('open-mmlab://no_such_net')


BARRIER_WORKER = r'''
import json, os, sys
import torch
import torch.distributed as dist

rank, out_dir, src_url, missing_url = int(sys.argv[1]), *sys.argv[2:5]
dist.init_process_group('gloo', init_method='file://' + os.path.join(out_dir, 'rendezvous'), rank=rank, world_size=2)
from mmengine.dist.utils import init_local_group
init_local_group(node_rank=0, num_gpus_per_node=2)
torch.hub.set_dir(os.path.join(out_dir, 'hub'))
from mmext.checkpoint import io as ckpt
original = torch.hub.download_url_to_file
def counted(url, dst, *args, **kwargs):  # the real download, logged
    with open(os.path.join(out_dir, 'downloads.log'), 'a') as f:
        f.write(f'{rank} {url}\n')
    return original(url, dst, *args, **kwargs)
torch.hub.download_url_to_file = counted
result = dict(path=ckpt._download(src_url))
try:
    ckpt._download(missing_url)
except ckpt.CheckpointError as e:
    result['error'] = str(e)
dist.barrier()
with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
    json.dump(result, f)
dist.destroy_process_group()
'''


@pytest.mark.slow
def test_download_barrier_two_ranks(tmp_path):
    """A 2-process gloo group on CPU: local rank 0 alone downloads, the other rank waits and then reads the same file; a
    failed download raises on both ranks (none is left waiting at the barrier)."""
    import json
    import subprocess
    import sys

    src = tmp_path / 'inceptionnext_atto.pth'
    torch.save({'stem.0.weight': torch.ones(2)}, src)
    missing = (tmp_path / 'missing.pth').as_uri()
    (tmp_path / 'worker.py').write_text(BARRIER_WORKER)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    ranks = [subprocess.Popen([sys.executable, str(tmp_path / 'worker.py'), str(rank), str(tmp_path), src.as_uri(),
                               missing], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]  # the two ranks of one node, started side by side
    for proc in ranks:
        output = proc.communicate(timeout=240)[0]
        assert proc.returncode == 0, output[-3000:]
    results = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1)]
    assert results[0]['path'] == results[1]['path'] and results[0]['path'].startswith(str(tmp_path / 'hub'))
    downloads = (tmp_path / 'downloads.log').read_text().splitlines()
    assert downloads == [f'0 {src.as_uri()}', f'0 {missing}']  # rank 0 only, once per URL
    assert 'could not download checkpoint' in results[0]['error'] and 'missing.pth' in results[0]['error']
    assert 'could not download checkpoint' in results[1]['error'] and 'the download on this node failed' in \
        results[1]['error']
