"""The decoders' forward passes on one subject's test block: the autoencoder from measured BOLD, the ridge
decoders from the same BOLD windows, and the autoencoder's reconstruction from its own predicted BOLD."""

from __future__ import annotations

import numpy as np

from giblet.evaluation.decoding import autoencoder_views, ridge_views
from giblet.splits import BLOCKS
from giblet.training.baselines import decoding_design

__all__ = ["scored_design", "decode_all"]


def scored_design(data, subject, bold, delays):
    """The ridge decoder's design on the test block only (and the BOLD after it that its windows reach).

    Returns
    -------
    design : ndarray, shape (n_rows, n_voxels * n_delays)
        Rows for TRs ``first, first + 1, ...`` of the clock.
    first : int
    scored : ndarray, shape (n_scored,), int
        Test TRs whose every window row is valid test-block BOLD of the same run (the scored TRs).
    """
    test = np.flatnonzero(data.labels == BLOCKS.index("test"))
    first, stop = test[0], min(test[-1] + max(delays) + 1, data.n_trs)
    window = slice(first, stop)
    design, rows = decoding_design(bold[window], data.bold_valid[subject][window], data.labels[window],
                                   data.runs[window], "test", delays)
    return design, first, np.flatnonzero(rows) + first


def decode_all(model, data, subject, targets, baselines, device, bold=None, lesion_fn=None):
    """Views of the three decoders: the autoencoder and the ridge from measured BOLD, the autoencoder's reconstruction.

    ``bold`` replaces the measured BOLD (a lesion of it); ``lesion_fn`` acts on the middle layer.
    """
    delays = model.config.decoder_delays_trs
    design, first, _ = scored_design(data, subject, data.bold[subject] if bold is None else bold, delays)
    return {
        ("autoencoder", "measured_bold"): autoencoder_views(model, data, subject, targets, bold=bold, device=device),
        ("ridge", "measured_bold"): ridge_views(baselines["decoders"], design[targets.rows - first], targets),
        ("autoencoder", "predicted_bold"): autoencoder_views(model, data, subject, targets, source="predicted_bold",
                                                             lesion=lesion_fn, device=device),
    }
