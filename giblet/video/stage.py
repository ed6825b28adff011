"""The ``extract-video`` stage: per-frame and per-TR visual features and TR thumbnails."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from av.video.reformatter import VideoReformatter

from giblet.config import from_section
from giblet.features import FeatureTable
from giblet.outputs import VIDEO_OUTPUTS
from giblet.text.tr_grid import TRAccumulator, overlap_mean, run_bounds_s, tr_run_ids
from giblet.video.frames import iter_frames
from giblet.video.image_model import load_image_model
from giblet.video.lowlevel import FRAME_FEATURE_NAMES, frame_features, motion_energy

__all__ = ["VideoConfig", "run_extract_video"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoConfig:
    """Settings of ``extract-video`` (the config's ``video`` section).

    Attributes
    ----------
    thumb_size : (int, int), default=(64, 36)
        Thumbnail (width, height), in pixels.
    analysis_width : int or None, default=320
        Width frames are shrunk to (area averaging, aspect kept, never enlarged) for the
        low-level and learned features; ``None`` keeps the native size.
    image_model : str, optional
        ``transformers`` image model (local folder or cached Hub id); off when ``None``.
    image_sample_hz : float, default=2.0
        Rate at which frames are sent to ``image_model`` (first frame of every 1/hz bin).
    batch_size : int, default=16
        Frames per image-model forward pass.
    """

    thumb_size: tuple = (64, 36)
    analysis_width: int | None = 320
    image_model: str | None = None
    image_sample_hz: float = 2.0
    batch_size: int = 16

    def __post_init__(self):
        object.__setattr__(self, "thumb_size", tuple(self.thumb_size))

    @classmethod
    def from_dict(cls, section):
        """The settings from the ``video`` section of a validated config (unknown keys are an error)."""
        return from_section(cls, "video", section)


def run_extract_video(stimulus_path, out_dir, timing, config, *, device=None, progress=True):
    """Read a movie by timestamp and write its visual features on frame and TR clocks.

    Each frame is on screen from its presentation timestamp to the next frame's; a TR's
    value is the mean over the frames it shows, weighted by seconds on screen in the TR.

    Parameters
    ----------
    stimulus_path : str or Path
        The movie (any container FFmpeg reads; variable frame rate is fine).
    out_dir : str or Path
        Folder for the outputs (:data:`VIDEO_OUTPUTS`).
    timing : giblet.timing.ScanTiming
        The scan's TRs and runs; the video must cover all of them. Its ``start_offset_s``
        is the stimulus time of the first fMRI frame, in seconds. One value: frame times are
        shifted by it, and frames before or after the scan are kept (for HRF convolution).
        One value per run (a movie that holds every run's part, with gaps between them):
        run r shows stimulus ``[start_offset_s[r], start_offset_s[r] + run duration)``;
        frames are clipped to their run's part and frames in no run are dropped.
    config : VideoConfig
        Thumbnail size, analysis width and the optional image model.
    device : str, optional
        Torch device for ``config.image_model``; CUDA when available.
    progress : bool, default=True
        Show a tqdm bar while decoding.

    Returns
    -------
    dict of str to Path
        Written :class:`~giblet.features.FeatureTable` files, keyed as in :data:`VIDEO_OUTPUTS`
        (the ``embedding_*`` ones only with ``config.image_model``):

        - ``lowlevel_frames``: (n_frames, 8) features at every frame onset (seconds from the
          first fMRI frame; may be negative before the scan), each held until the next row;
          ``meta["end_s"]`` is when the last frame leaves the screen.
        - ``lowlevel_tr``: (n_trs, 8) the same per TR.
        - ``thumbnails_tr``: (n_trs, height * width * 3) mean RGB thumbnail per TR in [0, 1];
          ``values.reshape(-1, *meta["image_shape"])`` gives (n_trs, height, width, 3).
        - ``embedding_samples``/``embedding_tr``: image-model vectors at the sampled frames
          and per TR.
    """
    stimulus_path, out_dir = Path(stimulus_path), Path(out_dir)
    tr_s, n_trs, start_offset_s = timing.tr_s, timing.n_trs, timing.start_offset_s
    thumb_size, image_model, image_sample_hz = config.thumb_size, config.image_model, config.image_sample_hz
    width, height = (int(v) for v in thumb_size)
    if tr_s <= 0 or width < 1 or height < 1 or image_sample_hz <= 0:
        raise ValueError(
            f"tr_s ({tr_s}), thumb_size ({thumb_size}) and image_sample_hz ({image_sample_hz}) "
            "must be positive; fix the video config"
        )
    tr_runs = tr_run_ids(n_trs, timing.run_n_trs)
    sampler = None
    if image_model is not None:
        sampler = _ImageSampler(load_image_model(image_model, device), image_sample_hz, config.batch_size)

    clock = _StimulusClock(start_offset_s, tr_runs, tr_s)
    thumbs = TRAccumulator(n_trs, tr_s, height * width * 3)
    onsets, offsets, frame_values, movie_end_s = _read_movie(
        stimulus_path, clock, config.analysis_width, (width, height), thumbs, sampler, progress
    )
    tr_values, covered_s = overlap_mean(onsets, offsets, frame_values, n_trs, tr_s)
    _check_coverage(stimulus_path, covered_s, movie_end_s, start_offset_s)
    intervals = np.diff(onsets)
    provenance = {
        "source": str(stimulus_path),
        "start_offset_s": np.asarray(start_offset_s, dtype=float).tolist(),
        "n_frames": len(onsets),
        "frame_interval_s_min_median_max": (
            [float(intervals.min()), float(np.median(intervals)), float(intervals.max())] if len(intervals) else []
        ),
        "analysis_width": config.analysis_width,
    }
    tr_times_s = np.arange(n_trs) * float(tr_s)
    frame_runs = _runs_at(onsets, tr_runs, tr_s)
    tables = {
        "lowlevel_frames": FeatureTable(
            frame_values, onsets, FRAME_FEATURE_NAMES, runs=frame_runs,
            meta={**provenance, "end_s": float(offsets[-1]), "hold": "each row holds until the next row's time"},
        ),
        "lowlevel_tr": FeatureTable(
            tr_values, tr_times_s, FRAME_FEATURE_NAMES, runs=tr_runs,
            meta={**provenance, "tr_s": float(tr_s), "min_tr_coverage_s": float(covered_s.min())},
        ),
        "thumbnails_tr": FeatureTable(
            thumbs.mean()[0], tr_times_s,
            tuple(f"px_{r}_{c}_{ch}" for r in range(height) for c in range(width) for ch in "rgb"),
            runs=tr_runs, meta={**provenance, "tr_s": float(tr_s), "image_shape": [height, width, 3], "range": [0, 1]},
        ),
    }
    if sampler is not None:
        sample_onsets, sample_offsets, embeddings = sampler.finish(offsets[-1])
        names = tuple(f"image_{i}" for i in range(embeddings.shape[1]))
        model_meta = {**provenance, "image_model": str(image_model), "image_sample_hz": float(image_sample_hz)}
        tables["embedding_samples"] = FeatureTable(
            embeddings, sample_onsets, names, runs=_runs_at(sample_onsets, tr_runs, tr_s),
            meta={**model_meta, "end_s": float(offsets[-1]), "hold": "each row holds until the next row's time"},
        )
        tables["embedding_tr"] = FeatureTable(
            overlap_mean(sample_onsets, sample_offsets, embeddings, n_trs, tr_s)[0], tr_times_s, names,
            runs=tr_runs, meta={**model_meta, "tr_s": float(tr_s)},
        )
    written = {key: table.save(out_dir / VIDEO_OUTPUTS[key]) for key, table in tables.items()}
    log.info("extract-video: %d frames -> %s", len(onsets), ", ".join(str(p) for p in written.values()))
    return written


def _read_movie(path, clock, analysis_width, thumb_size, thumbs, sampler, progress):
    """Decode the movie once: low-level features per frame, thumbnails into ``thumbs``, frames to ``sampler``.

    Returns
    -------
    onsets, offsets : ndarray, shape (n_frames,), float64
        Display intervals, in seconds from the first fMRI frame (frames in no run left out).
    frame_values : ndarray, shape (n_frames, 8), float32
        :data:`FRAME_FEATURE_NAMES`; a frame with no shown predecessor takes the next frame's motion energy.
    movie_end_s : float
        When the last frame leaves the screen, in stimulus seconds.
    """
    onsets, offsets, features, motion = [], [], [], []
    previous = None  # (stimulus onset, luma) of the previous frame
    analysis_scaler, thumb_scaler = VideoReformatter(), VideoReformatter()
    for timed in iter_frames(path, progress=progress):
        placed = clock.place(timed.onset_s, timed.offset_s)
        if placed is None:
            previous = None
            continue
        rgb = _rgb(analysis_scaler, timed.frame, analysis_width)
        values, y = frame_features(rgb)
        motion.append(np.nan if previous is None else motion_energy(previous[1], y, timed.onset_s - previous[0]))
        previous = (timed.onset_s, y)
        onsets.append(placed[0])
        offsets.append(placed[1])
        features.append(values)
        thumbs.add(*placed, _rgb(thumb_scaler, timed.frame, *thumb_size) / 255.0)
        if sampler is not None:
            sampler.offer(placed[0], rgb)
    if not onsets:
        raise ValueError(f"{path}: no frame falls in any run; check video.start_offset_s against the movie's length")
    motion = pd.Series(motion).bfill().fillna(0.0)  # a first frame (of the movie or a run) repeats the next
    return np.array(onsets), np.array(offsets), np.column_stack([np.stack(features), motion]).astype(np.float32), timed.offset_s


class _StimulusClock:
    """Where stimulus time lands on the fMRI clock (see ``timing`` of :func:`run_extract_video`)."""

    def __init__(self, start_offset_s, tr_runs, tr_s):
        starts = np.atleast_1d(np.asarray(start_offset_s, dtype=np.float64))
        bounds = run_bounds_s(tr_runs, tr_s)
        if len(starts) not in (1, len(bounds)):
            raise ValueError(
                f"start_offset_s has {len(starts)} values but the scan has {len(bounds)} runs; "
                "give one offset, or one per run"
            )
        self.per_run = len(starts) > 1
        self.starts, self.ends = starts, starts + bounds[:, 1] - bounds[:, 0]
        self.shifts = bounds[:, 0] - starts if self.per_run else -starts
        if np.any(self.starts[1:] < self.ends[:-1]):
            raise ValueError(
                f"start_offset_s={starts.tolist()}: each run's part of the movie must start after the "
                f"previous part ends (ends at {self.ends[:-1].tolist()} s); fix video.start_offset_s"
            )

    def place(self, onset_s, offset_s):
        """A frame's interval on the fMRI clock, or None when it is shown in no run."""
        if not self.per_run:
            return onset_s + self.shifts[0], offset_s + self.shifts[0]
        run = int(np.searchsorted(self.ends, onset_s, side="right"))
        if run == len(self.ends) or offset_s <= self.starts[run]:
            return None
        shift = self.shifts[run]
        return max(onset_s, self.starts[run]) + shift, min(offset_s, self.ends[run]) + shift


def _rgb(scaler, frame, width, height=None):
    """An av.VideoFrame as (height, width, 3) uint8 RGB, area-scaled by ``scaler``.

    With ``height`` None the aspect ratio is kept and frames are never enlarged
    (``width`` None or wider than the frame: native size). Reusing one
    ``VideoReformatter`` per output size keeps its scaling context (10x faster).
    """
    if height is None:
        width = frame.width if width is None else min(width, frame.width)
        height = max(2, int(round(width * frame.height / frame.width / 2)) * 2)
    return scaler.reformat(frame, width, height, "rgb24", interpolation="AREA").to_ndarray()


class _ImageSampler:
    """Frames for the image model: the first frame of every ``1 / hz`` bin, embedded in batches."""

    def __init__(self, encoder, hz, batch_size):
        self.encoder, self.hz, self.batch_size = encoder, hz, batch_size
        self.onsets, self.pending, self.embeddings = [], [], []

    def offer(self, onset_s, rgb):
        if self.onsets and np.floor(onset_s * self.hz) <= np.floor(self.onsets[-1] * self.hz):
            return
        self.onsets.append(onset_s)
        self.pending.append(rgb)
        if len(self.pending) == self.batch_size:
            self._embed()

    def _embed(self):
        if self.pending:
            self.embeddings.append(self.encoder(self.pending))
            self.pending = []

    def finish(self, end_s):
        """Onsets, offsets (next sample's onset; ``end_s`` for the last) and embeddings."""
        self._embed()
        onsets = np.array(self.onsets)
        return onsets, np.append(onsets[1:], end_s), np.concatenate(self.embeddings)


def _runs_at(times_s, tr_runs, tr_s):
    """Run of each time: that of the TR it falls in (first/last run before/after the scan)."""
    return tr_runs[np.clip(np.floor(times_s / tr_s).astype(np.int64), 0, len(tr_runs) - 1)]


def _check_coverage(path, covered_s, movie_end_s, start_offset_s):
    """The video must show something during every TR."""
    empty = np.flatnonzero(covered_s <= 0)
    if len(empty):
        raise ValueError(
            f"{path}: {len(empty)} of {len(covered_s)} TRs (first {empty[:5].tolist()}) show no frame; the "
            f"movie ends at {movie_end_s:.2f} s and start_offset_s is {start_offset_s}. Check "
            "video.start_offset_s, n_trs and tr_s against the stimulus file"
        )
    if covered_s.min() < 0.5 * covered_s.max():
        log.warning("%s: TR %d is only %.2f s covered by frames", path, int(covered_s.argmin()), covered_s.min())
