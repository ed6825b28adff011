import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from giblet.splits import BLOCKS, GAP, Split, SplitConfig, make_split, fold_chunks, fold_splits, pieces


def test_make_split_sherlock_blocks():
    split = make_split(1976, 1.5)  # defaults: 0.8/0.1/0.1, 32 s gaps -> 22 TRs (33 s)
    assert split.ranges() == {"train": (0, 1546), "val": (1568, 1761), "test": (1783, 1976)}
    assert (split.labels == GAP).sum() == 44
    assert split.to_dict()["blocks"]["test"]["start_s"] == 1783 * 1.5


@settings(max_examples=200, deadline=None)
@given(
    n_trs=st.integers(60, 3000),
    tr_s=st.sampled_from([0.72, 1.0, 1.5, 2.0, 2.5]),
    gap_s=st.floats(32.0, 60.0),
    cuts=st.tuples(st.floats(0.05, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    order=st.permutations(BLOCKS),
)
def test_make_split_blocks_contiguous_and_gap_apart(n_trs, tr_s, gap_s, cuts, order):
    fractions = tuple(c / sum(cuts) for c in cuts)
    try:
        split = make_split(n_trs, tr_s, SplitConfig(fractions=fractions, gap_s=gap_s, order=order))
    except ValueError as err:
        assert "cannot hold blocks" in str(err)
        return
    ranges = split.ranges()
    assert [b for b in order if b in ranges] == sorted(ranges, key=lambda b: ranges[b][0])
    for block, (start, stop) in ranges.items():  # contiguous: every TR in [start, stop) is this block
        assert np.all(split.mask(block)[start:stop]) and split.mask(block).sum() == stop - start
    times = np.arange(n_trs) * tr_s
    for a in ranges:
        for b in ranges:
            if a != b and ranges[a][0] < ranges[b][0]:
                # end of a's last TR to start of b's first TR, and every pair further apart
                assert times[ranges[b][0]] - (times[ranges[a][1] - 1] + tr_s) >= gap_s - 1e-9
    n_gap = math.ceil(gap_s / tr_s - 1e-9) * (len(ranges) - 1)
    assert (split.labels == GAP).sum() == n_gap
    assert split.labels[0] == BLOCKS.index([b for b in order if b in ranges][0])


def test_make_split_zero_val_has_one_gap():
    split = make_split(200, 2.0, SplitConfig(fractions=(0.75, 0.0, 0.25)))
    assert split.ranges() == {"train": (0, 138), "test": (154, 200)}


def test_make_split_test_first():
    split = make_split(200, 2.0, SplitConfig(order=("test", "val", "train")))
    assert split.ranges() == {"test": (0, 17), "val": (33, 50), "train": (66, 200)}


def test_make_split_gap_shorter_than_hrf_raises():
    with pytest.raises(ValueError, match=r"split.gap_s is 10.0 s, shorter than the HRF length 32.0 s"):
        make_split(500, 1.5, SplitConfig(gap_s=10.0))


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (0.9, 0.2, -0.1), (0.5, 0.5), (0.0, 0.5, 0.5)])
def test_make_split_bad_fractions_raise(fractions):
    with pytest.raises(ValueError, match="split.fractions"):
        make_split(500, 1.5, SplitConfig(fractions=fractions))


def test_make_split_bad_order_raises():
    with pytest.raises(ValueError, match="split.order must be a permutation"):
        make_split(500, 1.5, SplitConfig(order=("train", "test", "test")))


def test_make_split_too_few_trs_raises():
    with pytest.raises(ValueError, match="50 TRs cannot hold blocks"):
        make_split(50, 1.5)


def test_split_segments_cut_at_runs_and_blocks():
    labels = np.array([0] * 6 + [GAP] * 2 + [1] * 3 + [GAP] * 2 + [2] * 3, dtype=np.int8)
    runs = np.array([0] * 4 + [1] * 12)
    split = Split(labels=labels, tr_s=2.0, gap_s=32.0)
    assert split.segments(runs).tolist() == [0] * 4 + [1] * 2 + [-1] * 2 + [2] * 3 + [-1] * 2 + [3] * 3


def test_split_mask_unknown_block_raises():
    with pytest.raises(ValueError, match=r"block must be one of \['train', 'val', 'test'\], got 'dev'"):
        make_split(500, 1.5).mask("dev")


def test_fold_chunks_cover_the_scan_in_equal_chunks_gap_apart():
    config = SplitConfig(gap_s=32.0, folds=10)
    chunks = fold_chunks(1976, 1.5, config)
    sizes = [int((chunks == k).sum()) for k in range(10)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 1976 - 9 * 22
    assert chunks[0] == 0 and chunks[-1] == 9
    starts = [int(np.flatnonzero(chunks == k)[0]) for k in range(10)]
    stops = [int(np.flatnonzero(chunks == k)[-1]) for k in range(10)]
    assert all(start - stop - 1 == 22 for stop, start in zip(stops, starts[1:]))  # 22 gap TRs = 33 s >= 32 s


def test_fold_splits_test_every_chunk_once_validate_on_the_chunk_before():
    config = SplitConfig(gap_s=6.0, min_gap_s=6.0, folds=4)
    chunks = fold_chunks(100, 1.5, config)
    splits = fold_splits(100, 1.5, config)
    tested = np.zeros(100, int)
    for fold, split in enumerate(splits):
        np.testing.assert_array_equal(split.mask("test"), chunks == fold)
        np.testing.assert_array_equal(split.mask("val"), chunks == (fold - 1) % 4)
        np.testing.assert_array_equal(split.mask("train"), (chunks >= 0) & ~split.mask("test") & ~split.mask("val"))
        tested += split.mask("test")
    np.testing.assert_array_equal(tested, chunks >= 0)


def test_fold_chunks_need_three_folds():
    with pytest.raises(ValueError, match="at least 3 folds"):
        fold_chunks(100, 1.5, SplitConfig(folds=2))


def test_pieces_cut_at_every_labelling():
    runs = np.repeat([0, 1], 6)
    split = np.array([0, 0, 0, -1, 2, 2, 2, 2, -1, -1, 1, 1], np.int8)
    chunks = np.array([0, 0, 1, 1, 1, 1, -1, 2, 2, 2, 2, -1], np.int8)
    np.testing.assert_array_equal(pieces(runs, split, chunks), [0, 0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8])
    np.testing.assert_array_equal(pieces(runs, split), [0, 0, 0, -1, 1, 1, 2, 2, -1, -1, 3, 3])
