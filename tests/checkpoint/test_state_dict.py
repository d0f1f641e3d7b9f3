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


def test_unwrap_strips_compile_and_ddp_prefixes_and_selects_ema(tiny_arch):
    from mmext.checkpoint import unwrap_state_dict

    state = InceptionNeXt(tiny_arch).state_dict()
    compiled = {f'_orig_mod.{k}': v for k, v in state.items()}  # what a torch.compile'd model saves
    tensors, found = unwrap_state_dict({'state_dict': compiled, 'meta': {}}, 'compiled.pth')
    assert tensors.keys() == state.keys() and '_orig_mod. prefix stripped' in found
    tensors, found = unwrap_state_dict({f'module.{k}': v for k, v in compiled.items()}, 'ddp_compiled.pth')
    assert tensors.keys() == state.keys() and 'module.' in found and '_orig_mod.' in found

    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    checkpoint = {'state_dict': state, 'state_dict_ema': ema, 'meta': {}}
    tensors, found = unwrap_state_dict(checkpoint, 'ema.pth', checkpoint_key='state_dict_ema')
    assert found.startswith("{'state_dict_ema': ...}")
    with pytest.warns(DeprecationWarning, match='checkpoint_key'):
        assert unwrap_state_dict(checkpoint, 'ema.pth', key='state_dict_ema')[1] == found
    assert torch.equal(tensors['stem.0.weight'], ema['stem.0.weight'])
    assert torch.equal(unwrap_state_dict(checkpoint, 'ema.pth')[0]['stem.0.weight'], state['stem.0.weight'])
    with pytest.raises(CheckpointError, match=r"ema.pth has no state dict under checkpoint_key='model_ema'; its "
                                              r"top-level keys: .*state_dict_ema"):
        unwrap_state_dict(checkpoint, 'ema.pth', checkpoint_key='model_ema')
    with pytest.raises(CheckpointError, match=r"ema_only.pth contains no tensors.*pass checkpoint_key=<entry> "
                                              r"\(one of state_dict_ema\).*checkpoint_key='state_dict_ema'"):
        unwrap_state_dict({'state_dict_ema': ema, 'meta': {}}, 'ema_only.pth')
