import numpy as np

from giblet.blocks import column_blocks, keep_columns


def test_column_blocks_cover_every_column_once():
    assert column_blocks(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert column_blocks(0, 3) == []


def test_keep_columns_equals_fancy_indexing_without_a_copy(rng, small_blocks):
    values = rng.standard_normal((5, 11)).astype(np.float32)
    keep = np.array([1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1], bool)
    expected = values[:, keep]
    kept = keep_columns(values, keep)
    np.testing.assert_array_equal(kept, expected)
    assert np.shares_memory(kept, values)


def test_keep_columns_all_kept_is_the_array_itself(rng):
    values = rng.standard_normal((4, 3))
    assert keep_columns(values, np.ones(3, bool)) is values
