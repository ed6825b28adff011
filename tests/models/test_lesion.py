import numpy as np
import pytest
import torch

from giblet.models import lesion
from giblet.models.lesion import roi_union


@pytest.fixture
def voxels():
    return torch.arange(24.0).reshape(2, 3, 4)


def test_lesion_zero_mask_and_indices_agree(voxels):
    by_mask = lesion(voxels, torch.tensor([False, True, False, True]))
    by_index = lesion(voxels, [1, 3])
    torch.testing.assert_close(by_mask, by_index)
    assert not by_mask[..., [1, 3]].any()
    torch.testing.assert_close(by_mask[..., [0, 2]], voxels[..., [0, 2]])
    assert voxels[0, 0, 1] == 1.0  # input untouched


def test_lesion_mean_uses_given_statistics(voxels):
    out = lesion(voxels, [2], "mean", mean=np.array([9.0, 9.0, -5.0, 9.0]))
    assert (out[..., 2] == -5.0).all()
    torch.testing.assert_close(out[..., [0, 1, 3]], voxels[..., [0, 1, 3]])


def test_lesion_noise_statistics_and_generator():
    voxels = torch.zeros(4000, 3)
    mean, std = torch.tensor([0.0, 2.0, 0.0]), torch.tensor([1.0, 0.5, 1.0])
    out = lesion(voxels, [1], "noise", mean=mean, std=std, generator=torch.Generator().manual_seed(0))
    assert out[:, 1].mean().item() == pytest.approx(2.0, abs=0.05)
    assert out[:, 1].std().item() == pytest.approx(0.5, abs=0.03)
    assert not out[:, [0, 2]].any()
    again = lesion(voxels, [1], "noise", mean=mean, std=std, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)


def test_lesion_keeps_gradient_of_kept_voxels():
    voxels = torch.ones(2, 3, requires_grad=True)
    lesion(voxels, [0]).sum().backward()
    assert voxels.grad[:, 0].tolist() == [0.0, 0.0] and voxels.grad[:, 1:].eq(1).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"roi": [0], "mode": "cut"}, "mode must be one of"),
        ({"roi": [0], "mode": "mean"}, "needs mean="),
        ({"roi": [0], "mode": "noise", "mean": np.zeros(4)}, "needs std="),
        ({"roi": [0], "mode": "mean", "mean": np.zeros(3)}, r"expected \(4,\)"),
        ({"roi": [4]}, r"indices must lie in \[0, 4\)"),
        ({"roi": np.ones(5, bool)}, r"expected \(4,\)"),
        ({"roi": [0.5]}, "bool mask"),
    ],
)
def test_lesion_rejects_bad_arguments(voxels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lesion(voxels, **kwargs)


def test_roi_union_of_named_masks():
    rois = {"a": [True, False, False], "b": np.array([False, False, True])}
    assert roi_union(rois, ["a", "b"]).tolist() == [True, False, True]
    assert roi_union(rois, "b").tolist() == [False, False, True]
    with pytest.raises(ValueError, match=r"unknown or no ROI names \['c'\]; choose from \['a', 'b'\]"):
        roi_union(rois, ["a", "c"])
