"""Scores of code distributions: per-TR code counts, cross-entropies in nats per code and bits per
code gained over a reference (the training unigram), with block-bootstrap CIs and a circular-shift null.

Codes are categories: a TR's codes are scored by the log-probability its distribution gives them
(one-hot counts times log-probabilities), never averaged or regressed.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["code_counts", "unigram_frequencies", "tr_cross_entropy", "tr_bits_gained", "bits_per_code",
           "score_code_model"]

_LN2 = math.log(2.0)


def code_counts(codes, mask, codebook_size):
    """How often each code is used in each TR.

    Parameters
    ----------
    codes : ndarray, shape (n_trs, n_codebooks, width), int
        Per-TR code slots (:func:`~giblet.audio.codes.codes_by_tr`).
    mask : ndarray, shape (n_trs, width), bool
        Real frame slots.
    codebook_size : int

    Returns
    -------
    ndarray, shape (n_trs, n_codebooks, codebook_size), float64
        Frame counts; ``counts[t, k].sum() == mask[t].sum()``.
    """
    codes, mask = np.asarray(codes), np.asarray(mask, dtype=bool)
    if codes.ndim != 3 or mask.shape != (codes.shape[0], codes.shape[2]):
        raise ValueError(f"codes {codes.shape} (n_trs, n_codebooks, width) and mask {mask.shape} (n_trs, width) "
                         "do not match; pass codes_by_tr's codes and mask")
    n_trs, n_codebooks, _ = codes.shape
    trs, slots = np.nonzero(mask)
    used = codes[trs, :, slots]  # (n_real_frames, n_codebooks)
    if used.size and (used.min() < 0 or used.max() >= codebook_size):
        raise ValueError(f"codes span [{used.min()}, {used.max()}] but codebook_size is {codebook_size}; "
                         "pass the codebook size of the codec that made the codes")
    flat = (trs[:, None] * n_codebooks + np.arange(n_codebooks)) * codebook_size + used
    counts = np.bincount(flat.ravel(), minlength=n_trs * n_codebooks * codebook_size)
    return counts.reshape(n_trs, n_codebooks, codebook_size).astype(np.float64)


def unigram_frequencies(counts, smoothing_counts=0.5):
    """Smoothed code frequencies of the given TRs: the unigram prior.

    Parameters
    ----------
    counts : ndarray, shape (n_trs, n_codebooks, codebook_size), float
    smoothing_counts : float, default=0.5
        Pseudo-count added to every code.

    Returns
    -------
    ndarray, shape (n_codebooks, codebook_size), float64
        ``(n_c + a) / (n + a * codebook_size)`` per codebook; rows sum to 1.
    """
    total = np.asarray(counts, dtype=np.float64).sum(axis=0) + smoothing_counts
    return total / total.sum(axis=1, keepdims=True)


def tr_cross_entropy(log_probs, counts):
    """Cross-entropy of every TR's codes under its code distribution, per codebook.

    Parameters
    ----------
    log_probs : ndarray or Tensor, shape (n_trs, n_codebooks, codebook_size), float
        Natural-log probabilities, shared by all frames of a TR (finite).
    counts : ndarray or Tensor, shape (n_trs, n_codebooks, codebook_size), float
        Code counts (:func:`code_counts`).

    Returns
    -------
    ndarray or Tensor, shape (n_trs, n_codebooks), float
        Mean over the TR's frames of ``-log p(code)``, in nats per code; NaN for a TR without frames.
    """
    return -(counts * log_probs).sum(-1) / counts.sum(-1)


def tr_bits_gained(log_probs, reference_log_probs, counts):
    """Bits per code a model gains over a reference on every TR's true codes, per codebook.

    Parameters
    ----------
    log_probs, reference_log_probs : ndarray, shape (n_trs or 1, n_codebooks, codebook_size), float
        Natural-log code probabilities of the model and of the reference (e.g. the unigram prior).
    counts : ndarray, shape (n_trs, n_codebooks, codebook_size), float
        Code counts (:func:`code_counts`).

    Returns
    -------
    ndarray, shape (n_trs, n_codebooks), float64
        ``(CE_reference - CE_model) / ln 2``; NaN for a TR without frames.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return (tr_cross_entropy(np.asarray(reference_log_probs, np.float64), counts)
                - tr_cross_entropy(np.asarray(log_probs, np.float64), counts)) / _LN2


def bits_per_code(ce_reference, ce_model, n_frames):
    """Bits per code gained by a model over a reference, averaged over frames and codebooks.

    Parameters
    ----------
    ce_reference, ce_model : ndarray, shape (n_trs, n_codebooks), float
        Per-TR cross-entropies in nats per code (:func:`tr_cross_entropy`).
    n_frames : ndarray, shape (n_trs,), int
        Frames of every TR (the weights).

    Returns
    -------
    float
        ``sum_t n_t * mean_k (ce_reference - ce_model)[t, k] / (ln 2 * sum_t n_t)``.
    """
    n_frames = np.asarray(n_frames, dtype=np.float64)
    gain = (np.asarray(ce_reference) - np.asarray(ce_model)).mean(axis=1) / _LN2
    return float((gain * n_frames).sum() / n_frames.sum())


def _bits_with_ci(ce_reference, ce_model, n_frames, *, n_bootstrap, block_trs, seed):
    """Mean bits per code gained and its moving-block bootstrap CI; per codebook and over codebooks."""
    from giblet.evaluation.metrics import bootstrap_ci  # lazy: giblet.evaluation imports giblet.audio

    weights = n_frames / n_frames.mean()  # frame-weighted: the plain mean over TRs is the mean over frames
    gain = (ce_reference - ce_model) / _LN2 * weights[:, None]  # (n_trs, n_codebooks)
    block = min(block_trs, len(gain))
    per_codebook = bootstrap_ci(gain, n_bootstrap=n_bootstrap, seed=seed, block_trs=block)
    overall = bootstrap_ci(gain.mean(axis=1), n_bootstrap=n_bootstrap, seed=seed, block_trs=block)
    return overall, per_codebook


def score_code_model(model, counts, descriptor, *, n_bootstrap=1000, block_trs=5, n_permutations=1000, seed=0,
                     frame_rate_hz=75.0):
    """Cross-entropies and bits per code gained over the unigram prior on held-out TRs.

    Parameters
    ----------
    model : CodeModel
    counts : ndarray, shape (n_trs, n_codebooks, codebook_size), float
        Code counts of the scored TRs (the test block), in time order.
    descriptor : ndarray, shape (n_trs, n_features), float
        Their descriptor (the true one: the oracle; or one decoded from BOLD).
    n_bootstrap : int, default=1000
    block_trs : int, default=5
        Moving-block length of the bootstrap and smallest circular shift of the null, in TRs.
    n_permutations : int, default=1000
        Circular shifts of the descriptor against the codes (all allowed shifts when fewer).
    seed : int, default=0
    frame_rate_hz : float, default=75.0
        Codec frame rate, for bits per second.

    Returns
    -------
    dict
        JSON-able: ``n_trs``, ``n_frames``, ``cross_entropy_nats`` (``unigram``, ``code_model``),
        ``bits_per_code`` (``mean``, ``ci_low``, ``ci_high``, ``null_mean``, ``p``: the circular-shift
        null), ``bits_per_s``, and ``per_codebook``: a list of the same numbers per codebook level.
        Means are over frames (TRs weighted by their frame counts) and codebooks.
    """
    from giblet.evaluation.nulls import permutation_test  # lazy: giblet.evaluation imports giblet.audio

    counts, descriptor = np.asarray(counts, dtype=np.float64), np.asarray(descriptor, dtype=np.float64)
    n_frames = counts[:, 0].sum(axis=1)
    if len(counts) != len(descriptor) or not (n_frames > 0).all():
        raise ValueError(f"counts {counts.shape} and descriptor {descriptor.shape} must hold the same TRs, each with "
                         "frames")
    ce_unigram = tr_cross_entropy(model.unigram_log_probs(len(counts)), counts)
    ce_model = tr_cross_entropy(model.log_probs(descriptor), counts)
    weights = n_frames / n_frames.sum()
    (mean, low, high), (cb_mean, cb_low, cb_high) = _bits_with_ci(
        ce_unigram, ce_model, n_frames, n_bootstrap=n_bootstrap, block_trs=block_trs, seed=seed)
    null = None
    if len(counts) > 2 * block_trs:
        def score(shifted):
            return bits_per_code(ce_unigram, tr_cross_entropy(model.log_probs(shifted), counts), n_frames)

        null = permutation_test(score, descriptor, method="circular", n_permutations=n_permutations, seed=seed,
                                min_shift_trs=block_trs)
    per_codebook = []
    for k in range(model.n_codebooks):
        per_codebook.append({
            "codebook": k,
            "cross_entropy_nats": {"unigram": float(weights @ ce_unigram[:, k]),
                                   "code_model": float(weights @ ce_model[:, k])},
            "bits_per_code": {"mean": float(cb_mean[k]), "ci_low": float(cb_low[k]), "ci_high": float(cb_high[k])},
        })
    return {
        "n_trs": int(len(counts)),
        "n_frames": int(n_frames.sum()),
        "cross_entropy_nats": {"unigram": float(weights @ ce_unigram.mean(axis=1)),
                               "code_model": float(weights @ ce_model.mean(axis=1))},
        "bits_per_code": {"mean": float(mean), "ci_low": float(low), "ci_high": float(high),
                          "null_mean": None if null is None else float(null.null_mean),
                          "p": None if null is None else float(null.p),
                          "n_permutations": 0 if null is None else null.n_permutations},
        "bits_per_s": float(mean * model.n_codebooks * frame_rate_hz),
        "per_codebook": per_codebook,
    }
