"""mmext.compat.upstream: every private upstream name mmext relies on, called on the installed stack, so an
upgrade that renames or removes one fails here, loudly, naming the accessor."""
import os

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
