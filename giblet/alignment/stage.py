"""The ``align`` stage: stimulus feature tables in, TR-grid tables out.

Clock convention
----------------
Stimulus time ``times_s`` is in seconds on one continuous clock: run ``r``'s stimulus starts
at ``sum(run_n_trs[:r]) * tr_s`` (runs played back to back). Stored fMRI volume ``t``
(0-based over the concatenated runs) was *acquired* at ``(t + preshift_trs) * tr_s`` on that
clock. Public datasets that absorbed the haemodynamic lag by storing volumes early (Sherlock:
``preshift_trs=3``, the volume recorded at TR 30 is stored at TR 27) are thereby put back at
their true acquisition times, and the lag is then applied exactly once, by the HRF or the FIR
delays. Never shift the features or the brain data a second time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from giblet.alignment._checks import check_delays
from giblet.alignment.hrf import HRF_COMPONENTS, Hrf, _model_components, convolve_hrf
from giblet.alignment.resample import resample_to_trs
from giblet.features import FeatureTable

__all__ = ["scan_frame_times", "run_align", "RESAMPLE_BY_KIND", "OUTPUT_SUFFIXES", "CLOCK"]

logger = logging.getLogger(__name__)

#: FeatureTable kind -> ``resample_to_trs(how=...)``.
RESAMPLE_BY_KIND = {"continuous": "mean", "labels": "fraction"}
#: Output file name suffixes: ``<input stem>_<suffix>.npz``.
OUTPUT_SUFFIXES = ("hrf", "tr", "fir")
#: Recorded in every output's ``meta["clock"]``.
CLOCK = "times_s[t] = (t + preshift_trs) * tr_s: acquisition start of stored volume t on the stimulus clock"


def scan_frame_times(run_n_trs, tr_s, preshift_trs=0):
    """Acquisition time and run of every stored fMRI volume, on the stimulus clock.

    Parameters
    ----------
    run_n_trs : sequence of int
        Stored volumes per run, in order (Sherlock: ``[946, 1030]``).
    tr_s : float
        Repetition time, in seconds.
    preshift_trs : int, default=0
        How many TRs earlier than acquired the volumes are stored (Sherlock's public data: 3).

    Returns
    -------
    frame_times_s : ndarray, shape (n_trs,), float64
        ``(t + preshift_trs) * tr_s`` for stored volume ``t``.
    frame_runs : ndarray, shape (n_trs,), int64
        Run index of each volume.
    """
    run_n_trs = [int(n) for n in run_n_trs]
    if not run_n_trs or min(run_n_trs) < 1:
        raise ValueError(f"run_n_trs must list at least one positive TR count per run, got {run_n_trs}")
    if not tr_s > 0:
        raise ValueError(f"tr_s must be a positive number of seconds, got {tr_s}")
    frame_runs = np.repeat(np.arange(len(run_n_trs)), run_n_trs)
    return (np.arange(frame_runs.size) + int(preshift_trs)) * float(tr_s), frame_runs


def _sample_runs(table, path, run_n_trs, tr_s):
    """Run of each stimulus sample, from its time and the back-to-back run starts."""
    run_starts_s = np.concatenate([[0], np.cumsum(run_n_trs)[:-1]]) * tr_s
    runs = np.clip(np.searchsorted(run_starts_s, table.times_s, side="right") - 1, 0, len(run_n_trs) - 1)
    if table.runs.any() and not np.array_equal(table.runs, runs):
        raise ValueError(
            f"{path}: the table's run labels disagree with its times_s and run_n_trs={list(run_n_trs)} "
            f"(run r starts at sum(run_n_trs[:r]) * {tr_s} s); give times_s on one continuous clock "
            "or fix fmri.run_n_trs"
        )
    return runs


def _align_table(table, path, frame_times, frame_runs, settings):
    """The three TR-grid tables (``OUTPUT_SUFFIXES``) for one stimulus table."""
    run_n_trs, tr_s = settings["run_n_trs"], settings["tr_s"]
    scan_end_s = frame_times[-1] + tr_s
    if table.times_s[0] >= scan_end_s or table.times_s[-1] < 0:
        raise ValueError(
            f"{path}: samples span {table.times_s[0]:.1f} to {table.times_s[-1]:.1f} s, outside the scan "
            f"(0 to {scan_end_s:.1f} s); times_s must be seconds from the first fMRI frame"
        )
    runs = (_sample_runs(table, path, run_n_trs, tr_s), frame_runs)
    how = RESAMPLE_BY_KIND[table.kind]
    durations = table.meta.get("durations_s")  # annotation segments carry their own lengths

    def on_grid(times_s):
        return resample_to_trs(table.values, table.times_s, times_s, tr_s, how, runs, durations=durations)

    try:
        convolved = convolve_hrf(
            table.values, table.times_s, frame_times, Hrf(settings["hrf_model"]), runs,
            settings["slice_time_ref"], durations=durations,
        )
        resampled = on_grid(frame_times)
        # Block d = the windows d TRs before each volume. Equal to delay(resampled) except at run
        # starts, where it keeps the run's stimulus that precedes the first stored volume
        # (3 TRs for pre-shifted data) instead of zero-filling it.
        delayed = np.concatenate([on_grid(frame_times - d * tr_s) for d in settings["delays_trs"]], axis=1)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{path}: {err}") from err
    n_kernels = convolved.shape[1] // len(table.names)
    # the input's provenance, minus its per-sample durations (these rows are volumes)
    provenance = {k: v for k, v in table.meta.items() if k != "durations_s"}
    meta = {**provenance, **settings, "source": str(path), "clock": CLOCK}
    grid = dict(times_s=frame_times, runs=frame_runs, meta=meta)
    return {
        "hrf": FeatureTable(
            convolved,
            names=tuple(n if k == 0 else f"{n}_{HRF_COMPONENTS[k]}" for k in range(n_kernels) for n in table.names),
            kind="continuous",
            **grid,
        ),
        "tr": FeatureTable(resampled, names=table.names, kind=table.kind, **grid),
        "fir": FeatureTable(
            delayed,
            names=tuple(f"{n}_delay{d}" for d in settings["delays_trs"] for n in table.names),
            kind=table.kind,
            **grid,
        ),
    }


def run_align(
    feature_paths,
    out_dir,
    *,
    run_n_trs,
    tr_s,
    hrf_model="glover",
    delays_trs=(1, 2, 3, 4),
    preshift_trs=0,
    slice_time_ref=0.0,
):
    """Align stimulus feature tables to the fMRI frame grid.

    For each input ``<stem>.npz`` (a :class:`giblet.features.FeatureTable` whose ``times_s``
    are seconds on the stimulus clock; each sample holds until the next, or for
    ``meta["durations_s"]`` when the table has it), writes to ``out_dir``:

    - ``<stem>_hrf.npz``: HRF-convolved, sampled at the acquisition times (``kind="continuous"``);
    - ``<stem>_tr.npz``: window means (continuous) or category fractions (labels) per volume,
      un-convolved and unshifted;
    - ``<stem>_fir.npz``: the same windows ``d`` TRs earlier, for each ``d`` in ``delays_trs``
      (delay-major columns, as :func:`giblet.alignment.delay` of ``<stem>_tr`` but exact at
      run starts: 0 only before the run's stimulus began).

    Every output has one row per stored volume, ``times_s`` = acquisition start of that
    volume on the stimulus clock (see the module docstring), ``runs`` = its run, and the
    alignment settings in ``meta``.

    Parameters
    ----------
    feature_paths : list of path-like
        Input tables.
    out_dir : path-like
        Output folder (created if needed); files are written atomically.
    run_n_trs : sequence of int
        Stored volumes per run (config ``fmri.run_n_trs``; Sherlock ``[946, 1030]``).
    tr_s : float
        Repetition time, in seconds (``fmri.tr_s``).
    hrf_model : str, default="glover"
        One of :data:`giblet.alignment.HRF_MODELS` (``align.hrf_model``).
    delays_trs : sequence of int, default=(1, 2, 3, 4)
        FIR delays, in TRs (``align.delays_trs``).
    preshift_trs : int, default=0
        TRs by which stored volumes precede their acquisition (``fmri.preshift_trs``;
        Sherlock's public data: 3).
    slice_time_ref : float in [0, 1], default=0.0
        Fraction of the TR at which the modelled slice is acquired (``align.slice_time_ref``).

    Returns
    -------
    list of Path
        The files written, three per input in ``OUTPUT_SUFFIXES`` order.
    """
    _model_components(hrf_model)  # validate names before any work
    frame_times, frame_runs = scan_frame_times(run_n_trs, tr_s, preshift_trs)
    settings = {
        "run_n_trs": [int(n) for n in run_n_trs],
        "tr_s": float(tr_s),
        "preshift_trs": int(preshift_trs),
        "hrf_model": hrf_model,
        "slice_time_ref": float(slice_time_ref),
        "delays_trs": check_delays(delays_trs),
    }
    written = []
    for path in tqdm([Path(p) for p in feature_paths], desc="align", unit="table", disable=None):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: feature table not found; run the features stage first")
        table = FeatureTable.load(path)
        logger.info("aligning %s: %d samples x %d features -> %d volumes",
                    path, table.n_samples, len(table.names), frame_times.size)
        tables = _align_table(table, path, frame_times, frame_runs, settings)
        for suffix in OUTPUT_SUFFIXES:
            written.append(tables[suffix].save(Path(out_dir) / f"{path.stem}_{suffix}.npz"))
    return written
