"""Per-TR stimulus features that come precomputed (e.g. an audio envelope when the film is not at hand)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from giblet.features import FeatureTable
from giblet.fmri.load import read_arrays

__all__ = ["run_import_features"]

log = logging.getLogger(__name__)


def _column(path, key, n_trs):
    arrays = read_arrays(path)
    if key not in arrays:
        raise ValueError(f"{path}: no array {key!r}; it holds {sorted(arrays)}")
    values = np.asarray(arrays[key], dtype=np.float64).squeeze()
    if values.ndim != 1 or len(values) != n_trs:
        raise ValueError(
            f"{path}: {key!r} has shape {np.shape(arrays[key])}, expected one value per TR ({n_trs}); "
            "check fmri.run_n_trs"
        )
    return values


def run_import_features(specs, out_path, *, tr_s, n_trs) -> Path:
    """Write precomputed per-TR features as one stimulus-time :class:`FeatureTable`.

    Parameters
    ----------
    specs : list of dict
        Each ``{"path": file, "key": array name, "name": feature name}``; the array holds one
        value per TR of the stimulus (row t covers [t * tr_s, (t + 1) * tr_s) seconds).
    out_path : path
        Output ``.npz``.
    tr_s : float
        Repetition time, in seconds.
    n_trs : int
        TRs over all runs.

    Notes
    -----
    Missing values (NaN) become 0 and are listed in ``meta["nan_trs"]``: the alignment stage
    convolves across them, so they must be finite.
    """
    values = np.stack([_column(s["path"], s["key"], n_trs) for s in specs], axis=1)
    nan = np.isnan(values)
    nan_trs = {s["name"]: np.flatnonzero(nan[:, i]).tolist() for i, s in enumerate(specs)}
    for name, trs in nan_trs.items():
        if trs:
            log.warning("%s: %d of %d TRs are NaN; they are set to 0", name, len(trs), n_trs)
    table = FeatureTable(
        values=np.where(nan, 0.0, values).astype(np.float32),
        times_s=np.arange(n_trs) * float(tr_s),
        names=tuple(s["name"] for s in specs),
        meta={"sources": [f"{s['path']}:{s['key']}" for s in specs], "nan_trs": nan_trs, "durations_s": [tr_s] * n_trs},
    )
    return table.save(out_path)
