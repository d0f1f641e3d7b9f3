"""mmext.compat.upstream: every private upstream name mmext relies on, called on the installed stack, so an
upgrade that renames or removes one fails here, loudly, naming the accessor."""
import os
import sys

import torch
from mmengine.runner import Runner

from mmext.compat import upstream


def test_mmengine_home_follows_mmengine_env(tmp_path, monkeypatch):
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'home'))
    assert upstream.mmengine_home() == str(tmp_path / 'home')
    assert os.path.isdir(tmp_path / 'home')  # mmengine creates it


def _tiny_runner(tmp_path, **cfg) -> Runner:
    return Runner(model=torch.nn.Linear(2, 2), work_dir=str(tmp_path), **cfg)


def test_runner_checkpoint_request_reads_and_sets_what_load_or_resume_uses(tmp_path):
    runner = _tiny_runner(tmp_path, load_from=str(tmp_path / 'a.pth'), resume=False)
    assert upstream.runner_checkpoint_request(runner) == (False, False, str(tmp_path / 'a.pth'))
    weights = tmp_path / 'b.pth'
    torch.save({'state_dict': {'weight': torch.full((2, 2), 7.), 'bias': torch.zeros(2)}}, weights)
    upstream.set_runner_checkpoint_request(runner, resume=False, load_from=str(weights))
    assert upstream.runner_checkpoint_request(runner) == (False, False, str(weights))
    runner.load_or_resume()  # the Runner acts on what was set: the request reached mmengine's own attributes
    assert torch.equal(runner.model.weight, torch.full((2, 2), 7.))
    assert upstream.runner_checkpoint_request(runner)[0] is True


def test_runner_checkpoint_request_sees_resume(tmp_path):
    assert upstream.runner_checkpoint_request(_tiny_runner(tmp_path, resume=True)) == (False, True, None)


def test_roi_align_backward_matches_autograd():
    """torchvision's private backward kernel against the gradient autograd computes through the public op."""
    from torchvision.ops import roi_align

    torch.manual_seed(0)
    feats = torch.randn(2, 3, 10, 12, requires_grad=True)
    rois = torch.tensor([[0, 1., 1., 8., 7.], [1, 0., 2., 11., 9.]])
    out = roi_align(feats, rois, (3, 4), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    grad = torch.randn_like(out)
    expected, = torch.autograd.grad(out, feats, grad)
    got = upstream.roi_align_backward(grad, rois, 0.5, 3, 4, 2, 3, 10, 12, 2, True)
    torch.testing.assert_close(got, expected)


def test_batch_norm_base_covers_every_batch_norm():
    import torch.nn as nn

    from mmext.compat.upstream import batch_norm_base
    base = batch_norm_base()
    assert all(issubclass(c, base) for c in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm))
    assert not issubclass(nn.LayerNorm, base)


def test_cpu_has_answers_for_every_feature_precision_checks():
    for feature in ('avx512_bf16', 'amx_tile', 'amx_fp16'):
        assert upstream.cpu_has(feature) in (True, False)


def test_add_registry_locations_imports_on_first_lookup(tmp_path, monkeypatch):
    from mmengine.registry import Registry

    (tmp_path / 'lazyreg_holder.py').write_text(
        "from mmengine.registry import Registry\nLATE, EARLY = Registry('late'), Registry('early')\n")
    for name in ('late', 'early'):
        (tmp_path / f'lazyreg_{name}.py').write_text(
            f'from lazyreg_holder import {name.upper()}\n@{name.upper()}.register_module()\nclass Thing:\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    import lazyreg_holder

    lazyreg_holder.EARLY.import_from_location()  # has looked up already: a new location is imported at once
    upstream.add_registry_locations(lazyreg_holder.LATE, ['lazyreg_late'])
    upstream.add_registry_locations(lazyreg_holder.EARLY, ['lazyreg_early'])
    assert 'lazyreg_early' in sys.modules
    Registry('untouched').import_from_location()  # mmengine's shared default ``locations`` list was not changed
    assert 'lazyreg_late' not in sys.modules
    assert lazyreg_holder.LATE.get('Thing').__module__ == 'lazyreg_late'


def test_triton_sum_combine_is_a_jitted_add():
    import pytest
    pytest.importorskip('triton')
    combine = upstream.triton_sum_combine()
    assert type(combine).__name__ in ('JITFunction', 'InterpretedFunction') and combine.fn(2, 3) == 5


def test_checkpoint_loader_schemes_lists_every_prefix_routed_through_read_checkpoint():
    schemes = upstream.checkpoint_loader_schemes()
    assert {'', 'http://', 'https://', 'open-mmlab://', 'torchvision://', 'mmcls://', 'trusted://'} <= set(schemes)
    assert all(getattr(loader, 'mmext_boundary', False) for loader in schemes.values())  # import mmext installs it


def test_process_mmcls_checkpoint_renames_mmcls_keys():
    weight = torch.zeros(1)
    renamed = upstream.process_mmcls_checkpoint({'state_dict': {'backbone.conv.weight': weight, 'head.fc.w': weight}})
    assert list(renamed['state_dict']) == ['conv.weight']
