import pytest
import timm
import torch


@pytest.fixture(scope='session')
def timm_atto_state_dict() -> dict[str, torch.Tensor]:
    """timm's ``inception_next_atto`` state dict (with ``head.*``) filled with random values, so that equality
    checks cannot pass by the shared constant init (``gamma`` is 1e-6 everywhere at init)."""
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
            for k, v in timm.create_model('inception_next_atto').state_dict().items()}
