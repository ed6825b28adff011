"""Text features: annotations on the fMRI clock, sentence embeddings, labels and retrieval."""

from giblet.text.annotations import (
    TABLE_READERS,
    TIME_UNITS,
    AnnotationFormat,
    Annotations,
    read_annotations,
    read_table,
)
from giblet.text.embed import DEFAULT_TEXT_MODEL, PACKAGED_TEXT_MODELS, embed_texts, load_text_model, resolve_text_model
from giblet.text.labels import label_indicators
from giblet.text.retrieval import TextIndex
from giblet.text.stage import TEXT_OUTPUTS, TextConfig, run_extract_text
from giblet.text.tr_grid import TRAccumulator, interval_tr_weights, overlap_mean, run_bounds_s, tr_run_ids

__all__ = [
    "AnnotationFormat",
    "Annotations",
    "DEFAULT_TEXT_MODEL",
    "PACKAGED_TEXT_MODELS",
    "TABLE_READERS",
    "TEXT_OUTPUTS",
    "TIME_UNITS",
    "TRAccumulator",
    "TextConfig",
    "TextIndex",
    "embed_texts",
    "interval_tr_weights",
    "label_indicators",
    "load_text_model",
    "overlap_mean",
    "read_annotations",
    "read_table",
    "resolve_text_model",
    "run_bounds_s",
    "run_extract_text",
    "tr_run_ids",
]
