"""``hf-hub:`` names resolved from a Hugging Face cache laid out as huggingface_hub lays it out, offline."""
import hashlib

import pytest
import torch
from safetensors.torch import save_file

from mmext.checkpoint import CheckpointError, read_checkpoint
from mmext.models.backbones import InceptionNeXt, load_backbone_checkpoint

REPO = 'timm/inception_next_atto.sail_in1k'
COMMIT = 'a' * 40


def _cache_repo(cache, files: dict[str, bytes]) -> None:
    """``models--owner--name/{refs/main, blobs/<sha256>, snapshots/<commit>/<file> -> ../../blobs/<sha256>}``."""
    root = cache / f"models--{REPO.replace('/', '--')}"
    (root / 'refs').mkdir(parents=True)
    (root / 'refs' / 'main').write_text(COMMIT)
    (root / 'blobs').mkdir()
    snapshot = root / 'snapshots' / COMMIT
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (root / 'blobs' / blob).write_bytes(data)
        (snapshot / name).symlink_to(f'../../blobs/{blob}')


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    return tmp_path / 'hub'


@pytest.fixture(scope='module')
def atto_state():
    import timm
    model = timm.create_model('inception_next_atto', pretrained=False)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def test_safetensors_preferred_and_loaded_strictly(offline_cache, atto_state, tmp_path):
    safe = tmp_path / 'model.safetensors'
    save_file(atto_state, safe)
    decoy = {k: torch.zeros_like(v) for k, v in atto_state.items()}
    bin_path = tmp_path / 'pytorch_model.bin'
    torch.save(decoy, bin_path)
    _cache_repo(offline_cache, {'model.safetensors': safe.read_bytes(), 'pytorch_model.bin': bin_path.read_bytes()})

    model = InceptionNeXt('atto', init_cfg=None)
    report = load_backbone_checkpoint(model, f'hf-hub:{REPO}')
    assert report.ok and len(report.head_keys) == 6
    assert '  format: safetensors file, plain state dict\n' in report.summary()
    torch.testing.assert_close(model.stem[0].weight, atto_state['stem.0.weight'])  # not the zero decoy


def test_bin_used_when_the_repo_has_no_safetensors(offline_cache, atto_state, tmp_path):
    bin_path = tmp_path / 'pytorch_model.bin'
    torch.save(atto_state, bin_path)
    _cache_repo(offline_cache, {'pytorch_model.bin': bin_path.read_bytes()})
    state = read_checkpoint(f'hf-hub:{REPO}@main')
    torch.testing.assert_close(state['stem.0.weight'], atto_state['stem.0.weight'])


def test_missing_from_offline_cache_and_bad_names_are_clear(offline_cache):
    with pytest.raises(CheckpointError, match=r'found none of model\.safetensors .* in timm/inception_next_atto'
                                              r'\.sail_in1k with HF_HUB_OFFLINE=1') as exc:
        read_checkpoint(f'hf-hub:{REPO}')
    # the CLI this huggingface_hub installs (hf since 0.34; huggingface-cli before)
    assert f'run once `hf download {REPO} model.safetensors`' in str(exc.value)
    with pytest.raises(CheckpointError, match='expected hf-hub:<owner>/<repo>'):
        read_checkpoint('hf-hub:inception_next_atto')
