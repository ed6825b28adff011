"""The code model's stages: ``fit-code-model`` (fitted on the film's audio alone, the penalty chosen on the
validation block) and ``score-code-model`` (the oracle: the test block from the true descriptor)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from giblet.config import from_section
from giblet.audio.code_model import CodeModel, FitSettings, select_code_model
from giblet.audio.code_scores import code_counts, score_code_model
from giblet.audio.codes import CodeStream, codes_by_tr
from giblet.compute import resolve_device
from giblet.features import FeatureTable
from giblet.io import write_json
from giblet.outputs import CODE_MODEL_OUTPUTS
from giblet.splits import BLOCKS, GAP

__all__ = ["CodeModelConfig", "CodeScoreConfig", "code_model_rows", "run_fit_code_model",
           "run_score_code_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodeModelConfig:
    """Settings of the code model (config section ``code_model``).

    Attributes
    ----------
    descriptor : str, default="audio_logmel_tr.npz"
        Per-TR descriptor table (``FeatureTable``, shape (n_trs, n_features)) in the features folder.
    l2_grid : tuple of float, default=(1e-4, 1e-3, 1e-2, 0.1, 1.0)
        Penalties tried, per squared weight, added to each codebook's mean cross-entropy per code (nats);
        the one with the lowest validation cross-entropy is kept for each codebook. 1.0 leaves about the
        unigram prior (a descriptor without information gains nothing).
    smoothing_counts : float, default=0.5
        Pseudo-count added to every code of the unigram prior (0.5: Krichevsky-Trofimov), so that a code
        unseen in training keeps a finite cross-entropy.
    max_iter : int, default=100
        L-BFGS iterations per fit (on the demo the fits converge in about 60).
    """

    descriptor: str = "audio_logmel_tr.npz"
    l2_grid: tuple = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
    smoothing_counts: float = 0.5
    max_iter: int = 100

    def __post_init__(self):
        grid = tuple(float(v) for v in self.l2_grid)
        if not grid or min(grid) <= 0:
            raise ValueError(f"code_model.l2_grid must be one or more positive penalties, got {list(self.l2_grid)}")
        if self.smoothing_counts <= 0:
            raise ValueError(f"code_model.smoothing_counts must be > 0, got {self.smoothing_counts}")
        if self.max_iter < 1:
            raise ValueError(f"code_model.max_iter must be >= 1, got {self.max_iter}")
        object.__setattr__(self, "l2_grid", grid)

    @classmethod
    def from_dict(cls, section):
        """The config from the ``code_model`` section of a validated config (unknown keys are an error)."""
        return from_section(cls, "code_model", section)


@dataclass(frozen=True)
class CodeScoreConfig:
    """Settings of ``score-code-model`` (the config's ``evaluate`` section, ``seed`` and ``fmri.preshift_trs``).

    Attributes
    ----------
    preshift_trs : int, default=0
        ``fmri.preshift_trs``: the split's labels are moved onto the stimulus clock.
    seed : int, default=0
        Seed of the bootstrap and the null.
    n_bootstrap : int, default=1000
    bootstrap_block_trs : int, default=5
    n_permutations : int, default=1000
    """

    preshift_trs: int = 0
    seed: int = 0
    n_bootstrap: int = 1000
    bootstrap_block_trs: int = 5
    n_permutations: int = 1000

    @classmethod
    def from_config(cls, cfg):
        """The settings of a validated config."""
        ev = cfg["evaluate"]
        return cls(preshift_trs=cfg["fmri"]["preshift_trs"], seed=cfg["seed"], n_bootstrap=ev["n_bootstrap"],
                   bootstrap_block_trs=ev["bootstrap_block_trs"], n_permutations=ev["n_permutations"])


def _contiguous(mask):
    """``(start, stop)`` of every stretch of True in ``mask``."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _gaps_next_to(labels, block):
    """Gap TRs in a stretch of gap TRs that touches a TR of ``block``."""
    inside = labels == BLOCKS.index(block)
    out = np.zeros(len(labels), dtype=bool)
    for start, stop in _contiguous(labels == GAP):
        if (start > 0 and inside[start - 1]) or (stop < len(labels) and inside[stop]):
            out[start:stop] = True
    return out


def code_model_rows(labels):
    """Which TRs the code model is fitted, selected and scored on.

    Parameters
    ----------
    labels : ndarray, shape (n_trs,), int
        Block of every TR on the stimulus clock (``BLOCKS`` index, ``GAP``).

    Returns
    -------
    dict of str to ndarray, shape (n_trs,), bool
        ``"fit"``: every TR but the test block and the gap TRs next to it (the final fit);
        ``"select"``: the fit TRs less the validation block and the gap TRs next to it (fits whose
        penalty is scored on ``"val"``); ``"val"``; ``"test"``; ``"left_out"``: the gap TRs next
        to the test block.
    """
    labels = np.asarray(labels)
    test, val = labels == BLOCKS.index("test"), labels == BLOCKS.index("val")
    left_out = _gaps_next_to(labels, "test")
    fit = ~test & ~left_out
    select = fit & ~val & ~_gaps_next_to(labels, "val")
    return {"fit": fit, "select": select, "val": val, "test": test, "left_out": left_out}


def _read_split(prepared_path, preshift_trs):
    """Block labels on the stimulus clock, runs and TR of a ``prepare-fmri`` file (reads no voxel data)."""
    from giblet.training.data import shift_within_runs

    with np.load(prepared_path, allow_pickle=False) as z:
        labels, runs, tr_s = z["split_labels"], z["runs"], float(z["tr_s"])
    return shift_within_runs(labels, runs, preshift_trs, GAP), runs, tr_s


def _read_inputs(features_dir, prepared_path, descriptor_name, preshift_trs):
    features_dir = Path(features_dir)
    labels, runs, tr_s = _read_split(prepared_path, preshift_trs)
    n_trs = len(labels)
    stream = CodeStream.load(features_dir / "codes.npz")
    table = FeatureTable.load(features_dir / descriptor_name)
    if table.n_samples != n_trs:
        raise ValueError(f"{features_dir / descriptor_name}: {table.n_samples} TRs but {prepared_path} has {n_trs}; "
                         "extract audio with the same fmri.run_n_trs")
    if not np.isfinite(table.values).all():
        raise ValueError(f"{features_dir / descriptor_name}: {np.count_nonzero(~np.isfinite(table.values))} non-finite "
                         "values; the descriptor must be finite on every TR")
    with np.load(features_dir / "codebooks.npz", allow_pickle=False) as z:
        codebook_size = int(z["vectors"].shape[1])
    codes, mask = codes_by_tr(stream, tr_s, n_trs)
    return stream, table, code_counts(codes, mask, codebook_size), labels, tr_s


def _rows_with_test(labels, prepared_path):
    rows = code_model_rows(labels)
    if not rows["test"].any():
        raise ValueError(f"{prepared_path}: the split has no test block to score the code model on; "
                         "give split.fractions a test share")
    return rows


def run_fit_code_model(*, features_dir, prepared_path, out_dir, config=CodeModelConfig(), preshift_trs=0, device=None):
    """Fit the code model on the film's audio (the ``fit-code-model`` stage): ``out_dir/code_model.npz``.

    No fMRI enters the fit: the prepared file gives only the split. The penalty is chosen per codebook
    on the validation block and the model refitted on every TR but the test block and the gap TRs
    next to it (:func:`run_score_code_model` scores it there).

    Parameters
    ----------
    features_dir : path
        Holds ``codes.npz``, ``codebooks.npz`` and the descriptor table ``config.descriptor``.
    prepared_path : path
        One subject's ``prepare-fmri`` file (for the split, shared by all subjects).
    out_dir : path
    config : CodeModelConfig
    preshift_trs : int, default=0
        ``fmri.preshift_trs``: the split's labels are moved onto the stimulus clock.
    device : str, optional
        None/"auto": CUDA when available, else the CPU (the fit draws no random numbers).

    Returns
    -------
    Path
        The written model.
    """
    device = resolve_device(device)
    stream, table, counts, labels, tr_s = _read_inputs(features_dir, prepared_path, config.descriptor, preshift_trs)
    rows = _rows_with_test(labels, prepared_path)
    meta = {**stream.meta, "descriptor": config.descriptor, "tr_s": tr_s, "preshift_trs": preshift_trs,
            "smoothing_counts": config.smoothing_counts, "fit_trs": np.flatnonzero(rows["fit"]).tolist()}
    settings = FitSettings(smoothing_counts=config.smoothing_counts, max_iter=config.max_iter, device=device)
    model, _ = select_code_model(counts, table.values, rows, l2_grid=config.l2_grid, settings=settings,
                                 feature_names=table.names, meta=meta)
    return model.save(Path(out_dir) / CODE_MODEL_OUTPUTS["model"])


def run_score_code_model(*, features_dir, prepared_path, model_path, out_dir, config=CodeScoreConfig()):
    """Score the code model on the test block from the true descriptor (the ``score-code-model`` stage).

    The oracle every brain decoder is compared with: cross-entropy and bits per code gained over the
    training unigram, with a block-bootstrap CI and a circular-shift null, written to
    ``out_dir/code_model_scores.json``. Scoring settings never refit the model.

    Parameters
    ----------
    features_dir, prepared_path
        As for :func:`run_fit_code_model`.
    model_path : path
        Its ``code_model.npz``.
    out_dir : path
    config : CodeScoreConfig
        Pre-shift, seed, bootstrap and null.

    Returns
    -------
    Path
        The written scores.
    """
    model = CodeModel.load(model_path)
    descriptor = model.meta["descriptor"]
    stream, table, counts, labels, tr_s = _read_inputs(features_dir, prepared_path, descriptor, config.preshift_trs)
    rows = _rows_with_test(labels, prepared_path)
    test = rows["test"]
    block_trs = config.bootstrap_block_trs
    scores = score_code_model(model, counts[test], table.values[test], n_bootstrap=config.n_bootstrap,
                              block_trs=block_trs, n_permutations=config.n_permutations, seed=config.seed,
                              frame_rate_hz=stream.frame_rate_hz)
    path = write_json(Path(out_dir) / CODE_MODEL_OUTPUTS["scores"], {
        **stream.meta,
        "descriptor": descriptor,
        "n_features": model.n_features,
        "codebook_size": model.codebook_size,
        "n_trs": {name: int(mask.sum()) for name, mask in rows.items()},
        "test_trs": [int(t) for t in np.flatnonzero(test)[[0, -1]] + [0, 1]],
        "validation": model.meta.get("validation"),
        "smoothing_counts": model.meta.get("smoothing_counts"),
        "bootstrap": {"n_bootstrap": config.n_bootstrap, "block_trs": block_trs, "level": 0.95, "seed": config.seed},
        "null": {"method": "circular shift of the descriptor", "min_shift_trs": block_trs},
        "test": scores,
    })
    bits = scores["bits_per_code"]
    log.info("code model from the true descriptor on %d test TRs: %.3f bits/code over the unigram [%.3f, %.3f] "
             "(cross-entropy %.3f vs %.3f nats)", scores["n_trs"], bits["mean"], bits["ci_low"], bits["ci_high"],
             scores["cross_entropy_nats"]["code_model"], scores["cross_entropy_nats"]["unigram"])
    return path
