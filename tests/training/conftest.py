"""A tiny movie with two subjects whose voxels follow the video features two TRs later."""

import numpy as np
import pytest

from giblet.splits import SplitConfig, make_split
from giblet.training.data import MovieData


def tiny_movie(seed=0, n_per_run=90, shift=0):
    rng = np.random.default_rng(seed)
    runs = np.repeat([0, 1], n_per_run)
    n = len(runs)
    labels = make_split(n, 1.5, SplitConfig(fractions=(0.6, 0.2, 0.2), gap_s=6.0, min_gap_s=6.0)).labels
    video = rng.standard_normal((n, 4)).astype(np.float32)
    bold, valid = {}, {}
    for i, subject in enumerate(("sub-a", "sub-b")):
        weights = rng.standard_normal((4, 6 + i))
        driven = np.zeros((n, 6 + i))
        for run in (0, 1):
            rows = np.flatnonzero(runs == run)
            driven[rows[2:]] = video[rows[:-2]] @ weights
        bold[subject] = (driven + 0.3 * rng.standard_normal(driven.shape)).astype(np.float32)
        valid[subject] = labels >= 0
    stimulus = {
        "video": video,
        "thumbs": rng.uniform(0, 1, (n, 3, 8, 8)).astype(np.float32),
        "text": rng.standard_normal((n, 5)).astype(np.float32),
    }
    return MovieData(1.5, runs, labels, stimulus, bold, valid, {}, None, {}, ("video", "text"))


@pytest.fixture
def movie():
    return tiny_movie()
