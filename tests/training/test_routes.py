"""Routes: voxels scored by cross-validated encoding; decoders sized on the validation block; encoder routes."""

import dataclasses

import numpy as np
import torch

from giblet.models import LaggedLinear
from giblet.splits import BLOCKS
from giblet.training.ridge import fit_ridge
from giblet.training.data import MovieData
from giblet.training.encoder_routes import trailing_means
from giblet.training.routes import (
    encoding_rows,
    encoding_scores,
    fit_encoder_routes,
    fit_joint_routes,
    fit_window_decoders,
    voxel_encoding_scores,
)
from tests.training.conftest import tiny_movie


def _driven(movie, gain, seed=0, n_voxels=40):
    """Voxels 0-4 follow a 3-feature descriptor 2 TRs later (times ``gain``); the rest are noise."""
    rng = np.random.default_rng(seed)
    descriptor = rng.standard_normal((movie.n_trs, 3))
    bold = {}
    for subject in movie.subjects:
        values = rng.standard_normal((movie.n_trs, n_voxels))
        values[2:, :5] += gain * descriptor[:-2] @ rng.standard_normal((3, 5))
        bold[subject] = values.astype(np.float32)
    return MovieData(**{**movie.__dict__, "bold": bold}), descriptor


def test_encoding_rows_keep_every_lag_inside_the_run_and_block():
    labels = np.array([0] * 6 + [-1] * 2 + [1] * 4)
    runs = np.array([0] * 4 + [1] * 8)
    rows = encoding_rows(np.ones(12, bool), labels, runs, "train", (1, 2))
    assert np.flatnonzero(rows).tolist() == [2, 3]  # TR 4-5: their run starts at 4; 0-1: before the film
    assert np.flatnonzero(encoding_rows(np.ones(12, bool), labels, runs, "val", (1,))).tolist() == [9, 10, 11]


def test_voxel_encoding_scores_rank_the_driven_voxels_first():
    movie, descriptor = _driven(tiny_movie(n_per_run=150), gain=1.0)
    bold = movie.bold["sub-a"]
    rows = encoding_rows(np.ones(movie.n_trs, bool), movie.labels, movie.runs, "train", (1, 2, 3))
    scores = voxel_encoding_scores(bold, descriptor, rows, (1, 2, 3))
    assert set(np.argsort(-scores)[:5]) == {0, 1, 2, 3, 4}
    assert scores[:5].min() > 0.5 > np.abs(scores[5:]).max()


def test_fit_window_decoders_select_the_driven_voxels_and_decode_the_test_block():
    movie, descriptor = _driven(tiny_movie(n_per_run=150), gain=1.0)
    fits, n_voxels = fit_window_decoders(movie, descriptor, (1, 2, 3), encoding_scores(movie, descriptor, (1, 2, 3)),
                                         grid=(2, 5, 20))
    assert n_voxels == 5
    test = np.flatnonzero(movie.labels == BLOCKS.index("test"))[:-3]
    for subject, fit in fits.items():
        assert fit.selected.tolist() == [0, 1, 2, 3, 4]
        window = np.concatenate([movie.bold[subject][test + d][:, fit.selected] for d in (1, 2, 3)], axis=1)
        decoded = fit.ridge.predict(window)
        r = [np.corrcoef(decoded[:, f], descriptor[test, f])[0, 1] for f in range(3)]
        assert min(r) > 0.5 and np.mean(r) > 0.7, subject


def test_fit_window_decoders_keep_training_block_validation_predictions_and_refit_with_validation():
    movie, descriptor = _driven(tiny_movie(n_per_run=150), gain=1.0)
    fits, _ = fit_window_decoders(movie, descriptor, (1, 2, 3), encoding_scores(movie, descriptor, (1, 2, 3)),
                                  grid=(5,))
    val = movie.labels == BLOCKS.index("val")
    for subject, fit in fits.items():
        decoded, rows = fit.validation
        assert rows.any() and not (rows & ~val).any() and decoded.shape == (rows.sum(), 3)
        window = np.concatenate([movie.bold[subject][np.flatnonzero(rows) + d][:, fit.selected] for d in (1, 2, 3)],
                                axis=1)
        refitted = fit.ridge.predict(window)  # fitted on these rows too: closer to the truth than out of sample
        assert np.abs(refitted - descriptor[rows]).mean() < np.abs(decoded - descriptor[rows]).mean()


def _route_prediction(weights, descriptor, rows, delays=(1, 2, 3)):
    window = np.concatenate([descriptor[rows - d] for d in delays], axis=1)
    return ((window - weights["mean"]) / weights["scale"]) @ weights["weight"] + weights["bias"]


def test_fit_encoder_routes_predict_driven_voxels_and_barely_move_noise_voxels():
    movie, descriptor = _driven(tiny_movie(n_per_run=150), gain=1.0)  # voxels 0-4 follow the descriptor
    scores = {"audio": encoding_scores(movie, descriptor, (1, 2, 3))}
    routes = fit_encoder_routes(movie, {"audio": descriptor}, (1, 2, 3), scores)["audio"]
    test = np.flatnonzero(movie.labels == BLOCKS.index("test"))[3:]
    for subject, weights in routes.items():
        outputs = weights["outputs"].tolist()
        assert outputs[:5] == [0, 1, 2, 3, 4], subject
        predicted, measured = _route_prediction(weights, descriptor, test), movie.bold[subject][test]
        assert min(np.corrcoef(predicted[:, v], measured[:, v])[0, 1] for v in range(5)) > 0.3, subject
        # a noise voxel that passes both checks by chance gets a heavily shrunk route (its penalty is its own)
        assert predicted[:, 5:].std(axis=0).max() < 0.25 * measured[:, outputs[5:]].std(axis=0).min(), subject
    noise, _ = _driven(tiny_movie(n_per_run=150), gain=0.0)
    quiet = fit_encoder_routes(noise, {"audio": descriptor}, (1, 2, 3),
                               {"audio": encoding_scores(noise, descriptor, (1, 2, 3))})["audio"]
    for subject, weights in quiet.items():
        assert len(weights["outputs"]) < 20  # of 40: both out-of-sample checks pass by chance for about a quarter
        assert _route_prediction(weights, descriptor, test).std(axis=0).max() < 0.25


def test_fit_encoder_routes_give_each_voxel_to_the_modality_that_predicts_it_best():
    movie, sound = _driven(tiny_movie(n_per_run=150), gain=1.0)  # voxels 0-4 follow the sound
    rng = np.random.default_rng(1)
    text = rng.standard_normal((movie.n_trs, 2))
    for bold in movie.bold.values():
        bold[2:, 5:8] += 2.0 * text[:-2] @ rng.standard_normal((2, 3))  # voxels 5-7 follow the text
        bold[2:, 4] += 0.3 * text[:-2, 0]  # voxel 4: mostly sound, a little text
    inputs = {"audio": sound, "text": text}
    scores = {m: encoding_scores(movie, x, (1, 2, 3)) for m, x in inputs.items()}
    routes = fit_encoder_routes(movie, inputs, (1, 2, 3), scores)
    for subject in movie.subjects:
        audio, text_voxels = (set(routes[m][subject]["outputs"].tolist()) for m in ("audio", "text"))
        assert {0, 1, 2, 3, 4} <= audio and {5, 6, 7} <= text_voxels and not audio & text_voxels, subject


class _Grid:
    voxel_ijk, grid_shape = np.c_[np.arange(10), np.zeros((10, 2), int)], (10, 1, 1)


def test_fit_encoder_routes_learn_the_group_target_and_predict_a_noisy_subject_better():
    """Six subjects share a response under heavy noise: routes fitted to the blend with the others' mean
    predict each subject's own held-out BOLD better than routes fitted to its own BOLD alone."""
    base = tiny_movie(n_per_run=150)
    rng = np.random.default_rng(3)
    descriptor = rng.standard_normal((base.n_trs, 3))
    response = np.zeros((base.n_trs, 10))
    response[2:] = descriptor[:-2] @ rng.standard_normal((3, 10))
    subjects = [f"s{i}" for i in range(6)]
    bold = {s: (0.15 * response + rng.standard_normal(response.shape)).astype(np.float32) for s in subjects}
    movie = dataclasses.replace(base, bold=bold, bold_valid={s: base.labels >= 0 for s in subjects},
                                prepared={s: _Grid() for s in subjects})
    test = np.flatnonzero(movie.labels == BLOCKS.index("test"))[3:]
    r = {}
    for weight in (0.0, 0.75):
        data = dataclasses.replace(movie, group_target_weight=weight)
        scores = {"audio": encoding_scores(data, descriptor, (1, 2, 3))}
        routes = fit_encoder_routes(data, {"audio": descriptor}, (1, 2, 3), scores)["audio"]
        r[weight] = np.mean([np.corrcoef(_route_prediction(w, descriptor, test)[:, i], bold[s][test][:, v])[0, 1]
                             for s, w in routes.items() for i, v in enumerate(w["outputs"])])
    assert r[0.75] > 1.1 * r[0.0], r  # 0.27 vs 0.23


def test_fit_joint_routes_sum_to_the_joint_ridge_for_every_voxel():
    movie, sound = _driven(tiny_movie(n_per_run=150), gain=1.0)
    text = np.random.default_rng(2).standard_normal((movie.n_trs, 2))
    routes = fit_joint_routes(movie, {"audio": sound, "text": text}, (1, 2, 3))
    test = np.flatnonzero(movie.labels == BLOCKS.index("test"))[3:]
    joint = np.concatenate([sound, text], axis=1)
    for subject in movie.subjects:
        assert all(routes[m][subject]["outputs"].tolist() == list(range(40)) for m in ("audio", "text"))
        summed = _route_prediction(routes["audio"][subject], sound, test) + _route_prediction(
            routes["text"][subject], text, test)
        rows = encoding_rows(movie.bold_valid[subject], movie.labels, movie.runs, "train", (1, 2, 3))
        ridge = fit_ridge(joint, movie.bold[subject], rows, lags=(-1, -2, -3))
        np.testing.assert_allclose(summed, ridge.predict(np.concatenate([joint[test - d] for d in (1, 2, 3)], axis=1)),
                                   rtol=1e-4, atol=1e-4)
        r = [np.corrcoef(summed[:, v], movie.bold[subject][test, v])[0, 1] for v in range(5)]
        assert min(r) > 0.3, subject


def _run_chunks(route, x, runs):
    """A fitted route run over every run of ``x`` as one chunk: (n_trs, n_out)."""
    return np.concatenate([route(torch.from_numpy(x[runs == r]).float()[None])[0].numpy() for r in np.unique(runs)])


def test_route_context_predicts_voxels_that_follow_the_story_over_many_trs():
    movie = tiny_movie(n_per_run=200)
    rng = np.random.default_rng(3)
    feature = rng.standard_normal((movie.n_trs, 2))
    slow = trailing_means(feature, movie.runs, (16,))[:, 2:]  # each voxel follows the last 16 TRs, 1 TR later
    bold = {}
    for subject in movie.subjects:
        values = 0.3 * rng.standard_normal((movie.n_trs, 8))
        values[1:] += 3 * slow[:-1] @ rng.standard_normal((2, 8))
        bold[subject] = values.astype(np.float32)
    movie = MovieData(**{**movie.__dict__, "bold": bold})
    test = movie.labels == BLOCKS.index("test")
    r = {}
    for context in ((), (8, 24)):
        routes = fit_joint_routes(movie, {"text": trailing_means(feature, movie.runs, context)}, (1, 2, 3),
                                  columns={"text": np.arange(2)})
        r[context] = []
        for subject, weights in routes["text"].items():
            route = LaggedLinear(2, 8, (-1, -2, -3), context)
            route.set_weights(**weights)
            predicted = _run_chunks(route, feature, movie.runs)
            r[context] += [np.corrcoef(predicted[test, v], bold[subject][test, v])[0, 1] for v in range(8)]
    assert np.mean(r[(8, 24)]) > 0.65 > 0.5 > np.mean(r[()]), {k: np.mean(v) for k, v in r.items()}  # 0.72, 0.39
