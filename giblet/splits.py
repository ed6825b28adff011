"""Train/validation/test split of the TR axis into contiguous blocks separated by gaps.

Every stage that fits or scores anything uses the same :class:`Split`, made once from
the config by :func:`make_split`.

Conventions
-----------
- TRs are indexed on the concatenated run axis (runs in playback order); TR ``t`` covers
  ``[t * tr_s, (t + 1) * tr_s)`` seconds from the first fMRI frame.
- The blocks are laid out in ``order`` (default train, val, test), each one contiguous
  stretch of TRs, with ``ceil(gap_s / tr_s)`` gap TRs between consecutive blocks. The gap
  TRs belong to no block and are never used: the end of one block and the start of the
  next are at least ``gap_s`` seconds apart, so no TR of one block lies within ``gap_s`` of
  a TR of another, and a haemodynamic response (or a filter shorter than ``gap_s``) started
  in one block cannot reach the next.
- Blocks relate to runs as follows: a block may contain a run boundary (a long training
  block usually does). Blocks are contiguous in playback time, not in acquisition, so every
  stage that filters or convolves over time does it separately for each (run, block) piece;
  :meth:`Split.segments` gives those pieces. No filter then crosses a block or a run
  boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from giblet.config import check_choice

__all__ = ["BLOCKS", "GAP", "SplitConfig", "Split", "make_split", "fold_chunks", "fold_splits", "pieces"]

BLOCKS = ("train", "val", "test")
GAP = -1  # label of gap TRs; block b has label BLOCKS.index(b)


@dataclass(frozen=True)
class SplitConfig:
    """How to cut the TR axis (config section ``split``).

    Attributes
    ----------
    fractions : tuple of 3 float, default=(0.8, 0.1, 0.1)
        Share of the non-gap TRs given to train, val and test (sum to 1; val or test may be 0).
    gap_s : float, default=32.0
        Minimum time between two blocks, in seconds; at least the HRF length.
    order : tuple of str, default=("train", "val", "test")
        Order of the blocks along the TR axis (a permutation of ``BLOCKS``).
    min_gap_s : float, default=32.0
        The HRF length, in seconds (nilearn's Glover/SPM kernels last 32 s); ``gap_s`` below
        it is an error.
    folds : int, default=1
        Config ``cross_validation.folds``: with ``K >= 3``, also K-fold cross-validation over the whole scan (:func:`fold_splits`):
        K contiguous chunks separated by ``gap_s``; fold ``f`` tests on chunk ``f``, validates on
        the chunk before it and trains on the others.
    """

    fractions: tuple = (0.8, 0.1, 0.1)
    gap_s: float = 32.0
    order: tuple = BLOCKS
    min_gap_s: float = 32.0
    folds: int = 1


@dataclass(frozen=True)
class Split:
    """Block label of every TR.

    Attributes
    ----------
    labels : ndarray, shape (n_trs,), int8
        ``BLOCKS.index(block)`` for TRs in a block, ``GAP`` (-1) for gap TRs.
    tr_s : float
        Repetition time, in seconds.
    gap_s : float
        Gap the split was made with, in seconds.
    """

    labels: np.ndarray
    tr_s: float
    gap_s: float

    @property
    def n_trs(self) -> int:
        return len(self.labels)

    def mask(self, block) -> np.ndarray:
        """Boolean mask, shape (n_trs,), of the TRs in ``block`` (one of ``BLOCKS``)."""
        check_choice("block", block, BLOCKS)
        return self.labels == BLOCKS.index(block)

    def ranges(self) -> dict:
        """``{block: (start, stop)}`` TR index range of every non-empty block (stop exclusive)."""
        out = {}
        for block in BLOCKS:
            idx = np.flatnonzero(self.mask(block))
            if len(idx):
                out[block] = (int(idx[0]), int(idx[-1]) + 1)
        return out

    def segments(self, runs) -> np.ndarray:
        """Label every TR with its (run, block) piece, for per-piece filtering.

        Parameters
        ----------
        runs : ndarray, shape (n_trs,), int
            Run index of each TR, non-decreasing.

        Returns
        -------
        ndarray, shape (n_trs,), int64
            Piece number (0, 1, ... in time order) of each TR; -1 for gap TRs.
        """
        return pieces(runs, self.labels)

    def to_dict(self) -> dict:
        """JSON-able summary: TR ranges and seconds of every block, gap, TR."""
        return {
            "tr_s": self.tr_s,
            "gap_s": self.gap_s,
            "n_trs": self.n_trs,
            "blocks": {
                b: {"start_tr": a, "stop_tr": z, "start_s": a * self.tr_s, "stop_s": z * self.tr_s}
                for b, (a, z) in self.ranges().items()
            },
        }


def pieces(runs, *labels):
    """Number the pieces of TRs that share a run and every labelling (a block, a fold's chunk).

    Parameters
    ----------
    runs : ndarray, shape (n_trs,), int
        Run index of each TR, non-decreasing.
    *labels : ndarray, shape (n_trs,), int
        Labellings with ``GAP`` for TRs outside any block (:attr:`Split.labels`, :func:`fold_chunks`).

    Returns
    -------
    ndarray, shape (n_trs,), int64
        Piece number (0, 1, ... in time order) of each TR; -1 for TRs that are a gap in every labelling.
    """
    runs = np.asarray(runs)
    change = np.r_[True, np.diff(runs) != 0]
    for label in labels:
        if len(label) != len(runs):
            raise ValueError(f"runs has {len(runs)} TRs but a split has {len(label)}")
        change[1:] |= np.diff(label) != 0
    numbers = np.cumsum(change)
    kept = np.any([label != GAP for label in labels], axis=0)
    out = np.full(len(runs), -1, dtype=np.int64)
    out[kept] = np.unique(numbers[kept], return_inverse=True)[1]
    return out


def fold_chunks(n_trs, tr_s, config):
    """The cross-validation chunks: ``config.folds`` contiguous stretches of equal size (to a TR) separated by
    ``ceil(gap_s / tr_s)`` gap TRs; shape (n_trs,), int8, the chunk of every TR (``GAP`` between chunks)."""
    if config.folds < 3:
        raise ValueError(f"split.folds is {config.folds}: cross-validation needs at least 3 folds (a test, a "
                         "validation and a training chunk)")
    gap_trs = math.ceil(config.gap_s / tr_s - 1e-9)
    usable = n_trs - gap_trs * (config.folds - 1)
    if usable < config.folds:
        raise ValueError(f"{n_trs} TRs cannot hold {config.folds} folds with {gap_trs}-TR gaps; lower split.folds")
    sizes = np.diff(np.round(np.linspace(0, usable, config.folds + 1)).astype(int))
    labels = np.full(n_trs, GAP, dtype=np.int8)
    start = 0
    for chunk, size in enumerate(sizes):
        labels[start : start + size] = chunk
        start += size + gap_trs
    return labels


def fold_splits(n_trs, tr_s, config):
    """One :class:`Split` per fold of :func:`fold_chunks`: fold ``f`` tests on chunk ``f``, validates on chunk
    ``f - 1`` (the last chunk for fold 0) and trains on the rest; every two blocks are ``gap_s`` apart."""
    chunks = fold_chunks(n_trs, tr_s, config)
    out = []
    for fold in range(config.folds):
        labels = np.where(chunks == GAP, GAP, BLOCKS.index("train")).astype(np.int8)
        labels[chunks == fold] = BLOCKS.index("test")
        labels[chunks == (fold - 1) % config.folds] = BLOCKS.index("val")
        out.append(Split(labels=labels, tr_s=float(tr_s), gap_s=float(config.gap_s)))
    return out


def make_split(n_trs, tr_s, config=SplitConfig()) -> Split:
    """Cut ``n_trs`` TRs into contiguous blocks with gaps (see the module docstring).

    Parameters
    ----------
    n_trs : int
        Number of TRs over all runs.
    tr_s : float
        Repetition time, in seconds.
    config : SplitConfig

    Returns
    -------
    Split
        Block sizes are the fractions of the ``n_trs - n_gaps * ceil(gap_s / tr_s)`` usable
        TRs, rounded by largest remainder so that they add up exactly.
    """
    fractions = np.asarray(config.fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or not math.isclose(fractions.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(
            f"split.fractions must be 3 non-negative numbers (train, val, test) summing to 1, "
            f"got {list(config.fractions)}"
        )
    if fractions[0] == 0:
        raise ValueError("split.fractions: the training fraction must be > 0")
    if sorted(config.order) != sorted(BLOCKS):
        raise ValueError(f"split.order must be a permutation of {list(BLOCKS)}, got {list(config.order)}")
    if config.gap_s < config.min_gap_s:
        raise ValueError(
            f"split.gap_s is {config.gap_s} s, shorter than the HRF length {config.min_gap_s} s; "
            f"blocks that close leak the response of one into the other: set split.gap_s >= {config.min_gap_s}"
        )
    if tr_s <= 0:
        raise ValueError(f"tr_s must be > 0 seconds, got {tr_s}")
    used = [b for b in config.order if fractions[BLOCKS.index(b)] > 0]
    gap_trs = math.ceil(config.gap_s / tr_s - 1e-9)
    usable = n_trs - gap_trs * (len(used) - 1)
    share = np.array([fractions[BLOCKS.index(b)] for b in used]) * usable
    sizes = np.floor(share).astype(int)
    sizes[np.argsort(-(share - sizes), kind="stable")[: usable - sizes.sum()]] += 1
    if usable <= 0 or (sizes == 0).any():
        raise ValueError(
            f"{n_trs} TRs cannot hold blocks {used} with fractions {list(config.fractions)} and "
            f"{gap_trs}-TR gaps ({config.gap_s} s); lower split.gap_s or give every block a larger fraction"
        )
    labels = np.full(n_trs, GAP, dtype=np.int8)
    start = 0
    for block, size in zip(used, sizes):
        labels[start : start + size] = BLOCKS.index(block)
        start += size + gap_trs
    return Split(labels=labels, tr_s=float(tr_s), gap_s=float(config.gap_s))
