"""Per-voxel encoding scores: the interchange file between ``evaluate`` and the report's brain maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from giblet.io import save_npz

__all__ = ["VoxelScores"]

_PER_MODEL = ("r", "p", "q")  # saved as "<field>_<model>"


@dataclass(frozen=True)
class VoxelScores:
    """Every model's per-voxel encoding r, p and q on the test block, with the ceiling and the voxel grid.

    Attributes
    ----------
    r, p, q : dict of str to ndarray, shape (n_voxels,), float32
        Per model: r of predicted and measured BOLD, its permutation p and FDR q.
    ceiling : ndarray, shape (n_voxels,), float32
        Leave-one-subject-out ISC on the test block (NaN where the group file lacks the voxel).
    voxel_ijk : ndarray, shape (n_voxels, 3), int
    affine : ndarray, shape (4, 4), float64
    grid_shape : tuple of 3 int
    roi_names : tuple of str, length n_rois
    roi_membership : ndarray, shape (n_voxels, n_rois), bool
    n_trs : int
        Test TRs scored.
    """

    r: dict
    p: dict
    q: dict
    ceiling: np.ndarray
    voxel_ijk: np.ndarray
    affine: np.ndarray
    grid_shape: tuple
    roi_names: tuple
    roi_membership: np.ndarray
    n_trs: int

    def save(self, path):
        """Write to ``path`` (``.npz``) atomically."""
        per_model = {f"{field}_{model}": np.asarray(values, dtype=np.float32)
                     for field in _PER_MODEL for model, values in getattr(self, field).items()}
        return save_npz(path, **per_model, ceiling=np.asarray(self.ceiling, dtype=np.float32),
                        voxel_ijk=self.voxel_ijk, affine=self.affine, grid_shape=np.asarray(self.grid_shape),
                        roi_names=np.asarray(self.roi_names, dtype=str), roi_membership=self.roi_membership,
                        n_trs=np.asarray(self.n_trs))

    @classmethod
    def load(cls, path) -> "VoxelScores":
        with np.load(path, allow_pickle=False) as z:
            per_model = {field: {key[len(field) + 1:]: z[key] for key in z.files if key.startswith(f"{field}_")}
                         for field in _PER_MODEL}
            return cls(**per_model, ceiling=z["ceiling"], voxel_ijk=z["voxel_ijk"], affine=z["affine"],
                       grid_shape=tuple(int(n) for n in z["grid_shape"]),
                       roi_names=tuple(str(name) for name in z["roi_names"]), roi_membership=z["roi_membership"],
                       n_trs=int(z["n_trs"]))
