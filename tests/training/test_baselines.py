"""Ridge baselines in the dual form against the primal pipeline they replace (scaler + himalaya ridge)."""

import dataclasses

import numpy as np
import pytest
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import RidgeCV
from himalaya.scoring import correlation_score
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from giblet.features import FeatureTable
from giblet.splits import BLOCKS
from giblet.training.baselines import EncodingDesign, decoding_design, decoding_rows
from giblet.training.ridge import ALPHAS, cross_validated_r, fit_dual_ridge, fit_ridge
from tests.training.conftest import tiny_movie


def _data(rng, n_trs, n_features, n_targets):
    X = rng.standard_normal((n_trs, n_features)).astype(np.float32) * np.linspace(0.5, 3, n_features) + 2.0
    weights = rng.standard_normal((n_features, n_targets)) * (rng.uniform(size=n_targets) > 0.3)
    Y = (X @ weights + 3.0 * rng.standard_normal((n_trs, n_targets)) + 1.0).astype(np.float32)
    return X, Y


@pytest.mark.parametrize("n_features", [12, 150])  # fewer and more features than training TRs
def test_fit_ridge_equals_the_primal_pipeline(rng, small_blocks, n_features):
    X, Y = _data(rng, 100, n_features, 40)  # penalties across the grid
    rows = np.arange(100) < 80
    ridge = KernelRidgeCV(kernel="linear", alphas=ALPHAS, fit_intercept=True, cv=KFold(5)) if n_features > 80 else \
        RidgeCV(alphas=ALPHAS, fit_intercept=True, cv=KFold(5))
    reference = make_pipeline(StandardScaler(), ridge).fit(X[rows].astype(np.float64), Y[rows].astype(np.float64))
    fitted = fit_ridge(X, Y, rows)
    np.testing.assert_allclose(fitted.alphas_, reference[1].best_alphas_, rtol=1e-9)
    np.testing.assert_allclose(fitted.predict(X[~rows]), reference.predict(X[~rows].astype(np.float64)),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fitted.mean_, reference[0].mean_, rtol=1e-6)


@pytest.mark.parametrize("n_features", [12, 150])  # the design's SVD and the kernel's eigenbasis
def test_cross_validated_r_equals_himalayas_local_alpha_search(rng, n_features):
    X, Y = (a.astype(np.float64) for a in _data(rng, 100, n_features, 30))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    Y[:50, 0] = 1.0  # constant in the first folds: no score
    search = KernelRidgeCV(alphas=ALPHAS, fit_intercept=True, cv=KFold(5), warn=False,
                           solver_params={"score_func": correlation_score, "local_alpha": True}).fit(X, Y[:, 1:])
    r = cross_validated_r(X, Y)
    np.testing.assert_allclose(r[1:], np.asarray(search.cv_scores_), rtol=0, atol=1e-8)
    assert np.isnan(r[0]) and np.ptp(r[1:]) > 0.3  # some targets follow X, some are noise


def test_fit_ridge_lags_equal_the_built_design(rng, small_blocks):
    bold, target = _data(rng, 90, 10, 3)
    runs, labels, valid = np.repeat([0, 1], 45), np.zeros(90, np.int8), np.ones(90, bool)
    valid[20] = False
    design, rows = decoding_design(bold, valid, labels, runs, "train", (1, 3))
    assert np.array_equal(rows, decoding_rows(valid, labels, runs, "train", (1, 3)))
    lagged, built = fit_ridge(bold, target, rows, lags=(1, 3)), fit_ridge(design, target, rows)
    np.testing.assert_allclose(lagged.coef_, built.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lagged.predict(design), built.predict(design), rtol=1e-5, atol=1e-5)


def test_fit_ridge_shares_one_alpha_beyond_cv_targets(rng, monkeypatch):
    monkeypatch.setattr("giblet.training.ridge.CV_TARGETS", 4)
    X, Y = _data(rng, 100, 12, 9)
    rows = np.arange(100) < 80
    fitted = fit_ridge(X, Y, rows)
    assert len(set(fitted.alphas_)) == 1
    sample = np.linspace(0, 8, 4).astype(int)
    search = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS, cv=KFold(5), solver_params={"local_alpha": False}))
    search.fit(X[rows].astype(np.float64), Y[rows][:, sample].astype(np.float64))
    assert np.isclose(fitted.alphas_[0], search[1].best_alphas_[0], rtol=1e-9)
    reference = make_pipeline(StandardScaler(), Ridge(alpha=fitted.alphas_[0])).fit(X[rows], Y[rows])
    np.testing.assert_allclose(fitted.predict(X), reference.predict(X), rtol=1e-4, atol=1e-4)


def test_fit_ridge_rows_outside_x_raise(rng):
    X, Y = _data(rng, 30, 4, 2)
    with pytest.raises(ValueError, match=r"training rows \[0, 29\] with lags \(-1,\) reach outside X's 30 TRs"):
        fit_ridge(X, Y, np.ones(30, bool), lags=(-1,))


def test_ridge_map_predict_checks_columns(rng):
    X, Y = _data(rng, 30, 4, 2)
    with pytest.raises(ValueError, match="X has 3 columns but this ridge was fitted on 4"):
        fit_ridge(X, Y, np.ones(30, bool)).predict(X[:, :3])


def test_fit_ridge_gives_a_demo_sized_brain_one_alpha_per_voxel(rng):
    """3800 voxels, mostly noise: a shared alpha would shrink the few driven voxels to the noise's optimum."""
    X = rng.standard_normal((120, 6))
    Y = rng.standard_normal((120, 3800))
    Y[:, :50] += 3 * X[:, :1]
    fitted = fit_ridge(X, Y, np.arange(120) < 100)
    assert np.median(fitted.alphas_[:50]) < np.median(fitted.alphas_[50:])


def test_fit_ridge_column_flat_on_training_rows_keeps_predictions_finite(rng):
    """A feature that is zero on the training rows up to float noise (a label present only in the test block) must not
    be scaled by its ~1e-10 SD there: the test rows' predictions would overflow to inf."""
    X, Y = _data(rng, 100, 6, 3)
    rows = np.arange(100) < 80
    X[:, 0] = 0.0
    X[:80, 0] = np.float32(1e-10) * (np.arange(80) % 2 + 1)  # float noise on the training rows
    X[80:, 0] = 1.0
    fitted = fit_ridge(X, Y, rows)
    assert fitted.scale_[0] == 1.0
    predicted = fitted.predict(X)
    assert np.isfinite(predicted).all()
    np.testing.assert_allclose(predicted, fit_ridge(X[:, 1:], Y, rows).predict(X[:, 1:]), rtol=1e-4, atol=1e-4)


def test_stored_ridge_keeps_the_dual_form_and_materialises_the_same_map(rng, small_blocks):
    X, Y = _data(rng, 100, 150, 40)  # a wide design: the dual form (80 x 40) is half the primal weights (150 x 40)
    rows = np.arange(100) < 80
    stored = fit_dual_ridge(X, Y, rows, lags=(0, 1))
    assert stored.dual_.shape == (80, 40) and stored.dual_.dtype == np.float32
    assert stored.dual_.nbytes < 0.3 * (300 * 40 * 4)  # two lags: 300 design columns
    expected = fit_ridge(X, Y, rows, lags=(0, 1))
    design = np.concatenate([X[:-1], X[1:]], axis=1)
    np.testing.assert_allclose(stored.materialise(X).predict(design), expected.predict(design), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="the array it was fitted on"):
        stored.materialise(X[:, :100])
    with pytest.raises(ValueError, match="training rows do not have the means"):
        stored.materialise(X + 1.0)


def test_stored_ridge_predicts_from_its_dual_form_and_fits_a_selection_of_columns(rng, small_blocks):
    X, Y = _data(rng, 100, 150, 40)
    rows = np.arange(100) < 80
    stored = fit_dual_ridge(X, Y, rows, lags=(0, 1))
    design = np.concatenate([X[:-1], X[1:]], axis=1)
    at = np.arange(80, 99)  # held-out rows (each reads X[t] and X[t + 1])
    np.testing.assert_allclose(stored.predict_at(X, at), stored.materialise(X).predict(design[at]), rtol=1e-4,
                               atol=1e-4)
    picked = [3, 7, 21]
    selected = fit_dual_ridge(X, Y, rows, lags=(0, 1), columns=picked)
    np.testing.assert_allclose(selected.dual_, fit_dual_ridge(X, Y[:, picked], rows, lags=(0, 1)).dual_, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(selected.dual_, stored.select(picked).dual_, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(selected.alphas_, stored.alphas_[picked])
    np.testing.assert_allclose(selected.intercept_, Y[rows][:, picked].mean(axis=0), rtol=1e-6)


class _Identity:
    def predict(self, X):
        return X


def test_encoding_design_moves_stored_clock_predictions_later_within_runs():
    design = EncodingDesign(np.arange(10, dtype=np.float32)[:, None], np.repeat([0, 1], 5), preshift_trs=2)
    moved = design.predict(_Identity())[:, 0]
    np.testing.assert_array_equal(moved, [np.nan, np.nan, 0, 1, 2, np.nan, np.nan, 5, 6, 7])


def test_encoding_design_fits_model_clock_bold_from_the_stored_rows_before_it(rng, tmp_path):
    movie = tiny_movie(n_per_run=120)
    n, preshift = movie.n_trs, 3
    values = rng.standard_normal((n, 6)).astype(np.float32)
    bold = {}
    for subject in movie.subjects:  # model-clock TR u follows design row u - 3 (within its run)
        driven, weights = np.zeros((n, 4), np.float32), rng.standard_normal((6, 4))
        for run in (0, 1):
            rows = np.flatnonzero(movie.runs == run)
            driven[rows[preshift:]] = values[rows[:-preshift]] @ weights
        bold[subject] = driven + 0.3 * rng.standard_normal((n, 4)).astype(np.float32)
    first = np.r_[True, movie.runs[1:] != movie.runs[:-1]]
    shifted_in = ~np.convolve(first, np.ones(preshift, bool))[:n].astype(bool)  # as load_movie_data: the first
    valid = {s: v & shifted_in for s, v in movie.bold_valid.items()}  # preshift TRs of a run hold no volume
    movie = dataclasses.replace(movie, bold=bold, bold_valid=valid)
    test = movie.labels == BLOCKS.index("test")
    for shift, low, high in ((preshift, 0.9, 1.0), (0, -0.5, 0.5)):
        design = EncodingDesign(values, movie.runs, shift)
        predicted = design.predict(design.fit(movie, "sub-a"))
        ok = test & np.isfinite(predicted).all(axis=1)
        r = [np.corrcoef(predicted[ok, v], bold["sub-a"][ok, v])[0, 1] for v in range(4)]
        assert low < min(r) and max(r) < high, (shift, r)
    design = EncodingDesign(values, movie.runs, preshift)
    encoder = design.fit(movie, "sub-a")
    design.check(encoder, movie, "sub-a")
    with pytest.raises(ValueError, match="not the design the ridge encoder was trained on"):
        EncodingDesign(values[:, ::-1].copy(), movie.runs, preshift).check(encoder, movie, "sub-a")
    FeatureTable(values, np.arange(n) * 1.5, [f"f{i}" for i in range(6)]).save(tmp_path / "fir.npz")
    with pytest.raises(ValueError, match="have \\[240\\] volumes but the fMRI has 200"):
        EncodingDesign.load([tmp_path / "fir.npz"], movie.runs[:200], preshift)
