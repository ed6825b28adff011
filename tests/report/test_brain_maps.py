"""Voxel r maps of a subject and of the group (mean over subjects on one grid)."""

import matplotlib
import matplotlib.text
import numpy as np
import pytest

from giblet.report.brain_maps import VoxelMaps, group_map_figures
from giblet.voxel_scores import VoxelScores

matplotlib.use("Agg")


def _write(path, ijk, r_auto, r_ridge, membership, affine=np.eye(4)):
    r = {"autoencoder": r_auto, "ridge": r_ridge}
    zeros = {model: np.zeros(len(ijk)) for model in r}
    return VoxelScores(r=r, p=zeros, q=zeros, ceiling=np.zeros(len(ijk)), voxel_ijk=np.asarray(ijk), affine=affine,
                       grid_shape=tuple(np.max(ijk, axis=0) + 1), roi_names=("a", "b"), roi_membership=np.asarray(membership, bool),
                       n_trs=10).save(path)


def test_group_mean_averages_each_voxel_over_the_subjects_that_have_it(tmp_path):
    one = _write(tmp_path / "1.npz", [[0, 0, 0], [1, 0, 0]], np.array([0.2, 0.4]), np.array([0.1, np.nan]),
                 [[1, 0], [0, 1]])
    two = _write(tmp_path / "2.npz", [[1, 0, 0], [2, 0, 0]], np.array([0.6, -0.2]), np.array([0.3, 0.5]),
                 [[0, 1], [0, 0]])
    group = VoxelMaps.mean([VoxelMaps.load(one), VoxelMaps.load(two)])
    assert group.ijk.tolist() == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    np.testing.assert_allclose(group.maps["autoencoder"], [0.2, 0.5, -0.2])
    np.testing.assert_allclose(group.maps["ridge"], [0.1, 0.3, 0.5])  # NaN in one subject: the other's r
    assert group.membership.tolist() == [[True, False], [False, True], [False, False]]


def test_group_mean_refuses_subjects_on_different_grids(tmp_path):
    one = _write(tmp_path / "1.npz", [[0, 0, 0]], np.array([0.2]), np.array([0.1]), [[1, 0]])
    two = _write(tmp_path / "2.npz", [[0, 0, 0]], np.array([0.2]), np.array([0.1]), [[1, 0]], affine=2 * np.eye(4))
    with pytest.raises(ValueError, match="different grids"):
        VoxelMaps.mean([VoxelMaps.load(one), VoxelMaps.load(two)])


def test_group_map_draws_both_models_and_their_scatter(tmp_path, rng):
    class Prepared:  # standardised data with no mean image on a small grid: no background
        subject, mean_epi, grid_shape = "s1", None, (6, 6, 6)
        affine, voxel_ijk = np.diag([3.0, 3.0, 3.0, 1.0]), np.zeros((0, 3), int)

    ijk = np.argwhere(np.ones((6, 6, 6), bool))
    paths = [_write(tmp_path / f"{i}.npz", ijk, rng.uniform(-0.5, 0.8, len(ijk)), rng.uniform(-0.5, 0.8, len(ijk)),
                    np.c_[ijk[:, 0] < 3, ijk[:, 0] >= 3], affine=Prepared.affine) for i in range(2)]
    figs, background, n = group_map_figures(paths + [tmp_path / "missing.npz"], Prepared())
    assert (len(figs), n) == (3, 2)
    assert background.startswith("no anatomy")
    titles = [" ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text)) for fig in figs[:2]]
    assert "mean encoding r over subjects: autoencoder" in titles[0]
    assert "mean encoding r over subjects: ridge" in titles[1]
