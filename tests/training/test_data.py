"""Windows stay inside one run and one block; held-out BOLD never enters a training batch."""

import numpy as np

from giblet.splits import BLOCKS
from giblet.training.data import make_batch, shift_within_runs, windows


def test_shift_within_runs_moves_rows_later_and_never_across_runs():
    values = np.arange(10.0)[:, None]
    runs = np.repeat([0, 1], 5)
    out = shift_within_runs(values, runs, 2, -1.0)[:, 0]
    np.testing.assert_array_equal(out, [-1, -1, 0, 1, 2, -1, -1, 5, 6, 7])


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
    batch, target, bold, valid = make_batch(movie, spans, "train")
    for i, (lo, a, b, hi) in enumerate(spans):
        outside = movie.labels[lo:hi] != 0
        assert not bold["sub-a"][i, : hi - lo][outside].any()
        assert not valid["sub-a"][i, : hi - lo][outside].any()
        np.testing.assert_array_equal(batch["video"][i, : hi - lo], movie.stimulus["video"][lo:hi])
        assert target[i].sum() == b - a
