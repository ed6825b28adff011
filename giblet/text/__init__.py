"""Text features: annotations on the fMRI clock, sentence embeddings, labels and retrieval."""

from giblet._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "annotations": ["AnnotationFormat", "read_annotations"],
    "embed": ["embed_texts"],
    "retrieval": ["TextIndex"],
    "stage": ["TextConfig", "run_extract_text"],
})
