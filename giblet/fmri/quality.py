"""Bad TRs and bad voxels: found, named and reported, never silently used.

- NaN TRs: volumes with NaN in more than half of the voxels (missing or dropped volumes).
- NaN voxels: voxels with any NaN in the remaining TRs.
- Constant voxels: no variation over the reference TRs (outside the brain, or a voxel that
  only the model's training block would see as flat).
- Repeated volumes: a volume identical to the one before it, over every usable voxel.
  Real scanners never produce two identical volumes; copies stand in for missing data
  (Sherlock s5 stores its last 50 TRs as copies of TR 1925). The first volume of a
  repeated stretch is kept; its copies are bad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from giblet.blocks import column_blocks

__all__ = ["Quality", "constant_voxels", "find_bad"]

_NAN_TR_FRACTION = 0.5  # a volume with NaN in more than this share of voxels is a bad TR


@dataclass(frozen=True)
class Quality:
    """Bad TRs and voxels, by reason.

    Attributes
    ----------
    bad_trs : dict of str -> ndarray, shape (n_trs,), bool
        ``"nan"`` and ``"repeated"`` volumes.
    bad_voxels : dict of str -> ndarray, shape (n_voxels,), bool
        ``"nan"`` and ``"constant"`` voxels (a voxel has the first reason that applies).
    """

    bad_trs: dict
    bad_voxels: dict

    @property
    def tr_ok(self) -> np.ndarray:
        """Shape (n_trs,), bool: TRs with no problem."""
        return ~np.any(list(self.bad_trs.values()), axis=0)

    @property
    def voxel_ok(self) -> np.ndarray:
        """Shape (n_voxels,), bool: voxels with no problem."""
        return ~np.any(list(self.bad_voxels.values()), axis=0)

    def voxel_reasons(self) -> np.ndarray:
        """Shape (n_voxels,), str: the reason each voxel is bad ("" when it is fine)."""
        out = np.full(len(self.voxel_ok), "", dtype=object)
        for reason, bad in self.bad_voxels.items():
            out[bad] = reason
        return out.astype(str)

    def summary(self) -> dict:
        """JSON-able counts, and the ``[start, stop)`` TR ranges of every kind of bad TR."""
        return {
            "n_bad_trs": {k: int(v.sum()) for k, v in self.bad_trs.items()},
            "bad_tr_ranges": {k: _ranges(v) for k, v in self.bad_trs.items()},
            "n_bad_voxels": {k: int(v.sum()) for k, v in self.bad_voxels.items()},
        }


def _ranges(mask):
    """``[[start, stop), ...]`` of the True stretches of a boolean vector."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return edges.reshape(-1, 2).tolist()


def constant_voxels(values, trs):
    """Shape (n_voxels,), bool: voxels whose values over ``trs`` are all equal (False where one is NaN).

    Parameters
    ----------
    values : ndarray, shape (n_trs, n_voxels)
    trs : ndarray, shape (n_trs,), bool
    """
    return np.concatenate([np.ptp(values[trs, block], axis=0) == 0 for block in column_blocks(values.shape[1])])


def find_bad(values, reference_trs=None, source="fMRI data"):
    """Find NaN and repeated volumes, NaN and constant voxels (a block of voxels at a time, no copy of ``values``).

    Parameters
    ----------
    values : ndarray, shape (n_trs, n_voxels)
    reference_trs : ndarray, shape (n_trs,), bool, optional
        TRs over which a voxel must vary (the training block); default all.
    source : str
        File name used in error messages.

    Returns
    -------
    Quality
    """
    values = np.asarray(values)
    blocks = column_blocks(values.shape[1])
    n_nan = sum(np.isnan(values[:, block]).sum(axis=1) for block in blocks)
    if n_nan.sum() == values.size:
        raise ValueError(f"{source}: every value is NaN; check the file and the mask it was read with")
    nan_trs = n_nan > _NAN_TR_FRACTION * values.shape[1]
    nan_voxels = np.concatenate([np.isnan(values[~nan_trs, block]).any(axis=0) for block in blocks])
    reference = ~nan_trs if reference_trs is None else ~nan_trs & reference_trs
    if not reference.any():
        raise ValueError(f"{source}: every TR of the reference (training) block is NaN; check the data and the split")
    constant = ~nan_voxels & constant_voxels(values, reference)
    good = ~nan_voxels & ~constant
    if not good.any():
        raise ValueError(
            f"{source}: no usable voxel ({int(nan_voxels.sum())} with NaN, {int(constant.sum())} constant); "
            "check the mask and the data"
        )
    repeated = np.r_[False, np.ones(len(values) - 1, bool)]
    for block in blocks:
        columns = values[:, block][:, good[block]]
        repeated[1:] &= np.all(columns[1:] == columns[:-1], axis=1)
        if not repeated.any():  # real data: the first block rules out every TR
            break
    quality = Quality(
        bad_trs={"nan": nan_trs, "repeated": repeated},
        bad_voxels={"nan": nan_voxels, "constant": constant},
    )
    if not quality.tr_ok.any():
        raise ValueError(f"{source}: no usable TR ({quality.summary()['n_bad_trs']}); check the data")
    return quality
