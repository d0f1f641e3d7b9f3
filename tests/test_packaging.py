"""Packaging in one place: pyproject.toml's ranges hold the pinned lock (requirements.txt) CI installs, and the
optional [tensorboard] extra makes mmengine's TensorboardVisBackend work with the repository's configs."""
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text())


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / 'requirements.txt').read_text().splitlines():
        line = line.split('#')[0].strip()
        if line:
            name, version = line.split('==')
            pins[re.sub(r'[-_.]+', '-', name).lower()] = version
    return pins


def test_the_lock_satisfies_every_declared_range():
    pins = _lock()
    project = PYPROJECT['project']
    declared = list(project['dependencies'])
    for requirements in project['optional-dependencies'].values():
        declared += [r for r in requirements if not r.startswith('mmext[')]
    problems = []
    for text in declared:
        requirement = Requirement(text)
        name = re.sub(r'[-_.]+', '-', requirement.name).lower()
        if requirement.marker and not requirement.marker.evaluate():
            continue
        if name not in pins:
            problems.append(f'{name} is declared in pyproject.toml but not pinned in requirements.txt')
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f'requirements.txt pins {name}=={pins[name]} outside pyproject.toml\'s {text!r}')
    assert not problems, problems
    assert 'mmext' not in pins  # installed from the checkout, not from the lock


def test_python_range_is_the_tested_one():
    assert PYPROJECT['project']['requires-python'] == '>=3.11,<3.12'
    assert sys.version_info[:2] == (3, 11)
    assert 'target-version' not in PYPROJECT['tool']['ruff']  # ruff reads requires-python
    assert not (REPO_ROOT / 'setup.cfg').exists()  # one place for metadata


def test_tensorboard_vis_backend_writes_events(tmp_path):
    """The configs' visualizer (mmseg's SegLocalVisualizer) with mmengine's TensorboardVisBackend writes events."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import VISUALIZERS

    cfg = Config.fromfile(REPO_ROOT / 'configs' / 'demo' / 'upernet_inceptionnext_atto_synthetic.py')
    init_default_scope('mmseg')
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, name='tb_test', save_dir=str(tmp_path),
                                        vis_backends=[dict(type='TensorboardVisBackend')]))
    visualizer.add_scalars({'loss': 1.5}, step=1)
    visualizer.close()
    assert list(tmp_path.rglob('events.out.tfevents.*'))
