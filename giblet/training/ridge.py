"""Ridge regression in the dual (kernel) form, with contiguous-fold penalty search.

Fits give the predictions of primal ridge from the linear kernel ``K = Z Z.T`` of the standardised
training design ``Z`` (n_train x n_train), summed a block of columns at a time; they are kept in that dual form
(:class:`StoredRidge`: n_train x n_targets, a fraction of the primal weights when the design is wide) and turned
into primal coefficients ``Z.T @ dual`` (:class:`RidgeMap`) from the design when they predict. Neither the design
(a decoder's is n_voxels x n_delays wide: 8 GiB for a whole-brain subject and 4 delays) nor the targets (an
encoder's 271,633 voxels) are ever copied whole. The penalty search is himalaya's ``KernelRidgeCV``'s, computed in
each fold's eigenbasis.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold

from giblet.blocks import column_blocks
from giblet.stats import pearson_columns

__all__ = ["ALPHAS", "CV_TARGETS", "FLAT", "RidgeMap", "StoredRidge", "fit_ridge", "fit_dual_ridge",
           "cross_validated_r"]

log = logging.getLogger(__name__)

ALPHAS = np.logspace(-1, 7, 17)
#: A design column whose training SD is at most ``FLAT`` times its largest magnitude over the whole design (the
#: stimulus, known at every TR) is constant on the training rows: it keeps scale 1, as an exactly constant column
#: does. (An annotation label present only in the test block holds float noise of SD ~1e-10 on the training rows;
#: scaled by it, its test rows became 1e9 and the predictions inf.)
FLAT = 1e-6
#: Up to this many targets, each gets its own alpha; beyond (whole-brain encoders), one alpha shared by all,
#: the best on average over this many evenly spaced targets (per-target search on 271,633 voxels would
#: cost ~20 TFLOP).
CV_TARGETS = 8192  # the demo's 3800 voxels get their own alphas
@dataclass(frozen=True)
class RidgeMap:
    """A fitted ridge map: ``predict(X) = ((X - mean_) / scale_) @ coef_ + intercept_``.

    Attributes
    ----------
    mean_, scale_ : ndarray, shape (n_features,), float64
        Training-row statistics of the design's columns (scale 1 for columns constant there: see ``FLAT``).
    coef_ : ndarray, shape (n_features, n_targets), float32
        Weights on the standardised design.
    intercept_ : ndarray, shape (n_targets,), float64
        Training mean of every target.
    alphas_ : ndarray, shape (n_targets,), float64
        Ridge penalty of every target.
    """

    mean_: np.ndarray
    scale_: np.ndarray
    coef_: np.ndarray
    intercept_: np.ndarray
    alphas_: np.ndarray

    @property
    def n_features_in_(self) -> int:
        return len(self.mean_)

    def predict(self, X):
        """Shape (n_rows, n_targets), float32, from X (n_rows, n_features), a block of columns at a time."""
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns but this ridge was fitted on {self.n_features_in_}")
        out = np.zeros((len(X), self.coef_.shape[1]), np.float32)
        for block in column_blocks(X.shape[1]):
            z = ((X[:, block] - self.mean_[block]) / self.scale_[block]).astype(np.float32)
            out += z @ self.coef_[block]
        out += self.intercept_.astype(np.float32)
        return out


@dataclass(frozen=True)
class StoredRidge:
    """A fitted ridge map in its dual form, as stored (``baselines.joblib``): a fraction of the primal weights' size
    when the design is wider than the training block (the demo's encoder: 370 training TRs x 3,800 voxels instead
    of 2,124 FIR features x 3,800 voxels).

    :meth:`materialise` rebuilds the :class:`RidgeMap` from the design it was fitted on: ``coef_ = Z.T @ dual_``
    with ``Z`` the standardised design at the training rows.

    Attributes
    ----------
    mean_, scale_, intercept_, alphas_
        As :class:`RidgeMap`'s.
    dual_ : ndarray, shape (n_train, n_targets), float32
        Dual coefficients (computed in float64 a block of targets at a time).
    index : ndarray, shape (n_train,), int
        The training rows (of ``X``; the design's row ``t`` is ``[X[t + lag] for lag in lags]``).
    lags : tuple of int
    """

    mean_: np.ndarray
    scale_: np.ndarray
    dual_: np.ndarray
    index: np.ndarray
    lags: tuple
    intercept_: np.ndarray
    alphas_: np.ndarray

    def materialise(self, X):
        """The :class:`RidgeMap` of this fit, from ``X`` (n_trs, n_features): the array it was fitted on."""
        if len(self.lags) * X.shape[1] != len(self.mean_):
            raise ValueError(f"X has {X.shape[1]} columns and {len(self.lags)} lags, but this ridge was fitted on "
                             f"{len(self.mean_)} design columns: pass the array it was fitted on")
        coef = np.empty((len(self.mean_), self.dual_.shape[1]), np.float32)
        for block, z in _standardised(X, self.index, self.lags, self.mean_, self.scale_):
            if not np.allclose(z.mean(axis=0), 0.0, atol=1e-4):
                raise ValueError("X's training rows do not have the means this ridge was fitted with: pass the array "
                                 "it was fitted on")
            for targets in column_blocks(self.dual_.shape[1]):  # float64 a block of targets at a time
                coef[block, targets] = z.T @ self.dual_[:, targets].astype(np.float64)
        return RidgeMap(self.mean_, self.scale_, coef, self.intercept_, self.alphas_)

    def predict_at(self, X, at):
        """Predictions at design rows ``at`` (int, of ``X``: the array it was fitted on), (n_at, n_targets) float32,
        from the dual coefficients through the kernel of those rows with the training rows (no primal weights)."""
        at = np.asarray(at)
        kernel = sum(z_at @ z.T for (_, z_at), (_, z) in zip(_standardised(X, at, self.lags, self.mean_, self.scale_),
                                                              _standardised(X, self.index, self.lags, self.mean_,
                                                                            self.scale_)))
        out = np.empty((len(at), self.dual_.shape[1]), np.float32)
        for targets in column_blocks(self.dual_.shape[1]):
            out[:, targets] = kernel @ self.dual_[:, targets].astype(np.float64) + self.intercept_[targets]
        return out

    def select(self, targets):
        """This fit restricted to ``targets`` (a boolean mask or indices of its targets)."""
        return dataclasses.replace(self, dual_=self.dual_[:, targets], intercept_=self.intercept_[targets],
                                   alphas_=self.alphas_[targets])


def _standardised(X, index, lags, mean, scale):
    """(block of design columns, its training rows standardised in one float64 array), a block at a time."""
    for lag, block, columns in _design_blocks(X.shape[1], lags):
        z = X[index + lag, columns].astype(np.float64)
        z -= mean[block]
        z /= scale[block]
        yield block, z


def fit_dual_ridge(X, Y, rows, lags=(0,), n_folds=5, columns=None):
    """:func:`fit_ridge`'s fit, kept in its dual form (:class:`StoredRidge`)."""
    columns = np.arange(Y.shape[1]) if columns is None else np.asarray(columns)
    index = np.flatnonzero(rows)
    lags = tuple(int(lag) for lag in lags)
    if index[0] + min(lags) < 0 or index[-1] + max(lags) >= len(X):
        raise ValueError(f"training rows [{index[0]}, {index[-1]}] with lags {lags} reach outside X's {len(X)} TRs")
    mean, scale, peak = np.empty((3, len(lags) * X.shape[1]))
    for lag, block, features in _design_blocks(X.shape[1], lags):
        x = X[index + lag, features].astype(np.float64)
        mean[block], scale[block] = x.mean(axis=0), x.std(axis=0)
        peak[block] = np.abs(X[:, features]).max(axis=0)
    scale[scale <= FLAT * peak] = 1.0  # constant on the training rows, up to float noise
    if len(mean) < len(index):  # a narrow design: its SVD is the kernel's eigenbasis, for a fraction of the cost
        design = np.concatenate([z for _, z in _standardised(X, index, lags, mean, scale)], axis=1)
        fold_basis = _design_fold_basis(design)
        eigenvectors, singular, _ = np.linalg.svd(design, full_matrices=False)
        eigenvalues = singular**2
    else:
        kernel = sum(z @ z.T for _, z in _standardised(X, index, lags, mean, scale))
        fold_basis = _kernel_fold_basis(kernel)
        eigenvalues, eigenvectors = np.linalg.eigh(kernel)
    alphas = _search_alphas(fold_basis, Y, index, n_folds, columns)
    dual = np.empty((len(index), len(columns)), np.float32)
    intercept = np.empty(len(columns))
    for targets in column_blocks(len(columns)):
        y = Y[np.ix_(index, columns[targets])].astype(np.float64)
        intercept[targets] = y.mean(axis=0)
        dual[:, targets] = eigenvectors @ (eigenvectors.T @ (y - intercept[targets]) / (eigenvalues[:, None]
                                                                                       + alphas[targets]))
    return StoredRidge(mean, scale, dual, index, lags, intercept, alphas)


def fit_ridge(X, Y, rows, lags=(0,), n_folds=5, columns=None):
    """Standardise (training rows only) and fit ridge by contiguous K-fold search over ``ALPHAS``.

    The design's row ``t`` is ``[X[t + lag] for lag in lags]`` side by side (the layout of
    :func:`decoding_design`), built a block of columns at a time and never whole.

    Parameters
    ----------
    X : ndarray, shape (n_trs, n_features)
    Y : ndarray, shape (n_trs, n_targets)
    rows : ndarray, shape (n_trs,), bool
        Training TRs of the design (and of ``Y``); folds are contiguous (no shuffling: fMRI is autocorrelated).
    lags : sequence of int, default=(0,)
        TR offsets of the design's column blocks; every ``t + lag`` of a training row must be a TR of ``X``.
    n_folds : int, default=5
    columns : ndarray of int, optional
        The columns of ``Y`` fitted, read a block at a time (default: all).

    Returns
    -------
    RidgeMap
        One alpha per target when there are at most ``CV_TARGETS`` targets, else one shared alpha.
    """
    return fit_dual_ridge(X, Y, rows, lags, n_folds, columns).materialise(X)


def _design_blocks(n_features, lags):
    """``(lag, design columns, X columns)`` blocks of a lagged design, lag by lag."""
    return [(lag, slice(i * n_features + c.start, i * n_features + c.stop), c)
            for i, lag in enumerate(lags) for c in column_blocks(n_features)]


def _kernel_fold_basis(kernel):
    """``basis(train, test)``: the eigenbasis of the linear kernel's training rows, centred on them, and the held-out
    rows' kernel (centred alike) projected onto it."""
    def basis(train, test):
        K = kernel[np.ix_(train, train)]
        column_mean = K.mean(axis=0)
        centred = K - column_mean - column_mean[:, None] + column_mean.mean()
        held_out = kernel[np.ix_(test, train)]
        held_out = held_out - column_mean - held_out.mean(axis=1, keepdims=True) + column_mean.mean()
        eigenvalues, eigenvectors = np.linalg.eigh(centred)
        return np.maximum(eigenvalues, 0.0), eigenvectors, held_out @ eigenvectors

    return basis


def _design_fold_basis(design):
    """:func:`_kernel_fold_basis` of ``design @ design.T`` from the design's SVD (the kernel's zero eigenvalues, which
    predict nothing, left out)."""
    def basis(train, test):
        mean = design[train].mean(axis=0)
        eigenvectors, singular, right = np.linalg.svd(design[train] - mean, full_matrices=False)
        return singular**2, eigenvectors, (design[test] - mean) @ (right.T * singular)

    return basis


def cross_validated_r(design, Y, n_folds=5, rows=None):
    """Per target, the held-out Pearson r averaged over contiguous folds at its best alpha of ``ALPHAS``.

    himalaya's ``KernelRidgeCV(fit_intercept=True, solver_params={"score_func": correlation_score,
    "local_alpha": True}).cv_scores_``, without its refit on all rows (3x faster on 1,100 TRs x 1,536
    features x 481 voxels). Each fold's eigenbasis is computed once; the targets are scored a block of
    columns at a time.

    Parameters
    ----------
    design : ndarray, shape (n_rows, n_features), float64
    Y : ndarray, shape (n_trs, n_targets), float
        Row ``rows[k]`` of ``Y`` is the target of design row ``k``.
    n_folds : int, default=5
    rows : ndarray, shape (n_rows,), int, optional
        Default: ``Y``'s rows are the design's.

    Returns
    -------
    ndarray, shape (n_targets,), float64
        NaN where the target is constant in a held-out fold; a constant prediction scores 0.
    """
    fold_basis = _design_fold_basis(design) if design.shape[1] < len(design) else _kernel_fold_basis(design @ design.T)
    folds = [(train, test, *fold_basis(train, test)) for train, test in KFold(n_splits=n_folds).split(design)]
    index = np.arange(len(design)) if rows is None else np.asarray(rows)
    out = np.empty(Y.shape[1])
    for targets in column_blocks(Y.shape[1]):
        y = Y[index, targets].astype(np.float64)
        scores = np.zeros((len(ALPHAS), y.shape[1]))
        for train, test, eigenvalues, eigenvectors, projected in folds:
            mean = y[train].mean(axis=0)
            coordinates = eigenvectors.T @ (y[train] - mean)
            for i, alpha in enumerate(ALPHAS):
                scores[i] += pearson_columns(projected @ (coordinates / (eigenvalues + alpha)[:, None]), y[test])
        out[targets] = (scores / n_folds).max(axis=0)
    return out


def _search_alphas(fold_basis, Y, index, n_folds, columns):
    """Alpha of every target (n_targets,): contiguous K-fold search over ``ALPHAS`` on the linear kernel.

    himalaya's ``KernelRidgeCV(kernel="precomputed", fit_intercept=True)`` search (each fold's kernel centred
    on its training rows, mean squared error on the held-out rows averaged over folds, ties to the larger
    alpha), computed in each fold's eigenbasis (``fold_basis``: :func:`_kernel_fold_basis` or
    :func:`_design_fold_basis`) without forming a resolution matrix per alpha and without himalaya's refit on
    all rows (:func:`fit_dual_ridge` does its own): the same alphas, several times faster. ``columns``: the
    columns of ``Y`` searched.
    """
    n_targets = len(columns)
    shared = n_targets > CV_TARGETS
    sample = columns[np.linspace(0, n_targets - 1, CV_TARGETS).astype(int) if shared else np.arange(n_targets)]
    loss = np.zeros((len(ALPHAS), len(sample)))
    for train, test in KFold(n_splits=n_folds).split(index):
        eigenvalues, eigenvectors, projected = fold_basis(train, test)
        for targets in column_blocks(len(sample)):
            y = Y[np.ix_(index[train], sample[targets])].astype(np.float64)
            mean = y.mean(axis=0)
            coordinates = eigenvectors.T @ (y - mean)
            truth = Y[np.ix_(index[test], sample[targets])] - mean
            for i, alpha in enumerate(ALPHAS):
                predicted = projected @ (coordinates / (eigenvalues + alpha)[:, None])
                loss[i, targets] += ((truth - predicted) ** 2).mean(axis=0)
    loss -= np.log(ALPHAS)[:, None] * 1e-10 * n_folds  # equal scores: the larger alpha (as himalaya)
    if shared:
        alpha = ALPHAS[loss.mean(axis=1).argmin()]
        log.info("ridge: one alpha (%g) for %d targets, chosen on %d of them", alpha, n_targets, CV_TARGETS)
        return np.full(n_targets, alpha)
    return ALPHAS[loss.argmin(axis=0)]
