"""Annotation tables (XLSX/CSV/TSV) read onto the fMRI clock, with their traps checked.

Times come in seconds or in TRs. Seconds are stimulus seconds, either on one clock for
the whole scan or restarting at zero at every run (the Sherlock sheet's seconds columns
restart at the second scan: segment 501 starts at 74 s but at TR 996). TR columns are
indices of the scan's TRs, by default 1-based and inclusive at both ends, as in Sherlock
(``Start Time (TRs, 1.5s)`` = 1 and ``End Time (TRs, 1.5s)`` = 8 is ``[0 s, 12 s)``).

Rows: empty rows are skipped. A row without times is skipped (and reported) only where it
takes no time on this clock: before the first or after the last timed row, or between two
rows that abut (Sherlock's TR columns are empty for segments 481-482, which play after scan 1
ends); anywhere else, a missing time or one that is not a number (``12,5``) is an error.
Segments may overlap (Sherlock's TR columns give adjacent segments the TR they share): each
TR weights every segment by its seconds of overlap, and the overlaps are reported.
Text tables must be UTF-8 (a BOM is allowed).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from giblet.config import check_choice
from giblet.text.tr_grid import interval_tr_weights, run_bounds_s, tr_run_ids

__all__ = ["AnnotationFormat", "Annotations", "read_annotations", "read_table", "TABLE_READERS", "TIME_UNITS"]

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
        What validation found: dropped rows, clipped segments, overlapping segments
        (``n_overlapping_rows``, ``overlapping_rows``: the first 10), coverage, warnings.
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
        ``.xlsx``, ``.xls``, ``.csv`` or ``.tsv``; text tables in UTF-8 (BOM allowed).
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
    if reader is pd.read_excel:
        table = reader(path, sheet_name=sheet)
    else:
        _check_utf8(path)
        table = reader(path)
    table.columns = [str(c).strip() for c in table.columns]
    return table


@dataclass(frozen=True)
class AnnotationFormat:
    """How an annotation table is laid out (the config's ``text`` section, less the embedding keys).

    Column names are stripped of surrounding whitespace, as the table's headers are.

    Attributes
    ----------
    onset_column, offset_column, text_column : str, default="onset", "offset", "description"
        Column names.
    label_columns : tuple of str, default=()
        Categorical columns kept in :attr:`Annotations.labels`.
    time_unit : {"s", "tr"}, default="s"
        ``"s"``: stimulus seconds. ``"tr"``: TR indices, inclusive at both ends.
    times_restart_per_run : bool, default=False
        Seconds restart at zero at every run (Sherlock's seconds columns); a row whose onset
        is earlier than the previous row's starts the next run. Only with ``time_unit="s"``.
    tr_first_index : int, default=1
        Index of the first TR in TR columns (Sherlock: 1).
    forward_fill_columns : tuple of str, default=()
        Label columns filled only where they change (Sherlock's ``Scene Segments``).
    min_coverage : float, default=0.9
        Smallest fraction of TRs the segments must overlap.
    sheet : int or str, default=0
        Excel sheet.
    """

    onset_column: str = "onset"
    offset_column: str = "offset"
    text_column: str = "description"
    label_columns: tuple = ()
    time_unit: str = "s"
    times_restart_per_run: bool = False
    tr_first_index: int = 1
    forward_fill_columns: tuple = ()
    min_coverage: float = 0.9
    sheet: int | str = 0

    def __post_init__(self):
        check_choice("time_unit", self.time_unit, TIME_UNITS)
        if self.times_restart_per_run and self.time_unit != "s":
            raise ValueError("times_restart_per_run applies to seconds only; set time_unit='s'")
        for name in ("onset_column", "offset_column", "text_column"):
            object.__setattr__(self, name, getattr(self, name).strip())
        for name in ("label_columns", "forward_fill_columns"):
            object.__setattr__(self, name, tuple(c.strip() for c in getattr(self, name)))
        unfillable = sorted(set(self.forward_fill_columns) - set(self.label_columns))
        if unfillable:
            raise ValueError(f"forward_fill_columns {unfillable} are not label_columns; add them to label_columns")


def read_annotations(path, timing, annotation_format):
    """Read annotated segments and place them on the fMRI clock.

    Parameters
    ----------
    path : str or Path
        Annotation table (see :func:`read_table`).
    timing : giblet.timing.ScanTiming
        The scan's TRs and runs; ``start_offset_s`` (one value) is subtracted from the seconds
        (of each run, with ``times_restart_per_run``) and unused with ``time_unit="tr"``.
    annotation_format : AnnotationFormat
        Columns, time unit and checks.

    Returns
    -------
    Annotations
    """
    path = Path(path)
    fmt, tr_s, n_trs = annotation_format, timing.tr_s, timing.n_trs
    onset_column, offset_column, text_column = fmt.onset_column, fmt.offset_column, fmt.text_column
    label_columns = list(fmt.label_columns)
    run_ids = tr_run_ids(n_trs, timing.run_n_trs)
    table = read_table(path, sheet=fmt.sheet)
    missing = [c for c in dict.fromkeys([onset_column, offset_column, text_column, *label_columns])
               if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path}: no column(s) {missing}; the columns are {list(table.columns)}; "
            "fix the column names in the text config"
        )
    report = {"source": str(path), "n_rows": len(table), "warnings": []}
    table = table.dropna(how="all")  # empty spreadsheet rows
    rows = table.index.to_numpy() + 2
    labels = table[label_columns].apply(_clean_labels)
    for column in fmt.forward_fill_columns:
        labels[column] = labels[column].ffill()
    texts = _clean_labels(table[text_column]).to_numpy()
    onset, offset = (_read_times(table[c], rows, path) for c in (onset_column, offset_column))
    onset_s, offset_s = TIME_UNITS[fmt.time_unit](
        onset, offset, tr_s=tr_s, tr_first_index=fmt.tr_first_index, start_offset_s=timing.start_offset_s
    )
    untimed = _untimed_rows(onset_s, offset_s, rows, path, onset_column, offset_column)
    if untimed.any():
        _warn(report, f"{path}: sheet rows {rows[untimed].tolist()} have no times and take no time on "
                      "this clock (their neighbours abut, or they lie outside the timed rows); skipped")
    no_text = pd.isna(texts) & ~untimed
    if no_text.any():
        _warn(report, f"{path}: sheet rows {rows[no_text].tolist()} have no {text_column!r}; dropped")
    keep = ~(untimed | no_text)
    labels, texts, rows, onset, offset, onset_s, offset_s = (
        labels[keep], texts[keep], rows[keep], onset[keep], offset[keep], onset_s[keep], offset_s[keep]
    )
    if (offset < onset).any():
        raise ValueError(
            f"{path}: sheet rows {rows[offset < onset].tolist()} end before they start "
            f"({offset_column!r} < {onset_column!r}); fix the sheet or swap the columns"
        )
    bounds_s = run_bounds_s(run_ids, tr_s)
    seg_runs = _segment_runs(onset_s, bounds_s, fmt.times_restart_per_run, rows, path, onset_column)
    if fmt.times_restart_per_run:
        onset_s, offset_s = onset_s + bounds_s[seg_runs, 0], offset_s + bounds_s[seg_runs, 0]
        onset_s, offset_s, keep = _clip_to_runs(onset_s, offset_s, bounds_s[seg_runs], rows, path, report)
        labels, texts, rows, onset_s, offset_s, seg_runs = (
            labels[keep], texts[keep], rows[keep], onset_s[keep], offset_s[keep], seg_runs[keep]
        )
    if (offset_s <= onset_s).any():
        _warn(report, f"{path}: sheet rows {rows[offset_s <= onset_s].tolist()} last 0 s and get no weight")
    overlapping = _overlapping_rows(onset_s, offset_s, rows)
    report.update(n_overlapping_rows=len(overlapping), overlapping_rows=overlapping[:10].tolist())
    if len(overlapping):
        log.warning("%s: %d segment(s) overlap an earlier one (first sheet rows: %s); each TR weights every "
                    "segment it overlaps by its seconds of overlap", path, len(overlapping), overlapping[:5].tolist())
    covered = np.asarray(interval_tr_weights(onset_s, offset_s, n_trs, tr_s).sum(axis=1)).ravel() > 0
    report.update(n_segments=len(rows), coverage=float(covered.mean()),
                  uncovered_trs=np.flatnonzero(~covered).tolist())
    if covered.mean() < fmt.min_coverage:
        raise ValueError(
            f"{path}: segments cover {covered.mean():.0%} of the {n_trs} TRs (need "
            f"{fmt.min_coverage:.0%}); check tr_s, run_n_trs, start_offset_s and time_unit, "
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


def _check_utf8(path):
    """Raise a ValueError naming the first byte of the text file ``path`` that is not UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}: not UTF-8: byte {error.start} (line {line}) is {data[error.start:error.end]!r}; "
            "save the file as UTF-8 (Excel: 'CSV UTF-8'; or iconv -f cp1252 -t utf-8)"
        ) from None


def _read_times(column, rows, path):
    """Times of one column, float64 (n_rows,); empty cells are NaN, other non-numbers an error."""
    times = pd.to_numeric(column, errors="coerce")
    bad = (times.isna() & _clean_labels(column).notna()).to_numpy()
    if bad.any():
        raise ValueError(
            f"{path}: {column.name!r} is not a number at sheet rows {rows[bad][:10].tolist()} "
            f"({column[bad][:10].tolist()}); write times as plain numbers with a decimal point "
            "(12.5, not 12,5)"
        )
    return times.to_numpy(np.float64)


def _untimed_rows(onset_s, offset_s, rows, path, onset_column, offset_column):
    """Rows without times that take no time on the clock (see the module docstring); others are errors."""
    untimed = np.isnan(onset_s) & np.isnan(offset_s)
    previous_end = pd.Series(np.where(untimed, np.nan, offset_s)).ffill().to_numpy()
    next_start = pd.Series(np.where(untimed, np.nan, onset_s)).bfill().to_numpy()
    missing = (np.isnan(onset_s) != np.isnan(offset_s)) | (untimed & (previous_end < next_start))
    if missing.any():
        raise ValueError(
            f"{path}: sheet rows {rows[missing].tolist()} lack {onset_column!r} or {offset_column!r}, "
            "so the time they annotate would get no features; fill in their times"
        )
    return untimed


def _overlapping_rows(onset_s, offset_s, rows):
    """Rows of the segments that start before an earlier-starting segment ends, in onset order."""
    order = np.argsort(onset_s, kind="stable")
    ends = np.maximum.accumulate(offset_s[order])
    return rows[order][1:][onset_s[order][1:] < ends[:-1]]


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
