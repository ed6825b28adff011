"""Windows stay inside one run and one block; held-out BOLD never enters a training batch."""

import dataclasses

import numpy as np
import pytest

from giblet.fmri.prepared import PreparedFmri
from giblet.splits import BLOCKS, make_split
from giblet.training.data import _standardised, load_movie_data, make_batch, shift_within_runs, windows
from tests.training.conftest import tiny_movie


def test_shift_within_runs_moves_rows_later_and_never_across_runs():
    values = np.arange(10.0)[:, None]
    runs = np.repeat([0, 1], 5)
    out = shift_within_runs(values, runs, 2, -1.0)[:, 0]
    np.testing.assert_array_equal(out, [-1, -1, 0, 1, 2, -1, -1, 5, 6, 7])


def test_shift_within_runs_at_zero_is_no_copy(rng):
    values = rng.standard_normal((10, 3))
    assert shift_within_runs(values, np.repeat([0, 1], 5), 0, np.nan) is values


def test_shift_within_runs_in_place_by_blocks_equals_a_copy(rng, small_blocks):
    values = rng.standard_normal((12, 7)).astype(np.float32)
    runs = np.repeat([0, 1, 2], [5, 2, 5])  # run 1 is shorter than the shift
    expected = shift_within_runs(values, runs, 3, 0.0)
    moved = shift_within_runs(values, runs, 3, 0.0, in_place=True)
    assert moved is values
    np.testing.assert_array_equal(moved, expected)
    np.testing.assert_array_equal(moved[5:7], 0.0)


def _prepared(path, subject, rng, n_trs=60):
    split = make_split(n_trs, 2.0)
    valid = split.labels >= 0
    values = rng.standard_normal((n_trs, 5)).astype(np.float32)
    values[~valid] = np.nan
    return PreparedFmri(
        subject=subject, values=values, runs=np.repeat([0, 1], n_trs // 2), tr_s=2.0, valid_trs=valid, split=split,
        voxel_ijk=np.c_[np.arange(5), np.zeros((5, 2), int)].astype(np.int32), affine=np.eye(4), grid_shape=(5, 1, 1),
        roi_names=("a",), roi_membership=np.ones((5, 1), bool), excluded_ijk=np.zeros((0, 3), np.int32),
        excluded_reasons=(), mean=np.zeros(5), scale=np.ones(5),
    ).save(path)


@pytest.mark.parametrize("preshift", [0, 2])
def test_load_movie_data_holds_one_bold_copy(tmp_path, rng, preshift):
    path = _prepared(tmp_path / "sub-a.npz", "sub-a", rng)
    stored = PreparedFmri.load(path)
    data = load_movie_data(tmp_path, [path], modalities=(), preshift_trs=preshift)
    bold = data.bold["sub-a"]
    assert np.shares_memory(bold, data.prepared["sub-a"].values)
    expected = shift_within_runs(np.nan_to_num(stored.values), stored.runs, preshift, 0.0)
    np.testing.assert_array_equal(bold, expected)
    assert np.array_equal(data.bold_valid["sub-a"], shift_within_runs(stored.valid_trs, stored.runs, preshift, False))


def test_pieces_are_contiguous_single_block_single_run(movie):
    for block in BLOCKS:
        for start, stop in movie.pieces(block):
            assert len(set(movie.runs[start:stop])) == 1
            assert (movie.labels[start:stop] == BLOCKS.index(block)).all()
    covered = sum(b - a for blk in BLOCKS for a, b in movie.pieces(blk))
    assert covered == (movie.labels >= 0).sum()


def test_windows_cover_training_trs_with_context_inside_the_run(movie):
    spans = windows(movie, "train", 16, 8, 4, 4)
    core = np.zeros(movie.n_trs, bool)
    for lo, a, b, hi in spans:
        core[a:b] = True
        assert len(set(movie.runs[lo:hi])) == 1 and lo <= a < b <= hi
        assert (movie.labels[a:b] == 0).all()
    np.testing.assert_array_equal(core, movie.labels == 0)


def test_make_batch_zeroes_bold_outside_the_block(movie):
    spans = windows(movie, "train", 16, 8, 4, 4)
    batch, target, bold, valid, goal = make_batch(movie, spans, "train")
    assert goal is bold  # no group target: the encoder learns the subject's own BOLD
    for i, (lo, a, b, hi) in enumerate(spans):
        outside = movie.labels[lo:hi] != 0
        assert not bold["sub-a"][i, : hi - lo][outside].any()
        assert not valid["sub-a"][i, : hi - lo][outside].any()
        np.testing.assert_array_equal(batch["video"][i, : hi - lo], movie.stimulus["video"][lo:hi])
        assert target[i].sum() == b - a


class _Grid:
    def __init__(self, voxel_ijk):
        self.voxel_ijk, self.grid_shape = np.asarray(voxel_ijk), (4, 1, 1)


def _grouped_movie(rng, weight):
    """Three subjects on one grid: c stores its voxels in another order, a has a voxel nobody else has."""
    movie = tiny_movie()
    n = movie.n_trs
    ijk = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    bold = {s: rng.standard_normal((n, 3)).astype(np.float32) for s in ("a", "b", "c")}
    bold["a"] = np.c_[bold["a"], rng.standard_normal(n).astype(np.float32)]  # voxel (3, 0, 0): a's alone
    valid = {s: movie.labels >= 0 for s in bold}
    valid["b"] = valid["b"] & (np.arange(n) >= 20)  # b's first TRs are bad: the others' mean there is c's alone
    bold["b"][~valid["b"]] = 0.0
    prepared = {"a": _Grid(np.r_[ijk, [[3, 0, 0]]]), "b": _Grid(ijk), "c": _Grid(ijk[[2, 0, 1]])}
    return dataclasses.replace(movie, bold=bold, bold_valid=valid, prepared=prepared, group_target_weight=weight)


def test_encoding_target_blends_in_the_other_subjects_mean_on_training_trs_only(rng):
    movie = _grouped_movie(rng, 0.25)
    own, b, c = movie.bold["a"], movie.bold["b"], movie.bold["c"][:, [1, 2, 0]]  # c in a's voxel order
    others = np.where(movie.bold_valid["b"][:, None], (b + c) / 2, c)
    expected = own.copy()
    train = movie.labels == BLOCKS.index("train")
    expected[train, :3] = 0.75 * own[train, :3] + 0.25 * others[train]
    np.testing.assert_allclose(movie.encoding_target("a"), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(movie.encoding_target("a", 30, 100), expected[30:100], rtol=1e-6, atol=1e-6)
    assert np.isnan(movie.others_mean("a")[:, 3]).all()


def test_make_batch_trains_the_encoder_toward_the_group_target_and_scores_the_subject_alone(rng):
    movie = _grouped_movie(rng, 0.5)
    spans = windows(movie, "train", 16, 8, 2, 2)
    _, _, bold, valid, goal = make_batch(movie, spans, "train")
    target = movie.encoding_target("b")
    for i, (lo, a, b, hi) in enumerate(spans):
        np.testing.assert_allclose(goal["b"][i, : hi - lo], np.where(valid["b"][i, : hi - lo, None], target[lo:hi], 0),
                                   rtol=1e-6)
    assert not np.allclose(goal["b"], bold["b"])
    _, _, bold, _, goal = make_batch(movie, windows(movie, "val", None, None, 2, 2), "val")
    assert goal is bold


def test_standardised_zeroes_columns_flat_up_to_rounding_noise(rng):
    train = np.arange(100) < 70
    values = np.c_[rng.normal(-40, 8, 100), rng.normal(-80, 0.005, 100), np.full(100, -80.0), rng.normal(5, 2, 100)]
    stats = {}
    out = _standardised(values, train, stats)
    np.testing.assert_allclose(out[train][:, [0, 3]].std(axis=0), 1.0)
    assert not out[:, 1:3].any()  # a floor band's 0.005 dB of noise is not scaled up into an input
    assert stats["flat"].tolist() == [False, True, True, False]
