"""tools/analysis/kernel_report.py compiles the Triton kernels for sm_90 on CPU (no GPU) and finds no spills."""
import json

import pytest

pytest.importorskip('triton')

from mmext.ops import ms_deform_attn  # noqa: E402
from mmext.ops.mixer_configs import tuning_space  # noqa: E402


@pytest.fixture(scope='module')
def kr(request):
    return request.getfixturevalue('load_tool')('tools/analysis/kernel_report.py')


def test_kernel_report_sm90_subset_has_no_spills(kr, tmp_path, capsys):
    # one mixer kernel of each body (forward, input gradient, weight gradient) on each memory format's first
    # config, and both multi-scale deformable attention kernels on their first config
    kernels = ['fwd_band_h', 'grad_input_band_w', 'grad_weight_square', 'msda_fwd', 'msda_bwd']
    out = tmp_path / 'report.json'
    rc = kr.main(['--arch', '90', '--dtype', 'bf16', '--kernels', *kernels, '--max-configs', '1', '--workers', '2',
                  '--json', str(out)])
    rows = json.loads(out.read_text())
    assert len(rows) == 3 * 2 + 2
    assert {r['kernel'] for r in rows} == set(kernels)
    assert {r['layout'] for r in rows if not r['kernel'].startswith('msda')} == {'channels_last', 'contiguous'}
    for r in rows:
        assert {'kernel', 'config', 'dtype', 'arch', 'registers', 'spill_bytes', 'shared_bytes'} <= r.keys()
        assert r['arch'] == 'sm_90' and r['dtype'] == 'bf16'
        assert 0 < r['registers'] <= 255, r
        assert r['spill_bytes'] == 0, r
    assert rc == 0
    printed = capsys.readouterr().out
    assert '| fwd_band_h |' in printed and '| msda_bwd |' in printed


def test_report_jobs_cover_every_kernel_config_dtype_and_arch(kr):
    jobs = kr.report_jobs(archs=(80, 90))
    mixer_kernels = [k for k in kr.KERNELS if k.op == 'inception_dwconv']
    n_mixer = len(mixer_kernels) * (len(tuning_space(True)) + len(tuning_space(False)))
    n_msda = len(ms_deform_attn.tuning_space('fwd')) + len(ms_deform_attn.tuning_space('bwd'))
    assert len(kr.KERNELS) - len(mixer_kernels) == 2 and n_msda == 6
    assert len(jobs) == (n_mixer + n_msda) * 3 * 2
    assert {j[0].name for j in jobs} == {k.name for k in kr.KERNELS} and {j[3] for j in jobs} == set(kr.DTYPES)
