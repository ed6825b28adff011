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
        self._neighbours = NearestNeighbors(metric="cosine", algorithm="brute").fit(embeddings)
        self._mean = embeddings.mean(axis=0)
        self._centred = NearestNeighbors(metric="cosine", algorithm="brute").fit(embeddings - self._mean)

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

    def query(self, embeddings, k=1, centred=False):
        """Closest texts to each query embedding.

        Parameters
        ----------
        embeddings : ndarray, shape (n_queries, n_dims) or (n_dims,)
            E.g. the decoder's text output for each TR.
        k : int, default=1
        centred : bool, default=False
            Compare texts and queries after subtracting the texts' mean embedding: sentence
            embeddings share a large common direction and decoded ones are pulled toward the mean,
            which uncentred cosine turns into one "hub" text retrieved for every query.

        Returns
        -------
        indices : ndarray, shape (n_queries, k), int64
            Rows of the index, best first.
        similarity : ndarray, shape (n_queries, k), float64
            Cosine similarity (1 = same direction).
        """
        embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if centred:
            embeddings = embeddings - self._mean
        distance, indices = (self._centred if centred else self._neighbours).kneighbors(embeddings, n_neighbors=k)
        return indices, 1.0 - distance

    def nearest_texts(self, embeddings, centred=False):
        """The closest text to each query embedding, as a list of str (length n_queries); see :meth:`query`."""
        return [self.texts[i] for i in self.query(embeddings, k=1, centred=centred)[0][:, 0]]
