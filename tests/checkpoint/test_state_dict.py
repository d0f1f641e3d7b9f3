"""mmext.checkpoint.state_dict: unwrapping checkpoint wrappers and the whole-model fit check."""
import pytest
import torch

from mmext.checkpoint import CheckpointError, check_checkpoint_fits
from mmext.models import InceptionNeXt


def test_check_checkpoint_fits_looks_through_wrappers_and_names_keys(tmp_path):

    arch = dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128), mlp_ratios=(2, 2, 2, 2))
    model = InceptionNeXt(arch)

    class Wrapper(torch.nn.Module):  # stands for DDP / SegTTAModel, which hold the model as .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in model.state_dict().items()}, 'meta': {}}, good)
    check_checkpoint_fits(Wrapper(model), good)
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': InceptionNeXt(dict(arch, dims=(8, 16, 32, 64))).state_dict()}, bad)
    with pytest.raises(CheckpointError, match=r'bad.pth does not fit(.|\n)*shape mismatches'):
        check_checkpoint_fits(Wrapper(model), bad)
