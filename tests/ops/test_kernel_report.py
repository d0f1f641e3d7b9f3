"""The kernel report compiles the op's Triton kernels for sm_90 on CPU (no GPU) and finds no spills."""
import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip('triton')

from mmext.ops import kernel_report as kr  # noqa: E402
from mmext.ops.mixer_configs import tuning_space  # noqa: E402


def _tool():
    path = Path(__file__).resolve().parents[2] / 'tools/analysis/kernel_report.py'
    spec = importlib.util.spec_from_file_location('kernel_report_cli', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kernel_report_sm90_subset_has_no_spills(tmp_path, capsys):
    # one kernel of each body (forward, input gradient, weight gradient), each memory format's first config
    kernels = ['fwd_band_h', 'grad_input_band_w', 'grad_weight_square']
    out = tmp_path / 'report.json'
    rc = _tool().main(['--arch', '90', '--dtype', 'bf16', '--kernels', *kernels, '--max-configs', '1', '--workers', '2',
               '--json', str(out)])
    rows = json.loads(out.read_text())
    assert len(rows) == len(kernels) * 2
    assert {r['kernel'] for r in rows} == set(kernels) and {r['layout'] for r in rows} == {'channels_last',
                                                                                          'contiguous'}
    for r in rows:
        assert {'kernel', 'config', 'dtype', 'arch', 'registers', 'spill_bytes', 'shared_bytes'} <= r.keys()
        assert r['arch'] == 'sm_90' and r['dtype'] == 'bf16'
        assert 0 < r['registers'] <= 128, r
        assert r['spill_bytes'] == 0, r
    assert rc == 0
    assert '| fwd_band_h |' in capsys.readouterr().out


def test_report_jobs_cover_every_kernel_config_dtype_and_arch():
    jobs = kr.report_jobs(archs=(80, 90))
    n_configs = len(tuning_space(True)) + len(tuning_space(False))
    assert len(jobs) == len(kr.KERNELS) * n_configs * 3 * 2
    assert {j[0].name for j in jobs} == {k.name for k in kr.KERNELS} and {j[3] for j in jobs} == set(kr.DTYPES)
