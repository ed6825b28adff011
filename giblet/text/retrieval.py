"""Nearest-neighbour text retrieval: an embedding back to the closest annotation text."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

__all__ = ["TextIndex"]


class TextIndex:
    """Annotation texts searchable by cosine similarity of their embeddings.

    Parameters
    ----------
    embeddings : ndarray, shape (n_texts, n_dims), float
    texts : sequence of str, length n_texts
    onset_s : ndarray, shape (n_texts,), optional
        Onset of each text's segment, in seconds from the first fMRI frame.
    """

    def __init__(self, embeddings, texts, onset_s=None):
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(embeddings) != len(texts) or not len(texts):
            raise ValueError(
                f"embeddings must be (n_texts, n_dims) with n_texts = len(texts) = {len(texts)} > 0, "
                f"got shape {embeddings.shape}"
            )
        self.texts = tuple(texts)
        self.onset_s = None if onset_s is None else np.asarray(onset_s, dtype=np.float64)
        self._embeddings = embeddings.astype(np.float64)
        self._neighbours = NearestNeighbors(metric="cosine", algorithm="brute").fit(embeddings)

    @classmethod
    def from_table(cls, table):
        """Index a segment table written by :func:`giblet.text.run_extract_text`.

        Parameters
        ----------
        table : giblet.features.FeatureTable
            Segment embeddings whose ``meta["texts"]`` holds one text per row.
        """
        if "texts" not in table.meta:
            raise ValueError("table has no meta['texts']; pass the text_segments.npz table of extract-text")
        return cls(table.values, table.meta["texts"], table.times_s)

    def query(self, embeddings, k=1, reference=None):
        """Closest texts to each query embedding.

        Parameters
        ----------
        embeddings : ndarray, shape (n_queries, n_dims) or (n_dims,)
            E.g. the decoder's text output for each TR.
        k : int, default=1
        reference : ndarray, shape (n_reference, n_dims), optional
            The true embeddings of the TRs the queries decode. Given, texts and queries are compared
            the way TR identification compares them, each set z-scored on its own: the queries over
            themselves, the texts by the mean and SD of the reference. Decoded embeddings are shrunk
            toward a mean of their own, and sentence embeddings share a large common direction; with
            plain cosine both make one "hub" text the nearest to every query.

        Returns
        -------
        indices : ndarray, shape (n_queries, k), int64
            Rows of the index, best first.
        similarity : ndarray, shape (n_queries, k), float64
            Cosine similarity (1 = same direction) in the space compared.
        """
        embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        if reference is None:
            distance, indices = self._neighbours.kneighbors(embeddings.astype(np.float32), n_neighbors=k)
            return indices, 1.0 - distance
        if len(embeddings) < 2:
            raise ValueError("z-scored retrieval needs at least 2 queries (they are standardised over themselves)")
        reference = np.asarray(reference, dtype=np.float64)
        queries = _unit_rows(_standardised(embeddings, embeddings))
        texts = _unit_rows(_standardised(self._embeddings, reference))
        similarity = queries @ texts.T
        indices = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        return indices, np.take_along_axis(similarity, indices, axis=1)

    def nearest_texts(self, embeddings, reference=None):
        """The closest text to each query embedding, as a list of str (length n_queries); see :meth:`query`."""
        return [self.texts[i] for i in self.query(embeddings, k=1, reference=reference)[0][:, 0]]


def _standardised(x, by):
    scale = by.std(axis=0)
    return (x - by.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


def _unit_rows(x):
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)
