"""The token mixer's per-device selection, driven on CPU by an injected timer."""
import json
import math

import pytest
import torch

from mmext.ops import Autotuner, autotune_table, get_autotuner, inception_dwconv, inception_dwconv_reference
from mmext.ops import autotune as autotune_module
from mmext.ops.autotune import REFERENCE, tuning_blocked
from mmext.ops.mixer_configs import TileConfig, interpreter_config, tuning_space

CPU = torch.device('cpu')


class TableTimer:
    """Runs each candidate for real and reports the time set for its name (default: 1 ms)."""

    def __init__(self, times):
        self.times, self.calls = times, []

    def __call__(self, name, fn, device):
        fn()
        self.calls.append(name)
        return self.times.get(name, 1.0)


def _candidates(x):
    return {REFERENCE: lambda: x * 2, 'a': lambda: x + x, 'b': lambda: x * 2.0, 'bad': lambda: x * 3}


def _close(out, ref):
    return torch.allclose(out, ref)


def test_selects_fastest_correct_candidate_once_per_key_and_direction():
    timer = TableTimer({REFERENCE: 2.0, 'a': 1.5, 'b': 0.5, 'bad': 0.1})
    tuner = Autotuner(timer=timer, devices=('cpu',), cache_dir='')
    x = torch.randn(4)
    assert tuner.select('k1', 'fwd', _candidates(x), CPU, default='a', check=_close) == 'b'
    assert 'bad' not in timer.calls  # wrong result: never timed, never chosen
    assert tuner.select('k1', 'fwd', _candidates(x), CPU, default='a', check=_close) == 'b'
    assert timer.calls.count('b') == 1  # cached in-process
    timer.times['b'] = 9.0
    assert tuner.select('k1', 'bwd', _candidates(x), CPU, default='a', check=_close) == 'a'  # chosen apart
    (entry,) = [e for e in tuner.table() if e['direction'] == 'fwd']
    assert entry['choice'] == 'b' and entry['rejected'] == {'bad': 'mismatch'} and math.isinf(entry['ms']['bad'])


def test_reference_wins_ties_and_when_faster_and_failures_are_skipped():
    def broken():
        raise RuntimeError('out of resources')

    timer = TableTimer({REFERENCE: 1.0, 'a': 1.0})
    tuner = Autotuner(timer=timer, devices=('cpu',), cache_dir='')
    x = torch.ones(3)
    cands = {REFERENCE: lambda: x, 'a': lambda: x, 'broken': broken}
    assert tuner.select('k', 'fwd', cands, CPU, default='a', check=_close) == REFERENCE
    assert tuner.table()[0]['rejected'] == {'broken': 'error: RuntimeError'}
    with pytest.raises(ValueError, match='reference'):
        tuner.select('k2', 'fwd', {'a': lambda: x}, CPU, default='a')


def test_untimed_paths_return_default_without_caching():
    timer = TableTimer({})
    x = torch.ones(2)
    off = Autotuner(timer=timer, devices=('cpu',), enabled=False, cache_dir='')
    cuda_only = Autotuner(timer=timer, devices=('cuda',), cache_dir='')
    for tuner in (off, cuda_only):
        assert tuner.select('k', 'fwd', _candidates(x), CPU, default='a') == 'a'
        assert tuner.table() == []
    assert timer.calls == []


def test_disk_cache_round_trip(tmp_path):
    x = torch.randn(5)
    first = Autotuner(timer=TableTimer({'a': 0.1}), devices=('cpu',), cache_dir=str(tmp_path))
    assert first.select('k', 'fwd', _candidates(x), CPU, default='b', check=_close) == 'a'
    (path,) = tmp_path.glob('inception_dwconv_*.json')
    assert 'torch' in path.name and 'triton' in path.name
    assert json.loads(path.read_text()) == {'k': {'fwd': 'a'}}

    def no_timing(*args):
        raise AssertionError('a cached key must not be timed')

    second = Autotuner(timer=no_timing, devices=('cpu',), cache_dir=str(tmp_path))
    assert second.select('k', 'fwd', _candidates(x), CPU, default='b') == 'a'
    assert second.table()[0]['source'] == str(path)
    # a stored choice that is no longer a candidate (tuning space changed) is measured again
    third = Autotuner(timer=TableTimer({}), devices=('cpu',), cache_dir=str(tmp_path))
    assert third.select('k', 'fwd', {REFERENCE: lambda: x, 'c': lambda: x}, CPU, default='c') == REFERENCE


def test_choice_is_logged_once(monkeypatch):
    messages = []
    monkeypatch.setattr(autotune_module, '_log', lambda msg, level=20: messages.append((level, msg)))
    tuner = Autotuner(timer=TableTimer({'a': 0.1}), devices=('cpu',), cache_dir='')
    x = torch.randn(2)
    for _ in range(3):
        tuner.select('shape-key', 'fwd', _candidates(x), CPU, default='a', check=_close)
    assert len(messages) == 1 and messages[0][0] == 20 and 'chose a' in messages[0][1]
    assert 'shape-key' in messages[0][1]


def test_no_timing_while_torch_compile_traces():
    assert tuning_blocked() is None

    @torch.compile(backend='eager', fullgraph=True)
    def traced(x):
        return x + (1. if tuning_blocked() is not None else 0.)

    assert traced(torch.zeros(2)).tolist() == [1., 1.]


def test_tuning_space_fits_channel_width():
    full = tuning_space(True)
    narrow = tuning_space(True, gc=12)
    assert all(cfg.block_c <= 16 for cfg in narrow) and len(narrow) <= len(full)
    assert all(cfg.block_s * cfg.block_c in {c.block_s * c.block_c for c in full} for cfg in narrow)
    assert len(set(narrow)) == len(narrow) and tuning_space(False, gc=96) == tuning_space(False)
    assert TileConfig(64, 16).name == 's64_c16_w4_st1_t4'


def test_op_uses_the_measured_choice(monkeypatch):
    """End to end on the interpreter: the op times real candidates and runs the one the timer makes fastest."""
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    torch.manual_seed(0)
    x = torch.randn(1, 16, 5, 6)
    gc = 2
    params = [torch.randn(s) for s in [(gc, 1, 3, 3), (gc,), (gc, 1, 1, 11), (gc,), (gc, 1, 11, 1), (gc,)]]
    small = interpreter_config(gc).name
    timer = TableTimer({REFERENCE: 2.0, small: 1.0})
    tuner = Autotuner(timer=timer, devices=('cpu',), cache_dir='')
    previous = autotune_module.set_autotuner(tuner)
    try:
        # time the reference and the interpreter's small config only (the full space is slow in the interpreter)
        monkeypatch.setattr('mmext.ops.token_mixer._configs', lambda x, gc: {})
        y = inception_dwconv(x, *params)
        assert sorted(timer.calls) == sorted([REFERENCE, small])
        assert get_autotuner() is tuner
        (entry,) = autotune_table()
        assert entry['choice'] == small and entry['direction'] == 'fwd'
        assert entry['key'].startswith('cpu|float32/float32|contiguous|1x16x5x6|g2|k3b11')
        torch.testing.assert_close(y, inception_dwconv_reference(x, *params), rtol=1e-5, atol=1e-5)
    finally:
        autotune_module.set_autotuner(previous)
