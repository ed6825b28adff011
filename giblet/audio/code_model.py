"""Code model: p(EnCodec codes of a TR | the TR's audio descriptor), trained on audio alone.

One softmax per codebook, linear in the standardised per-TR descriptor ``d_t`` (e.g. the 32-band
log-mel of ``audio_logmel_tr.npz``)::

    p(code c at any frame of TR t in codebook k) = softmax_c(W_k z_t + b_k),   z_t = (d_t - mean) / scale

Every frame of a TR shares the TR's distribution, so the model is fitted on per-TR code *counts*
(one-hot counts, cross-entropy weighted by the counts; codes are categories and are never averaged
or regressed). ``b_k`` starts at, and is penalised toward, the log of the smoothed training code
frequencies (the unigram prior); ``W_k`` is penalised toward 0. With no information in the
descriptor the model therefore *is* the unigram prior. The penalty is chosen per codebook on the
validation block, then the model is refitted on every non-test TR of the film (the test block and
the gap TRs next to it are never used).

Scores are cross-entropies in nats per code (per frame and codebook) and **bits per code gained
over the training unigram**, ``(CE_unigram - CE_model) / ln 2``, averaged over the frames and
codebooks of the test block. Sampling (:func:`sample_codes`) draws one code per frame slot from a
TR's distribution (Gumbel-max, seeded); the frozen codec decoder turns the draws into waveforms.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from scipy.special import log_softmax
from torch import nn

from giblet.audio.codes import PAD_CODE, CodeStream, _frames_per_tr, codes_by_tr, stream_from_trs, tr_frame_spans
from giblet.compute import resolve_device
from giblet.features import FeatureTable
from giblet.io import save_npz, write_json
from giblet.splits import BLOCKS, GAP

__all__ = [
    "CODE_MODEL_OUTPUTS",
    "CodeModelConfig",
    "CodeModel",
    "CodeModelHead",
    "code_counts",
    "unigram_frequencies",
    "code_model_rows",
    "fit_code_model",
    "select_code_model",
    "tr_cross_entropy",
    "tr_bits_gained",
    "bits_per_code",
    "score_code_model",
    "sample_codes",
    "sample_stream",
    "run_fit_code_model",
    "run_score_code_model",
]

log = logging.getLogger(__name__)

#: Files ``run_fit_code_model`` writes into its output folder.
CODE_MODEL_OUTPUTS = {
    "model": "code_model.npz",  # weights, descriptor standardisation, unigram prior, chosen penalties
    "scores": "code_model_scores.json",  # test-block cross-entropies and bits per code gained, with CIs
}
_SAMPLE_CHUNK_TRS = 8  # TRs of Gumbel noise drawn at once
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class CodeModelConfig:
    """Settings of the code model (config section ``code_model``).

    Attributes
    ----------
    descriptor : str, default="audio_logmel_tr.npz"
        Per-TR descriptor table (``FeatureTable``, shape (n_trs, n_features)) in the features folder.
    l2_grid : tuple of float, default=(1e-4, 1e-3, 1e-2, 0.1, 1.0)
        Penalties tried, per squared weight, added to each codebook's mean cross-entropy per code (nats);
        the one with the lowest validation cross-entropy is kept for each codebook. 1.0 leaves about the
        unigram prior (a descriptor without information gains nothing).
    smoothing_counts : float, default=0.5
        Pseudo-count added to every code of the unigram prior (0.5: Krichevsky-Trofimov), so that a code
        unseen in training keeps a finite cross-entropy.
    max_iter : int, default=100
        L-BFGS iterations per fit (on the demo the fits converge in about 60).
    """

    descriptor: str = "audio_logmel_tr.npz"
    l2_grid: tuple = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
    smoothing_counts: float = 0.5
    max_iter: int = 100

    def __post_init__(self):
        grid = tuple(float(v) for v in self.l2_grid)
        if not grid or min(grid) <= 0:
            raise ValueError(f"code_model.l2_grid must be one or more positive penalties, got {list(self.l2_grid)}")
        if self.smoothing_counts <= 0:
            raise ValueError(f"code_model.smoothing_counts must be > 0, got {self.smoothing_counts}")
        if self.max_iter < 1:
            raise ValueError(f"code_model.max_iter must be >= 1, got {self.max_iter}")
        object.__setattr__(self, "l2_grid", grid)

    @classmethod
    def from_dict(cls, section):
        """The config from the ``code_model`` section of a validated config (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"code_model: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**section)


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


@dataclass(frozen=True)
class CodeModel:
    """A fitted code model (see the module docstring).

    Attributes
    ----------
    weight : ndarray, shape (n_codebooks, codebook_size, n_features), float64
        Logit change per standardised descriptor unit.
    bias : ndarray, shape (n_codebooks, codebook_size), float64
        Logits at the training-mean descriptor.
    mean, scale : ndarray, shape (n_features,), float64
        Descriptor standardisation, fitted on the training TRs only (``scale`` 1 for constant features).
    unigram : ndarray, shape (n_codebooks, codebook_size), float64
        Smoothed code frequencies of the training TRs (the prior the bias is penalised toward).
    l2 : ndarray, shape (n_codebooks,), float64
        Penalty of every codebook.
    feature_names : tuple of str, length n_features
    meta : dict
        JSON-able provenance (codec, descriptor file, training TRs, validation scores...).
    """

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    unigram: np.ndarray
    l2: np.ndarray
    feature_names: tuple = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        weight = np.asarray(self.weight, dtype=np.float64)
        if weight.ndim != 3:
            raise ValueError(f"weight must be (n_codebooks, codebook_size, n_features), got shape {weight.shape}")
        n_codebooks, size, n_features = weight.shape
        expected = {"bias": (n_codebooks, size), "unigram": (n_codebooks, size), "mean": (n_features,),
                    "scale": (n_features,), "l2": (n_codebooks,)}
        for name, shape in expected.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if name == "l2":
                value = np.broadcast_to(value, shape).copy()
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {shape} to match weight {weight.shape}, got {value.shape}")
            object.__setattr__(self, name, value)
        names = tuple(self.feature_names) or tuple(f"descriptor_{i:02d}" for i in range(n_features))
        if len(names) != n_features:
            raise ValueError(f"{n_features} descriptor features but {len(names)} feature_names")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "feature_names", names)

    @property
    def n_codebooks(self) -> int:
        return self.weight.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.weight.shape[1]

    @property
    def n_features(self) -> int:
        return self.weight.shape[2]

    def _check_descriptor(self, descriptor):
        descriptor = np.asarray(descriptor, dtype=np.float64)
        if descriptor.ndim != 2 or descriptor.shape[1] != self.n_features:
            raise ValueError(f"descriptor must be (n_trs, {self.n_features}) like the training descriptor "
                             f"({', '.join(self.feature_names[:3])}, ...), got shape {descriptor.shape}")
        return descriptor

    def standardize(self, descriptor):
        """``(descriptor - mean) / scale``: (n_trs, n_features) float64."""
        return (self._check_descriptor(descriptor) - self.mean) / self.scale

    def log_probs(self, descriptor):
        """Log-probabilities of the codes of TRs with these descriptors.

        Parameters
        ----------
        descriptor : ndarray, shape (n_trs, n_features), float
            In the units of the training descriptor (not standardised).

        Returns
        -------
        ndarray, shape (n_trs, n_codebooks, codebook_size), float64
            Natural-log probabilities, shared by every frame of a TR.
        """
        logits = np.einsum("tf,kcf->tkc", self.standardize(descriptor), self.weight) + self.bias
        return log_softmax(logits, axis=-1)

    def unigram_log_probs(self, n_trs):
        """The prior for ``n_trs`` TRs: (n_trs, n_codebooks, codebook_size) float64 (a broadcast view)."""
        return np.broadcast_to(np.log(self.unigram), (n_trs,) + self.unigram.shape)

    def head(self, trainable=False, device="cpu", dtype=torch.float32):
        """The model as a torch module (the autoencoder's audio head); see :class:`CodeModelHead`."""
        head = CodeModelHead(self.n_codebooks, self.codebook_size, self.n_features, trainable=trainable)
        head.set_model(self)
        return head.to(device=device, dtype=dtype)

    def save(self, path) -> Path:
        """Write the model to ``path`` (``.npz``) atomically."""
        return save_npz(path, weight=self.weight, bias=self.bias, mean=self.mean, scale=self.scale,
                        unigram=self.unigram, l2=self.l2, feature_names=np.asarray(self.feature_names, dtype=str),
                        meta=np.asarray(json.dumps(self.meta, sort_keys=True)))

    @classmethod
    def load(cls, path) -> "CodeModel":
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            return cls(weight=z["weight"], bias=z["bias"], mean=z["mean"], scale=z["scale"], unigram=z["unigram"],
                       l2=z["l2"], feature_names=tuple(str(n) for n in z["feature_names"]),
                       meta=json.loads(str(z["meta"])))


class CodeModelHead(nn.Module):
    """A :class:`CodeModel` in torch: descriptor -> code log-probabilities, differentiable in the descriptor.

    Parameters
    ----------
    n_codebooks, codebook_size, n_features : int
        Sizes of the :class:`CodeModel` it holds (:meth:`set_model`; until then every code is equally likely).
    trainable : bool, default=False
        Whether ``weight`` and ``bias`` take gradients (False: the head is frozen, as trained on audio).

    Notes
    -----
    ``mean`` and ``scale`` (the training standardisation) and ``log_prior`` (the log of the unigram
    prior, the reference of every bits-per-code score) are buffers, ``weight`` and ``bias`` parameters.
    """

    def __init__(self, n_codebooks, codebook_size, n_features, trainable=False):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("log_prior", torch.full((n_codebooks, codebook_size), -math.log(codebook_size)))
        self.weight = nn.Parameter(torch.zeros(n_codebooks, codebook_size, n_features), requires_grad=trainable)
        self.bias = nn.Parameter(torch.zeros(n_codebooks, codebook_size), requires_grad=trainable)

    def set_model(self, model):
        """Copy a fitted :class:`CodeModel` of the same sizes into the head."""
        if tuple(model.weight.shape) != tuple(self.weight.shape):
            raise ValueError(f"the code model has (n_codebooks, codebook_size, n_features) = {model.weight.shape} but "
                             f"this head was built for {tuple(self.weight.shape)}; refit the code model on the same "
                             "codes and descriptor")
        with torch.no_grad():
            for name in ("mean", "scale", "weight", "bias"):
                getattr(self, name).copy_(torch.as_tensor(getattr(model, name)))
            self.log_prior.copy_(torch.as_tensor(np.log(model.unigram)))

    def standardize(self, descriptor):
        """``(descriptor - mean) / scale``, shape (..., n_features)."""
        return (descriptor - self.mean) / self.scale

    def log_probs_standardized(self, z):
        """Code log-probabilities from a standardised descriptor.

        Parameters
        ----------
        z : Tensor, shape (..., n_features), float

        Returns
        -------
        Tensor, shape (..., n_codebooks, codebook_size), float
        """
        logits = torch.einsum("...f,kcf->...kc", z, self.weight) + self.bias
        return torch.log_softmax(logits, dim=-1)

    def forward(self, descriptor, confidence=1.0):
        """Code log-probabilities of TRs with descriptor ``descriptor`` (..., n_features), in training units.

        ``confidence`` (in [0, 1]) tempers the model toward its prior for a descriptor known only
        through a noisy estimate (decoded from BOLD): ``log p = log_softmax(c * logits + (1 - c) *
        log_prior)``; 1 is the model itself, 0 the prior.

        Returns
        -------
        Tensor, shape (..., n_codebooks, codebook_size), float
            Natural-log probabilities shared by every frame of a TR.
        """
        log_probs = self.log_probs_standardized(self.standardize(descriptor))
        if float(confidence) == 1.0:
            return log_probs
        return torch.log_softmax(confidence * log_probs + (1 - confidence) * self.log_prior, dim=-1)


def _contiguous(mask):
    """``(start, stop)`` of every stretch of True in ``mask``."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _gaps_next_to(labels, block):
    """Gap TRs in a stretch of gap TRs that touches a TR of ``block``."""
    inside = labels == BLOCKS.index(block)
    out = np.zeros(len(labels), dtype=bool)
    for start, stop in _contiguous(labels == GAP):
        if (start > 0 and inside[start - 1]) or (stop < len(labels) and inside[stop]):
            out[start:stop] = True
    return out


def code_model_rows(labels):
    """Which TRs the code model is fitted, selected and scored on.

    Parameters
    ----------
    labels : ndarray, shape (n_trs,), int
        Block of every TR on the stimulus clock (``BLOCKS`` index, ``GAP``).

    Returns
    -------
    dict of str to ndarray, shape (n_trs,), bool
        ``"fit"``: every TR but the test block and the gap TRs next to it (the final fit);
        ``"select"``: the fit TRs less the validation block and the gap TRs next to it (fits whose
        penalty is scored on ``"val"``); ``"val"``; ``"test"``; ``"left_out"``: the gap TRs next
        to the test block.
    """
    labels = np.asarray(labels)
    test, val = labels == BLOCKS.index("test"), labels == BLOCKS.index("val")
    left_out = _gaps_next_to(labels, "test")
    fit = ~test & ~left_out
    select = fit & ~val & ~_gaps_next_to(labels, "val")
    return {"fit": fit, "select": select, "val": val, "test": test, "left_out": left_out}


def _standardization(descriptor):
    mean, scale = descriptor.mean(axis=0), descriptor.std(axis=0)
    scale[~(scale > 0)] = 1.0
    return mean, scale


def _fit_weights(counts, z, log_prior, l2, init, max_iter, device):
    """L-BFGS on the penalised mean cross-entropy; returns (weight, bias, iterations) as float64 arrays."""
    dtype = torch.float32  # float64 fits the same to 1e-4 nats at twice the time
    n_codebooks, size = log_prior.shape
    as_tensor = lambda a: torch.tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731  (a copy)
    counts_t, z_t, prior_t = as_tensor(counts), as_tensor(z), as_tensor(log_prior)
    frames = counts_t.sum(dim=(0, 2))  # (n_codebooks,)
    l2_t = as_tensor(l2)
    weight0, bias0 = init if init is not None else (np.zeros((n_codebooks, size, z.shape[1])), log_prior)
    weight = as_tensor(weight0).requires_grad_(True)
    bias = as_tensor(bias0).requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-7, tolerance_change=1e-8, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        logits = torch.einsum("tf,kcf->tkc", z_t, weight) + bias
        cross_entropy = -(counts_t * torch.log_softmax(logits, dim=-1)).sum(dim=(0, 2)) / frames
        penalty = l2_t * (weight.pow(2).sum(dim=(1, 2)) + (bias - prior_t).pow(2).sum(dim=1))
        loss = (cross_entropy + penalty).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    n_iter = optimizer.state[weight].get("n_iter", 0)
    return weight.detach().cpu().double().numpy(), bias.detach().cpu().double().numpy(), int(n_iter)


def fit_code_model(counts, descriptor, *, l2, smoothing_counts=0.5, max_iter=100, device="cpu", init=None,
                   feature_names=(), meta=None):
    """Fit the code model on the given TRs (all of them: select the rows before calling).

    Minimises, for every codebook ``k``, the mean cross-entropy per code of the TRs' codes plus
    ``l2[k] * (|W_k|^2 + |b_k - log prior_k|^2)``, by full-batch L-BFGS from ``W = 0``, ``b = log prior``
    (or ``init``). Deterministic: no random numbers are drawn.

    Parameters
    ----------
    counts : ndarray, shape (n_trs, n_codebooks, codebook_size), float
        Per-TR code counts (:func:`code_counts`): every frame weighs the same.
    descriptor : ndarray, shape (n_trs, n_features), float
        Per-TR descriptor of the same TRs; standardised with their own mean and standard deviation.
    l2 : float or ndarray, shape (n_codebooks,)
        Penalty of every codebook.
    smoothing_counts : float, default=0.5
        Pseudo-count per code of the unigram prior.
    max_iter : int, default=100
        L-BFGS iterations.
    device : str or torch.device, default="cpu"
        Where the fit runs (in float32).
    init : tuple (weight, bias) of ndarrays, optional
        Starting point (e.g. the solution at a neighbouring penalty).
    feature_names : tuple of str, optional
    meta : dict, optional

    Returns
    -------
    CodeModel
    """
    counts, descriptor = np.asarray(counts, dtype=np.float64), np.asarray(descriptor, dtype=np.float64)
    if counts.ndim != 3 or descriptor.ndim != 2 or len(counts) != len(descriptor):
        raise ValueError(f"counts {counts.shape} (n_trs, n_codebooks, codebook_size) and descriptor "
                         f"{descriptor.shape} (n_trs, n_features) must hold the same TRs")
    if not len(counts) or not counts.sum(axis=(0, 2)).all():
        raise ValueError(f"no code frames to fit among {len(counts)} TRs; pass the training TRs' counts")
    if not np.isfinite(descriptor).all():
        raise ValueError(f"descriptor has {np.count_nonzero(~np.isfinite(descriptor))} non-finite values on "
                         "training TRs; fill or drop them before fitting")
    device = torch.device(device)
    unigram = unigram_frequencies(counts, smoothing_counts)
    mean, scale = _standardization(descriptor)
    l2 = np.broadcast_to(np.asarray(l2, dtype=np.float64), (counts.shape[1],))
    weight, bias, n_iter = _fit_weights(counts, (descriptor - mean) / scale, np.log(unigram), l2, init, max_iter,
                                        device)
    if n_iter >= max_iter:
        log.info("code model: L-BFGS stopped at max_iter=%d (raise code_model.max_iter to fit more tightly)", max_iter)
    meta = {**(meta or {}), "lbfgs_iterations": n_iter, "smoothing_counts": smoothing_counts, "n_fit_trs": len(counts),
            "n_fit_frames": int(counts[:, 0].sum())}
    return CodeModel(weight, bias, mean, scale, unigram, l2.copy(), tuple(feature_names), meta)


def _frame_mean_ce(model, counts, descriptor):
    """Cross-entropy per code of each codebook over all frames of the TRs: (n_codebooks,) float64."""
    ce = tr_cross_entropy(model.log_probs(descriptor), counts)
    frames = counts[:, 0].sum(axis=1)
    return (ce * frames[:, None]).sum(axis=0) / frames.sum()


def select_code_model(counts, descriptor, rows, *, l2_grid, smoothing_counts=0.5, max_iter=100, device="cpu",
                      feature_names=(), meta=None):
    """Choose every codebook's penalty on the validation block, then refit on all fit TRs.

    Parameters
    ----------
    counts : ndarray, shape (n_trs, n_codebooks, codebook_size), float
        Code counts of every TR of the film.
    descriptor : ndarray, shape (n_trs, n_features), float
    rows : dict of str to ndarray of bool
        :func:`code_model_rows`: ``"select"`` TRs fit every penalty, ``"val"`` TRs score it, ``"fit"``
        TRs make the final model. With one penalty in ``l2_grid`` no validation is needed.
    l2_grid : sequence of float
        Penalties, tried from the largest down, each fit starting from the previous solution.
    smoothing_counts, max_iter, device, feature_names, meta
        As :func:`fit_code_model`.

    Returns
    -------
    model : CodeModel
        Fitted on ``rows["fit"]`` with the chosen penalty of every codebook.
    validation : dict
        ``"l2_grid"`` (descending), ``"cross_entropy_nats"`` (n_l2, n_codebooks) on the validation
        block, ``"unigram_cross_entropy_nats"`` (n_codebooks,), ``"chosen_l2"`` (n_codebooks,).
    """
    grid = sorted((float(v) for v in l2_grid), reverse=True)
    options = dict(smoothing_counts=smoothing_counts, max_iter=max_iter, device=device, feature_names=feature_names)
    n_codebooks = counts.shape[1]
    validation = {"l2_grid": grid}
    if len(grid) == 1:
        chosen, init = np.full(n_codebooks, grid[0]), None
    else:
        select, val = rows["select"], rows["val"]
        if not val.any() or not select.any():
            raise ValueError(f"choosing the code model's penalty among {grid} needs validation TRs ({val.sum()}) and "
                             f"training TRs outside them ({select.sum()}); give split.fractions a validation share "
                             "or set code_model.l2_grid to one value")
        models, scores, init = [], [], None
        for l2 in grid:
            model = fit_code_model(counts[select], descriptor[select], l2=l2, init=init, **options)
            init = (model.weight, model.bias)
            models.append(model)
            scores.append(_frame_mean_ce(model, counts[val], descriptor[val]))
        scores = np.stack(scores)  # (n_l2, n_codebooks); argmin keeps the largest penalty among ties
        best = scores.argmin(axis=0)
        chosen = np.asarray(grid)[best]
        init = (np.stack([models[b].weight[k] for k, b in enumerate(best)]),
                np.stack([models[b].bias[k] for k, b in enumerate(best)]))
        prior = np.log(models[0].unigram)
        val_unigram = tr_cross_entropy(np.broadcast_to(prior, counts[val].shape), counts[val])
        frames = counts[val][:, 0].sum(axis=1)
        validation.update(cross_entropy_nats=scores.tolist(),
                          unigram_cross_entropy_nats=((val_unigram * frames[:, None]).sum(0) / frames.sum()).tolist())
        log.info("code model: penalties chosen per codebook on %d validation TRs: %s", val.sum(), chosen.tolist())
        at_edge = np.flatnonzero(best == len(grid) - 1)
        if len(at_edge):
            log.warning("code model: codebooks %s chose the smallest penalty %g; add smaller values to "
                        "code_model.l2_grid to search further", at_edge.tolist(), grid[-1])
    validation["chosen_l2"] = chosen.tolist()
    fit = rows["fit"]
    model = fit_code_model(counts[fit], descriptor[fit], l2=chosen, init=init,
                           meta={**(meta or {}), "validation": validation}, **options)
    return model, validation


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


def sample_codes(log_probs, mask, seed=0):
    """One code per frame slot and codebook, drawn from its TR's code distribution (seeded Gumbel-max).

    The noise is drawn on the CPU with a generator seeded by ``seed``, ``8`` TRs at a time in the layout
    (TRs, slots, codebooks, codes): the same seed gives the same noise, so two predictions (intact and
    lesioned, or from two subjects) differ only where their probabilities do.

    Parameters
    ----------
    log_probs : ndarray or Tensor, shape (n_trs, n_codebooks, codebook_size), float
        Per-TR (log-)probabilities up to a constant per row (e.g. :meth:`CodeModel.log_probs`).
    mask : ndarray, shape (n_trs, width), bool
        Real frame slots of these TRs (``codes_by_tr``'s mask; :func:`sample_stream` makes it).
    seed : int, default=0

    Returns
    -------
    ndarray, shape (n_trs, n_codebooks, width), int64
        Code indices in ``codes_by_tr``'s layout; ``PAD_CODE`` where ``mask`` is False (feed to
        ``trs_waveform`` or ``stream_from_trs``).
    """
    log_probs = torch.as_tensor(log_probs).detach().float().cpu()
    mask = np.asarray(mask, dtype=bool)
    if log_probs.ndim != 3 or mask.ndim != 2 or len(mask) != len(log_probs):
        raise ValueError(f"log_probs {tuple(log_probs.shape)} (n_trs, n_codebooks, codebook_size) and mask "
                         f"{mask.shape} (n_trs, width) must cover the same TRs")
    generator = torch.Generator().manual_seed(int(seed))
    width, draws = mask.shape[1], []
    for start in range(0, len(log_probs), _SAMPLE_CHUNK_TRS):
        chunk = log_probs[start : start + _SAMPLE_CHUNK_TRS]
        shape = (len(chunk), width) + tuple(chunk.shape[1:])
        uniform = torch.rand(shape, generator=generator).clamp(1e-12, 1 - 1e-12)
        draws.append((chunk[:, None] - torch.log(-torch.log(uniform))).argmax(-1).numpy())
    codes = np.concatenate(draws).transpose(0, 2, 1).astype(np.int64) if draws else np.zeros(
        (0, log_probs.shape[1], width), np.int64)
    codes[np.broadcast_to(~mask[:, None, :], codes.shape)] = PAD_CODE
    return codes


def _trs_mask(n_trs, tr_s, frame_rate_hz, first_tr):
    """``codes_by_tr``'s mask of TRs ``first_tr, ...``: (n_trs, width) bool."""
    p, q = _frames_per_tr(tr_s, frame_rate_hz)
    spans = tr_frame_spans(n_trs, tr_s, frame_rate_hz, first_tr)
    return np.arange(-(-p // q)) < (spans[:, 1] - spans[:, 0])[:, None]


def sample_stream(log_probs, *, tr_s, frame_rate_hz, first_tr=0, seed=0, **stream_meta):
    """A seeded code stream for a stretch of TRs, with each TR's exact frame count.

    Parameters
    ----------
    log_probs : ndarray or Tensor, shape (n_trs, n_codebooks, codebook_size), float
        Per-TR code log-probabilities of consecutive TRs.
    tr_s : float
        Repetition time, in seconds.
    frame_rate_hz : float
        Codec frame rate, in hertz.
    first_tr : int, default=0
        Scan index of the first TR (sets the 112/113-frame pattern at 1.5 s and 75 Hz).
    seed : int, default=0
    **stream_meta
        ``codec_id``, ``bandwidth_kbps``, ``codec_status`` of the stream.

    Returns
    -------
    CodeStream
        ``codes`` (n_codebooks, n_frames) int16, ``first_frame`` the first TR's first frame.
    """
    mask = _trs_mask(len(log_probs), tr_s, frame_rate_hz, first_tr)
    codes = sample_codes(log_probs, mask, seed)
    return stream_from_trs(np.where(mask[:, None, :], codes, 0), mask, tr_s=tr_s, frame_rate_hz=frame_rate_hz,
                           first_tr=first_tr, **stream_meta)


def _read_split(prepared_path, preshift_trs):
    """Block labels on the stimulus clock, runs and TR of a ``prepare-fmri`` file (reads no voxel data)."""
    from giblet.training.data import shift_within_runs

    with np.load(prepared_path, allow_pickle=False) as z:
        labels, runs, tr_s = z["split_labels"], z["runs"], float(z["tr_s"])
    return shift_within_runs(labels, runs, preshift_trs, GAP), runs, tr_s


def _read_inputs(features_dir, prepared_path, descriptor_name, preshift_trs):
    features_dir = Path(features_dir)
    labels, runs, tr_s = _read_split(prepared_path, preshift_trs)
    n_trs = len(labels)
    stream = CodeStream.load(features_dir / "codes.npz")
    table = FeatureTable.load(features_dir / descriptor_name)
    if table.n_samples != n_trs:
        raise ValueError(f"{features_dir / descriptor_name}: {table.n_samples} TRs but {prepared_path} has {n_trs}; "
                         "extract audio with the same fmri.run_n_trs")
    if not np.isfinite(table.values).all():
        raise ValueError(f"{features_dir / descriptor_name}: {np.count_nonzero(~np.isfinite(table.values))} non-finite "
                         "values; the descriptor must be finite on every TR")
    with np.load(features_dir / "codebooks.npz", allow_pickle=False) as z:
        codebook_size = int(z["vectors"].shape[1])
    codes, mask = codes_by_tr(stream, tr_s, n_trs)
    return stream, table, code_counts(codes, mask, codebook_size), labels, tr_s


def _rows_with_test(labels, prepared_path):
    rows = code_model_rows(labels)
    if not rows["test"].any():
        raise ValueError(f"{prepared_path}: the split has no test block to score the code model on; "
                         "give split.fractions a test share")
    return rows


def run_fit_code_model(*, features_dir, prepared_path, out_dir, config=CodeModelConfig(), preshift_trs=0, device=None):
    """Fit the code model on the film's audio (the ``fit-code-model`` stage): ``out_dir/code_model.npz``.

    No fMRI enters the fit: the prepared file gives only the split. The penalty is chosen per codebook
    on the validation block and the model refitted on every TR but the test block and the gap TRs
    next to it (:func:`run_score_code_model` scores it there).

    Parameters
    ----------
    features_dir : path
        Holds ``codes.npz``, ``codebooks.npz`` and the descriptor table ``config.descriptor``.
    prepared_path : path
        One subject's ``prepare-fmri`` file (for the split, shared by all subjects).
    out_dir : path
    config : CodeModelConfig
    preshift_trs : int, default=0
        ``fmri.preshift_trs``: the split's labels are moved onto the stimulus clock.
    device : str, optional
        None/"auto": CUDA when available, else the CPU (the fit draws no random numbers).

    Returns
    -------
    Path
        The written model.
    """
    device = resolve_device(device)
    stream, table, counts, labels, tr_s = _read_inputs(features_dir, prepared_path, config.descriptor, preshift_trs)
    rows = _rows_with_test(labels, prepared_path)
    meta = {**stream.meta, "descriptor": config.descriptor, "tr_s": tr_s, "preshift_trs": preshift_trs,
            "smoothing_counts": config.smoothing_counts, "fit_trs": np.flatnonzero(rows["fit"]).tolist()}
    model, _ = select_code_model(
        counts, table.values, rows, l2_grid=config.l2_grid, smoothing_counts=config.smoothing_counts,
        max_iter=config.max_iter, device=device, feature_names=table.names, meta=meta)
    return model.save(Path(out_dir) / CODE_MODEL_OUTPUTS["model"])


def run_score_code_model(*, features_dir, prepared_path, model_path, out_dir, preshift_trs=0, seed=0,
                         n_bootstrap=1000, bootstrap_block_trs=5, n_permutations=1000):
    """Score the code model on the test block from the true descriptor (the ``score-code-model`` stage).

    The oracle every brain decoder is compared with: cross-entropy and bits per code gained over the
    training unigram, with a block-bootstrap CI and a circular-shift null, written to
    ``out_dir/code_model_scores.json``. Scoring settings never refit the model.

    Parameters
    ----------
    features_dir, prepared_path, preshift_trs
        As for :func:`run_fit_code_model`.
    model_path : path
        Its ``code_model.npz``.
    out_dir : path
    seed : int, default=0
        Seed of the bootstrap and the null.
    n_bootstrap : int, default=1000
    bootstrap_block_trs : int, default=5
    n_permutations : int, default=1000

    Returns
    -------
    Path
        The written scores.
    """
    model = CodeModel.load(model_path)
    descriptor = model.meta["descriptor"]
    stream, table, counts, labels, tr_s = _read_inputs(features_dir, prepared_path, descriptor, preshift_trs)
    rows = _rows_with_test(labels, prepared_path)
    test = rows["test"]
    scores = score_code_model(model, counts[test], table.values[test], n_bootstrap=n_bootstrap,
                              block_trs=bootstrap_block_trs, n_permutations=n_permutations, seed=seed,
                              frame_rate_hz=stream.frame_rate_hz)
    path = write_json(Path(out_dir) / CODE_MODEL_OUTPUTS["scores"], {
        **stream.meta,
        "descriptor": descriptor,
        "n_features": model.n_features,
        "codebook_size": model.codebook_size,
        "n_trs": {name: int(mask.sum()) for name, mask in rows.items()},
        "test_trs": [int(t) for t in np.flatnonzero(test)[[0, -1]] + [0, 1]],
        "validation": model.meta.get("validation"),
        "smoothing_counts": model.meta.get("smoothing_counts"),
        "bootstrap": {"n_bootstrap": n_bootstrap, "block_trs": bootstrap_block_trs, "level": 0.95, "seed": seed},
        "null": {"method": "circular shift of the descriptor", "min_shift_trs": bootstrap_block_trs},
        "test": scores,
    })
    bits = scores["bits_per_code"]
    log.info("code model from the true descriptor on %d test TRs: %.3f bits/code over the unigram [%.3f, %.3f] "
             "(cross-entropy %.3f vs %.3f nats)", scores["n_trs"], bits["mean"], bits["ci_low"], bits["ci_high"],
             scores["cross_entropy_nats"]["code_model"], scores["cross_entropy_nats"]["unigram"])
    return path
