import numpy as np
import pytest

from giblet.features import FeatureTable
from giblet.text import TextIndex


def test_text_index_noisy_queries_beat_chance(rng):
    embeddings = rng.normal(size=(50, 16))
    index = TextIndex(embeddings, [f"segment {i}" for i in range(50)])
    queries = embeddings + 0.3 * rng.normal(size=embeddings.shape)
    accuracy = np.mean(index.query(queries)[0][:, 0] == np.arange(50))
    shuffled = np.mean(index.query(rng.permutation(queries))[0][:, 0] == np.arange(50))
    assert accuracy == 1.0 and shuffled < 0.1  # chance is 1/50
    assert index.nearest_texts(queries[:2]) == ["segment 0", "segment 1"]


def test_text_index_query_ranks_by_cosine():
    index = TextIndex(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), ["x", "diagonal", "y"])
    indices, similarity = index.query([2.0, 0.1], k=3)
    np.testing.assert_array_equal(indices, [[0, 1, 2]])
    np.testing.assert_allclose(similarity[0], np.array([2.0, 1.2 + 0.08, 0.1]) / np.hypot(2.0, 0.1), atol=1e-6)


def test_text_index_from_table_needs_texts():
    table = FeatureTable(np.eye(2, dtype=np.float32), np.array([0.0, 1.0]), ("a", "b"))
    with pytest.raises(ValueError, match="no meta\\['texts'\\]; pass the text_segments.npz"):
        TextIndex.from_table(table)


def test_text_index_shape_error():
    with pytest.raises(ValueError, match=r"n_texts = len\(texts\) = 3 > 0, got shape \(2, 4\)"):
        TextIndex(np.zeros((2, 4)), ["a", "b", "c"])


def test_text_index_z_scored_retrieval_finds_no_hub_in_shrunk_biased_decodings(rng):
    """Regression (Sherlock): every decoded TR retrieved the same annotation, the one nearest the decodings' mean."""
    embeddings = rng.normal(size=(40, 16)) + 3.0  # real sentence embeddings share a large common direction
    index = TextIndex(embeddings, [f"segment {i}" for i in range(40)])
    bias = rng.normal(size=16)  # a decoder's own offset: centring on the texts' mean does not remove it
    decoded = embeddings.mean(axis=0) + bias + 0.1 * (embeddings - embeddings.mean(axis=0))  # shrunk
    decoded += 0.02 * rng.normal(size=decoded.shape)
    plain = index.query(decoded)[0][:, 0]
    z_scored = index.query(decoded, reference=embeddings)[0][:, 0]
    assert np.bincount(plain).max() > 10  # a hub
    assert np.mean(z_scored == np.arange(40)) > 0.9
    with pytest.raises(ValueError, match="at least 2 queries"):
        index.query(decoded[3], reference=embeddings)
