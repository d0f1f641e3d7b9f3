"""Config tests find their configs in ``configs/metafile.yaml`` (read by ``tools/misc/model_zoo.py``), never by glob.

A test that takes a ``zoo_model`` argument runs once per metafile model its module's ``select_models(model)`` keeps
(an empty selection fails); ``zoo`` is the metafile reader module, ``zoo_models`` every model; ``load_config`` a
config parsed once per session (a copy per call: parsing resolves ``mmseg::`` bases and takes most of a second).
"""
import copy
import functools
import importlib.util
from pathlib import Path

import pytest
from mmengine.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_model_zoo():
    path = REPO_ROOT / 'tools' / 'misc' / 'model_zoo.py'
    spec = importlib.util.spec_from_file_location('mmext_tools_model_zoo', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ZOO = _load_model_zoo()
MODELS = ZOO.load_models()


def pytest_generate_tests(metafunc):
    if 'zoo_model' in metafunc.fixturenames:
        select = getattr(metafunc.module, 'select_models', None)
        assert select is not None, f'{metafunc.module.__name__} takes zoo_model but defines no select_models(model)'
        models = [m for m in MODELS if select(m)]
        assert models, f'{metafunc.module.__name__}.select_models keeps no model of configs/metafile.yaml'
        metafunc.parametrize('zoo_model', models, ids=[m['Name'] for m in models])


@pytest.fixture(scope='session')
def zoo():
    return ZOO


@pytest.fixture(scope='session')
def zoo_models() -> list[dict]:
    return MODELS


@functools.cache
def _parsed(path: str) -> Config:
    return Config.fromfile(path)


@pytest.fixture(scope='session')
def load_config():
    """``load_config('configs/x.py')`` (relative to the repository, or absolute): a fresh copy of the parsed config."""
    def load(path) -> Config:
        return copy.deepcopy(_parsed(str(REPO_ROOT / path)))
    return load
