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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.special import log_softmax
from torch import nn

from giblet.audio.code_scores import tr_cross_entropy, unigram_frequencies
from giblet.io import save_npz

__all__ = ["CodeModel", "CodeModelHead", "FitSettings", "fit_code_model", "select_code_model"]

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class FitSettings:
    """How :func:`fit_code_model` fits (``code_model.smoothing_counts``, ``code_model.max_iter``, ``device``).

    Attributes
    ----------
    smoothing_counts : float, default=0.5
        Pseudo-count per code of the unigram prior.
    max_iter : int, default=100
        L-BFGS iterations.
    device : str or torch.device, default="cpu"
        Where the fit runs (in float32).
    """

    smoothing_counts: float = 0.5
    max_iter: int = 100
    device: object = "cpu"


def fit_code_model(counts, descriptor, *, l2, settings=FitSettings(), init=None, feature_names=(), meta=None):
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
    settings : FitSettings, default=FitSettings()
        Prior smoothing, L-BFGS iterations and device.
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
    smoothing_counts, max_iter, device = settings.smoothing_counts, settings.max_iter, torch.device(settings.device)
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


def select_code_model(counts, descriptor, rows, *, l2_grid, settings=FitSettings(), feature_names=(), meta=None):
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
    settings, feature_names, meta
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
    options = dict(settings=settings, feature_names=feature_names)
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
