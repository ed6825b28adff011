"""Annotation tables (XLSX/CSV/TSV) read onto the fMRI clock, with their traps checked.

Times come in seconds or in TRs. Seconds are stimulus seconds, either on one clock for
the whole scan or restarting at zero at every run (the Sherlock sheet's seconds columns
restart at the second scan: segment 501 starts at 74 s but at TR 996). TR columns are
indices of the scan's TRs, by default 1-based and inclusive at both ends, as in Sherlock
(``Start Time (TRs, 1.5s)`` = 1 and ``End Time (TRs, 1.5s)`` = 8 is ``[0 s, 12 s)``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from giblet.text.tr_grid import interval_tr_weights, run_bounds_s, tr_run_ids

__all__ = ["Annotations", "read_annotations", "read_table", "TABLE_READERS", "TIME_UNITS"]

log = logging.getLogger(__name__)

TABLE_READERS = {
    ".xlsx": pd.read_excel,
    ".xls": pd.read_excel,
    ".csv": pd.read_csv,
    ".tsv": partial(pd.read_csv, sep="\t"),
}


def _seconds_to_clock(onset, offset, *, tr_s, tr_first_index, start_offset_s):
    """Stimulus seconds to seconds from the first fMRI frame."""
    return onset - start_offset_s, offset - start_offset_s


def _trs_to_clock(onset, offset, *, tr_s, tr_first_index, start_offset_s):
    """1-based (``tr_first_index``) TR indices, inclusive at both ends, to ``[onset_s, offset_s)``."""
    return (onset - tr_first_index) * tr_s, (offset - tr_first_index + 1) * tr_s


TIME_UNITS = {"s": _seconds_to_clock, "tr": _trs_to_clock}


@dataclass(frozen=True)
class Annotations:
    """Annotated segments on the fMRI clock.

    Attributes
    ----------
    onset_s, offset_s : ndarray, shape (n_segments,), float64
        Segment ``[onset_s, offset_s)``, in seconds from the first fMRI frame (global
        clock, runs concatenated). Global times are kept as they are, also before or after
        the scan (they still matter to HRF convolution); run-relative times
        (``times_restart_per_run``) are clipped to their run.
    runs : ndarray, shape (n_segments,), int64
        Run of each segment's onset (0-based; the first/last run before/after the scan).
    texts : tuple of str, length n_segments
    labels : pandas.DataFrame, shape (n_segments, n_label_columns)
        Stripped category strings; missing values are ``None``.
    rows : ndarray, shape (n_segments,), int64
        Row of each segment in the source file (1-based, header is row 1), for messages.
    report : dict
        What validation found: dropped rows, clipped segments, coverage, warnings.
    """

    onset_s: np.ndarray
    offset_s: np.ndarray
    runs: np.ndarray
    texts: tuple
    labels: pd.DataFrame
    rows: np.ndarray
    report: dict


def read_table(path, *, sheet=0):
    """Read an annotation table, stripping whitespace from every header.

    Parameters
    ----------
    path : str or Path
        ``.xlsx``, ``.xls``, ``.csv`` or ``.tsv``.
    sheet : int or str, default=0
        Excel sheet (ignored for text tables).

    Returns
    -------
    pandas.DataFrame
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found; check text.annotations")
    reader = TABLE_READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(
            f"{path}: annotation format {path.suffix!r} must be one of {sorted(TABLE_READERS)}; "
            "export the sheet to one of these"
        )
    kwargs = {"sheet_name": sheet} if reader is pd.read_excel else {}
    table = reader(path, **kwargs)
    table.columns = [str(c).strip() for c in table.columns]
    return table


def read_annotations(
    path,
    *,
    tr_s,
    n_trs,
    onset_column,
    offset_column,
    text_column,
    label_columns=(),
    run_n_trs=None,
    time_unit="s",
    times_restart_per_run=False,
    tr_first_index=1,
    start_offset_s=0.0,
    forward_fill_columns=(),
    min_coverage=0.9,
    sheet=0,
):
    """Read annotated segments and place them on the fMRI clock.

    Parameters
    ----------
    path : str or Path
        Annotation table (see :func:`read_table`).
    tr_s : float
        Repetition time, in seconds.
    n_trs : int
        TRs in the scan (all runs).
    onset_column, offset_column, text_column : str
        Column names (surrounding whitespace ignored).
    label_columns : sequence of str
        Categorical columns kept in :attr:`Annotations.labels`.
    run_n_trs : sequence of int, optional
        TRs per run; one run when omitted.
    time_unit : {"s", "tr"}
        ``"s"``: stimulus seconds. ``"tr"``: TR indices, inclusive at both ends.
    times_restart_per_run : bool, default=False
        Seconds restart at zero at every run (Sherlock's seconds columns); a row whose onset
        is earlier than the previous row's starts the next run. Only with ``time_unit="s"``.
    tr_first_index : int, default=1
        Index of the first TR in TR columns (Sherlock: 1).
    start_offset_s : float, default=0.0
        Stimulus time of the first fMRI frame, in seconds, subtracted from the seconds
        (of each run, with ``times_restart_per_run``); unused with ``time_unit="tr"``.
    forward_fill_columns : sequence of str
        Label columns filled only where they change (Sherlock's ``Scene Segments``).
    min_coverage : float, default=0.9
        Smallest fraction of TRs the segments must overlap.
    sheet : int or str, default=0
        Excel sheet.

    Returns
    -------
    Annotations
    """
    path = Path(path)
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {sorted(TIME_UNITS)}, got {time_unit!r}")
    if times_restart_per_run and time_unit != "s":
        raise ValueError("times_restart_per_run applies to seconds only; set time_unit='s'")
    label_columns = [c.strip() for c in label_columns]
    unfillable = sorted({c.strip() for c in forward_fill_columns} - set(label_columns))
    if unfillable:
        raise ValueError(f"forward_fill_columns {unfillable} are not label_columns; add them to label_columns")
    run_ids = tr_run_ids(n_trs, run_n_trs)
    table = read_table(path, sheet=sheet)
    onset_column, offset_column, text_column = (c.strip() for c in (onset_column, offset_column, text_column))
    missing = [c for c in dict.fromkeys([onset_column, offset_column, text_column, *label_columns])
               if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: no column(s) {missing}; the columns are {list(table.columns)}; "
            "fix the column names in the text config"
        )
    report = {"source": str(path), "n_rows": len(table), "warnings": []}
    labels = table[label_columns].apply(_clean_labels)
    for column in forward_fill_columns:
        labels[column.strip()] = labels[column.strip()].ffill()
    texts = _clean_labels(table[text_column]).to_numpy()
    rows = np.arange(len(table)) + 2
    onset = pd.to_numeric(table[onset_column], errors="coerce").to_numpy(np.float64)
    offset = pd.to_numeric(table[offset_column], errors="coerce").to_numpy(np.float64)
    keep = ~(np.isnan(onset) | np.isnan(offset) | pd.isna(texts))
    if not keep.all():
        _warn(report, f"{path}: sheet rows {rows[~keep].tolist()} have no time or no text; dropped")
    labels, texts, rows, onset, offset = labels[keep], texts[keep], rows[keep], onset[keep], offset[keep]
    if (offset < onset).any():
        raise ValueError(
            f"{path}: sheet rows {rows[offset < onset].tolist()} end before they start "
            f"({offset_column!r} < {onset_column!r}); fix the sheet or swap the columns"
        )
    onset_s, offset_s = TIME_UNITS[time_unit](
        onset, offset, tr_s=tr_s, tr_first_index=tr_first_index, start_offset_s=start_offset_s
    )
    bounds_s = run_bounds_s(run_ids, tr_s)
    seg_runs = _segment_runs(onset_s, bounds_s, times_restart_per_run, rows, path, onset_column)
    if times_restart_per_run:
        onset_s, offset_s = onset_s + bounds_s[seg_runs, 0], offset_s + bounds_s[seg_runs, 0]
        onset_s, offset_s, keep = _clip_to_runs(onset_s, offset_s, bounds_s[seg_runs], rows, path, report)
        labels, texts, rows, onset_s, offset_s, seg_runs = (
            labels[keep], texts[keep], rows[keep], onset_s[keep], offset_s[keep], seg_runs[keep]
        )
    if (offset_s <= onset_s).any():
        _warn(report, f"{path}: sheet rows {rows[offset_s <= onset_s].tolist()} last 0 s and get no weight")
    covered = np.asarray(interval_tr_weights(onset_s, offset_s, n_trs, tr_s).sum(axis=1)).ravel() > 0
    report.update(n_segments=len(rows), coverage=float(covered.mean()),
                  uncovered_trs=np.flatnonzero(~covered).tolist())
    if covered.mean() < min_coverage:
        raise ValueError(
            f"{path}: segments cover {covered.mean():.0%} of the {n_trs} TRs (need "
            f"{min_coverage:.0%}); check tr_s, run_n_trs, start_offset_s and time_unit, "
            "or lower text.min_coverage"
        )
    if not covered.all():
        _warn(report, f"{path}: {int((~covered).sum())} of {n_trs} TRs have no annotation "
                      f"(first: {report['uncovered_trs'][:5]}); their features are zero")
    log.info("%s: %d segments, %.1f%% of %d TRs covered", path, len(rows), 100 * covered.mean(), n_trs)
    return Annotations(
        onset_s=onset_s,
        offset_s=offset_s,
        runs=seg_runs.astype(np.int64),
        texts=tuple(texts),
        labels=labels.reset_index(drop=True),
        rows=rows,
        report=report,
    )


def _segment_runs(onset_s, bounds_s, times_restart_per_run, rows, path, onset_column):
    """Run of each segment; checks that onsets only go back in time where runs restart."""
    restarts = np.flatnonzero(np.diff(onset_s) < 0) + 1
    if times_restart_per_run:
        if len(restarts) != len(bounds_s) - 1:
            raise ValueError(
                f"{path}: {onset_column!r} restarts at zero {len(restarts)} time(s) (rows "
                f"{rows[restarts].tolist()}) but the scan has {len(bounds_s)} runs; check "
                "run_n_trs, or set times_restart_per_run=false if the times are global"
            )
        return np.searchsorted(restarts, np.arange(len(onset_s)), side="right")
    if len(restarts):
        i = restarts[0]
        raise ValueError(
            f"{path}: {onset_column!r} goes back in time at sheet row {rows[i]} ({onset_s[i - 1]:g} s -> "
            f"{onset_s[i]:g} s on the fMRI clock); taken at face value it maps later segments onto "
            "earlier TRs. If the seconds restart at each run (as the Sherlock sheet's do at the "
            "second scan) set times_restart_per_run=true, or use its TR columns (time_unit='tr')"
        )
    return np.clip(np.searchsorted(bounds_s[:, 1], onset_s, side="right"), 0, len(bounds_s) - 1)


def _clean_labels(column):
    """Strip strings; numbers become their text; empty cells become ``None``."""
    text = column.map(lambda v: None if pd.isna(v) else (f"{v:g}" if isinstance(v, float) else str(v)).strip())
    text = text.astype(object)
    return text.where(text.notna() & (text != ""), None)


def _clip_to_runs(onset_s, offset_s, bounds_s, rows, path, report):
    """Clip run-relative segments to their run's ``bounds_s`` (n_segments, 2) so none spills into another run."""
    start, end = bounds_s[:, 0], bounds_s[:, 1]
    keep = (onset_s < end) & (offset_s > start)
    if not keep.all():
        _warn(report, f"{path}: sheet rows {rows[~keep].tolist()} lie outside their run's scan; dropped", 4)
    clipped = keep & ((onset_s < start) | (offset_s > end))
    if clipped.any():
        _warn(report, f"{path}: sheet rows {rows[clipped].tolist()} run past their run's edge; clipped", 4)
    return np.clip(onset_s, start, end), np.clip(offset_s, start, end), keep


def _warn(report, message, stacklevel=3):
    """Record ``message`` in the report and warn the caller of :func:`read_annotations`."""
    report["warnings"].append(message)
    warnings.warn(message, stacklevel=stacklevel)
