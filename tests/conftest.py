"""Shared fixtures. Importing mmext here installs the mmcv-lite stand-in before any test imports mmseg/mmdet."""
import os
from pathlib import Path

import pytest
import torch

import mmext  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
ADE20K_SAMPLES = Path(os.environ.get(
    'MMEXT_ADE20K_SAMPLES', REPO_ROOT.parent / 'shared' / 'data' / 'ade20k_devkit_samples')) / 'ADEChallengeData2016'

if os.environ.get('PYTEST_XDIST_WORKER'):
    torch.set_num_threads(1)  # two xdist workers share CI's two cores


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def ade20k_samples() -> Path:
    """``data_root`` of the three real ADE20K validation samples (``../shared/data/ade20k_devkit_samples``)."""
    if not (ADE20K_SAMPLES / 'images' / 'validation').is_dir():
        pytest.skip(f'real ADE20K samples not found at {ADE20K_SAMPLES} (set MMEXT_ADE20K_SAMPLES); '
                    'CI always has them beside the clone')
    return ADE20K_SAMPLES


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'gpu' in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
