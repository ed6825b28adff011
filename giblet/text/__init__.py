"""Text features: annotations on the fMRI clock, sentence embeddings, labels and retrieval."""

from giblet.text.annotations import AnnotationFormat, read_annotations
from giblet.text.embed import embed_texts
from giblet.text.retrieval import TextIndex
from giblet.text.stage import TextConfig, run_extract_text

__all__ = [
    "run_extract_text", "TextConfig", "AnnotationFormat", "read_annotations", "embed_texts", "TextIndex",
]
