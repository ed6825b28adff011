"""Continuous views of code streams for encoding models.

Codes are categories: these views look codes up in the codec's own codebook
vectors or count them; no index is ever averaged, interpolated or regressed.
"""

from __future__ import annotations

import numpy as np

from giblet.audio.codes import codes_by_tr
from giblet.features import FeatureTable

__all__ = ["quantized_latent", "pooled_embeddings", "pooled_from_usage", "code_histograms"]


def _check_vectors(stream, codebook_vectors):
    vectors = np.asarray(codebook_vectors, dtype=np.float32)
    if vectors.ndim != 3 or vectors.shape[0] < stream.n_codebooks or stream.codes.max(initial=0) >= vectors.shape[1]:
        raise ValueError(
            f"codebook_vectors {vectors.shape} (n_codebooks, codebook_size, dim) do not cover codes with "
            f"{stream.n_codebooks} codebooks and max index {stream.codes.max(initial=0)}; "
            "use the vectors of the codec that made the codes"
        )
    return vectors[: stream.n_codebooks]


def _histograms(stream, codebook_size, tr_s, n_trs, first_tr):
    """Fraction of each TR's frames using each code: (n_trs, n_codebooks, codebook_size) float32."""
    if stream.codes.max(initial=0) >= codebook_size:
        raise ValueError(
            f"codes reach index {stream.codes.max()} but codebook_size is {codebook_size}; "
            "pass the codebook size of the codec that made the codes"
        )
    codes, mask = codes_by_tr(stream, tr_s, n_trs, first_tr)
    trs, slots = np.nonzero(mask)
    counts = np.stack([
        np.bincount(trs * codebook_size + codes[trs, q, slots], minlength=n_trs * codebook_size).reshape(n_trs, -1)
        for q in range(stream.n_codebooks)
    ], axis=1)
    return (counts / mask.sum(axis=1)[:, None, None]).astype(np.float32)


def _tr_times(n_trs, tr_s, first_tr):
    return (first_tr + np.arange(n_trs)) * tr_s


def quantized_latent(stream, codebook_vectors, runs=None):
    """Per-frame quantized latent: the sum of each frame's code vectors.

    Parameters
    ----------
    stream : CodeStream
    codebook_vectors : ndarray, shape (n_codebooks, codebook_size, dim), float32
        :meth:`EncodecCodec.codebook_vectors`.
    runs : ndarray of int, shape (n_frames,), optional
        Run index of each frame.

    Returns
    -------
    FeatureTable
        ``values`` (n_frames, dim) float32 at the codec frame rate; ``times_s`` are
        frame start times in seconds from the first fMRI frame.
    """
    vectors = _check_vectors(stream, codebook_vectors)
    values = np.zeros((stream.n_frames, vectors.shape[2]), dtype=np.float32)
    for codebook, codes in zip(vectors, stream.codes):
        values += codebook[codes]
    names = tuple(f"latent_{d:03d}" for d in range(vectors.shape[2]))
    return FeatureTable(values, stream.times_s, names, "continuous", runs, {**stream.meta, "view": "quantized_latent"})


def pooled_embeddings(stream, codebook_vectors, tr_s, n_trs, first_tr=0, runs=None):
    """Mean code vector within each TR, per codebook and summed over codebooks.

    Parameters
    ----------
    stream : CodeStream
    codebook_vectors : ndarray, shape (n_codebooks, codebook_size, dim), float32
    tr_s : float
        Repetition time, in seconds.
    n_trs : int
    first_tr : int, default=0
    runs : ndarray of int, shape (n_trs,), optional

    Returns
    -------
    FeatureTable
        ``values`` (n_trs, (n_codebooks + 1) * dim) float32: ``cb{q}_{d}`` for each
        codebook, then ``sum_{d}`` (the TR-mean quantized latent); TR start times.
    """
    vectors = _check_vectors(stream, codebook_vectors)
    values = pooled_from_usage(_histograms(stream, vectors.shape[1], tr_s, n_trs, first_tr), vectors)
    n_codebooks, dim = vectors.shape[0], vectors.shape[2]
    names = tuple(f"{p}_{d:03d}" for p in [f"cb{q}" for q in range(n_codebooks)] + ["sum"] for d in range(dim))
    meta = {**stream.meta, "view": "pooled_embeddings", "tr_s": tr_s}
    return FeatureTable(values, _tr_times(n_trs, tr_s, first_tr), names, "continuous", runs, meta)


def pooled_from_usage(usage, codebook_vectors):
    """Mean code vectors of TRs from their code usage: the :func:`pooled_embeddings` layout.

    The mean of a TR's code vectors is its code histogram times the codebook, so a decoded code
    distribution (its expected usage) maps to the same space as the true codes.

    Parameters
    ----------
    usage : ndarray, shape (n_trs, n_codebooks, codebook_size), float
        Per TR and codebook, the fraction of frames using each code (or its expectation).
    codebook_vectors : ndarray, shape (n_codebooks, codebook_size, dim), float

    Returns
    -------
    ndarray, shape (n_trs, (n_codebooks + 1) * dim)
        Per codebook, then summed over codebooks (the TR-mean quantized latent); in the wider dtype of the inputs.
    """
    per_codebook = np.einsum("tqk,qkd->tqd", usage, np.asarray(codebook_vectors))
    return np.concatenate([per_codebook, per_codebook.sum(axis=1, keepdims=True)], axis=1).reshape(len(usage), -1)


def code_histograms(stream, codebook_size, tr_s, n_trs, first_tr=0, runs=None):
    """Fraction of each TR's frames that use each code, per codebook.

    Parameters
    ----------
    stream : CodeStream
    codebook_size : int
    tr_s : float
        Repetition time, in seconds.
    n_trs : int
    first_tr : int, default=0
    runs : ndarray of int, shape (n_trs,), optional

    Returns
    -------
    FeatureTable
        kind ``"labels"``; ``values`` (n_trs, n_codebooks * codebook_size) float32,
        each codebook's block sums to 1 per TR; names ``cb{q}_code{i}``.
    """
    values = _histograms(stream, codebook_size, tr_s, n_trs, first_tr)
    n_codebooks = stream.n_codebooks
    names = tuple(f"cb{q}_code{i:04d}" for q in range(n_codebooks) for i in range(codebook_size))
    meta = {**stream.meta, "view": "code_histograms", "tr_s": tr_s}
    return FeatureTable(values.reshape(n_trs, -1), _tr_times(n_trs, tr_s, first_tr), names, "labels", runs, meta)
