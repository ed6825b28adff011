import pytest
import torch

from giblet.models.dropout import modality_keep_mask


def test_modality_keep_mask_keeps_at_least_one():
    keep = modality_keep_mask(2000, 3, 0.9, generator=torch.Generator().manual_seed(0))
    assert keep.shape == (2000, 3) and keep.dtype == torch.bool
    assert keep.any(1).all()
    assert (keep.sum(1) == 1).float().mean() > 0.7  # p = 0.9 drops most rows to their rescued modality


def test_modality_keep_mask_rate_and_determinism():
    keep = modality_keep_mask(20000, 2, 0.3, generator=torch.Generator().manual_seed(1))
    # kept unless dropped (0.7), plus the rescue of all-dropped rows (0.09 / 2 per modality)
    assert keep.float().mean().item() == pytest.approx(0.7 + 0.09 / 2, abs=0.01)
    again = modality_keep_mask(20000, 2, 0.3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(keep, again)


def test_modality_keep_mask_p_zero_keeps_all():
    assert modality_keep_mask(5, 3, 0.0).all()


def test_modality_keep_mask_rejects_p_one():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        modality_keep_mask(5, 3, 1.0)
