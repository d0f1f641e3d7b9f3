"""label_map_from_logits (bounded-memory resize + arg-max) against the full bilinear resize + arg-max."""
import pytest
import torch
import torch.nn.functional as F

from mmext.apis.inference import label_map_from_logits


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('kind', ['smooth', 'noise', 'ties'])
def test_equals_full_resize_on_every_path(kind, align_corners):
    gen = torch.Generator().manual_seed(1)
    if kind == 'smooth':  # class regions: most cells have one possible winner, boundaries 2-3
        logits = F.interpolate(torch.randn(1, 150, 4, 5, generator=gen) * 4, size=(31, 40), mode='bilinear')[0]
    elif kind == 'noise':  # every cell a boundary, many with more than eight contenders
        logits = torch.randn(150, 13, 17, generator=gen)
    else:  # exact ties in the source: a winner may differ only where two classes are within float rounding
        logits = torch.randint(0, 3, (12, 9, 11), generator=gen).float()
    size = (157, 203)
    values = F.interpolate(logits[None], size=size, mode='bilinear', align_corners=align_corners)[0]
    full = values.argmax(0)
    bounded = label_map_from_logits(logits, size, align_corners, max_tile_bytes=64 * 1024)
    assert logits.shape[0] * size[0] * size[1] * 4 > 64 * 1024  # the bounded path, not the direct one
    assert bounded.shape == size and bounded.dtype.name == 'int64'
    differ = torch.from_numpy(bounded) != full
    if kind != 'ties':
        assert not differ.any()
    else:
        chosen = values.gather(0, torch.from_numpy(bounded)[None])[0]
        assert ((values.amax(0) - chosen)[differ] <= 1e-5).all()  # an equally good class, by rounding only
        assert differ.float().mean() < 0.05
