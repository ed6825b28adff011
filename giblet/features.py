"""Feature tables: values that travel with their clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from giblet.config import check_choice
from giblet.io import save_npz

__all__ = ["FeatureTable", "FEATURE_KINDS"]

FEATURE_KINDS = ("continuous", "labels")


@dataclass(frozen=True)
class FeatureTable:
    """Stimulus or TR-grid features with the time of every row.

    Attributes
    ----------
    values : ndarray, shape (n_samples, n_features), float32
        ``"continuous"`` features, or per-category fractions/one-hot for ``"labels"``.
    times_s : ndarray, shape (n_samples,), float64
        Start time of each sample, in seconds from the first fMRI frame.
    names : tuple of str, length n_features
    kind : {"continuous", "labels"}
    runs : ndarray, shape (n_samples,), int, optional
        Run index of each sample (0-based); all zeros when there is one run.
    meta : dict
        Free-form JSON-able provenance (sample rate, model id, codec status...).
    """

    values: np.ndarray
    times_s: np.ndarray
    names: tuple
    kind: str = "continuous"
    runs: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.values.ndim != 2:
            raise ValueError(f"values must be 2-D (n_samples, n_features), got shape {self.values.shape}")
        if len(self.times_s) != len(self.values):
            raise ValueError(
                f"values has {len(self.values)} samples but times_s has {len(self.times_s)}"
            )
        if len(self.names) != self.values.shape[1]:
            raise ValueError(f"{self.values.shape[1]} features but {len(self.names)} names")
        check_choice("kind", self.kind, FEATURE_KINDS)
        if self.runs is None:
            object.__setattr__(self, "runs", np.zeros(len(self.values), dtype=np.int64))

    @property
    def n_samples(self) -> int:
        return self.values.shape[0]

    def save(self, path) -> Path:
        """Write the table to ``path`` (``.npz``) atomically."""
        import json

        return save_npz(
            path,
            values=self.values,
            times_s=self.times_s,
            names=np.asarray(self.names, dtype=str),
            kind=np.asarray(self.kind),
            runs=self.runs,
            meta=np.asarray(json.dumps(self.meta, sort_keys=True)),
        )

    @classmethod
    def load(cls, path) -> "FeatureTable":
        import json

        with np.load(path, allow_pickle=False) as z:
            return cls(
                values=z["values"],
                times_s=z["times_s"],
                names=tuple(str(n) for n in z["names"]),
                kind=str(z["kind"]),
                runs=z["runs"],
                meta=json.loads(str(z["meta"])),
            )
