"""Code streams and their exact split into TRs.

Frame ``k`` of a stream at ``frame_rate_hz`` covers ``[k, k + 1) / frame_rate_hz``
seconds from the first fMRI frame; TR ``t`` covers ``[t, t + 1) * tr_s``. A frame
belongs to the TR that contains its centre ``(k + 1/2) / frame_rate_hz``. TR
boundaries are computed in exact rational arithmetic, so a 1.5 s TR at 75 Hz holds
112 and 113 frames in turn (112.5 on average) and nothing drifts over a long scan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from giblet.io import save_npz

__all__ = ["CodeStream", "tr_frame_spans", "tr_frame_slots", "frame_trs", "codes_by_tr", "stream_from_trs", "PAD_CODE"]

PAD_CODE = -1  # fills per-TR code slots whose mask is False

_MAX_DENOMINATOR = 1_000_000  # tr_s and frame_rate_hz are read as decimals with at most 6 digits


@dataclass(frozen=True)
class CodeStream:
    """Discrete codec codes with their clock.

    Attributes
    ----------
    codes : ndarray, shape (n_codebooks, n_frames), int16
        Code index of every residual codebook at every frame (codec axis order).
    frame_rate_hz : float
        Codec frames per second (75.0 for 24 kHz EnCodec).
    codec_id : str
        Model id or directory of the codec that made the codes.
    bandwidth_kbps : float
        Codec bandwidth, in kbit/s; sets ``n_codebooks``.
    codec_status : str
        ``"pretrained"`` or the untrained-codec stamp; copied onto every artifact.
    first_frame : int
        Index of ``codes[:, 0]`` on the stimulus frame grid (0 = first fMRI frame).
    """

    codes: np.ndarray
    frame_rate_hz: float
    codec_id: str = ""
    bandwidth_kbps: float = 0.0
    codec_status: str = "pretrained"
    first_frame: int = 0

    def __post_init__(self):
        codes = np.asarray(self.codes)
        if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(
                f"codes must be integer indices of shape (n_codebooks, n_frames), got {codes.dtype} {codes.shape}; "
                "codes are categories and are never averaged or interpolated"
            )
        if codes.size and (codes.min() < 0 or codes.max() > np.iinfo(np.int16).max):
            raise ValueError(f"codes must lie in [0, 32767], got range [{codes.min()}, {codes.max()}]")
        object.__setattr__(self, "codes", codes.astype(np.int16, copy=False))

    @property
    def n_codebooks(self) -> int:
        return self.codes.shape[0]

    @property
    def n_frames(self) -> int:
        return self.codes.shape[1]

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.frame_rate_hz

    @property
    def times_s(self) -> np.ndarray:
        """Start time of every frame, in seconds from the first fMRI frame; shape (n_frames,)."""
        return (self.first_frame + np.arange(self.n_frames)) / self.frame_rate_hz

    @property
    def meta(self) -> dict:
        """Provenance to stamp on everything derived from these codes."""
        return {
            "codec_id": self.codec_id,
            "codec_status": self.codec_status,
            "bandwidth_kbps": self.bandwidth_kbps,
            "frame_rate_hz": self.frame_rate_hz,
            "n_codebooks": self.n_codebooks,
        }

    def save(self, path, **extra_arrays):
        """Write the stream (and any ``extra_arrays``) to ``path`` (``.npz``) atomically."""
        return save_npz(
            path,
            codes=self.codes,
            first_frame=np.asarray(self.first_frame),
            meta=np.asarray(json.dumps(self.meta, sort_keys=True)),
            **extra_arrays,
        )

    @classmethod
    def load(cls, path) -> "CodeStream":
        """Read a stream written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(
                codes=z["codes"],
                frame_rate_hz=meta["frame_rate_hz"],
                codec_id=meta["codec_id"],
                bandwidth_kbps=meta["bandwidth_kbps"],
                codec_status=meta["codec_status"],
                first_frame=int(z["first_frame"]),
            )


def _frames_per_tr(tr_s, frame_rate_hz):
    """Frames per TR as an exact fraction ``p / q``."""
    ratio = Fraction(tr_s).limit_denominator(_MAX_DENOMINATOR) * Fraction(frame_rate_hz).limit_denominator(
        _MAX_DENOMINATOR
    )
    if ratio <= 0:
        raise ValueError(f"tr_s and frame_rate_hz must be positive, got tr_s={tr_s}, frame_rate_hz={frame_rate_hz}")
    return ratio.numerator, ratio.denominator


def tr_frame_spans(n_trs, tr_s, frame_rate_hz, first_tr=0):
    """First and one-past-last frame of every TR.

    Parameters
    ----------
    n_trs : int
    tr_s : float
        Repetition time, in seconds.
    frame_rate_hz : float
        Codec frame rate, in hertz.
    first_tr : int, default=0
        Index of the first TR on the scan grid.

    Returns
    -------
    ndarray, shape (n_trs, 2), int64
        ``[start, stop)`` frame indices on the stimulus grid: frame ``k`` is in TR ``t``
        iff ``t * tr_s <= (k + 1/2) / frame_rate_hz < (t + 1) * tr_s``.
    """
    p, q = _frames_per_tr(tr_s, frame_rate_hz)
    bounds = first_tr + np.arange(n_trs + 1, dtype=np.int64)
    # smallest k with k + 1/2 >= t * p / q, i.e. ceil((2tp - q) / 2q)
    starts = -((q - 2 * bounds * p) // (2 * q))
    return np.stack([starts[:-1], starts[1:]], axis=1)


def frame_trs(frames, tr_s, frame_rate_hz):
    """TR index of each frame (the TR containing the frame's centre).

    Parameters
    ----------
    frames : ndarray of int, shape (n_frames,)
        Frame indices on the stimulus grid.
    tr_s, frame_rate_hz : float
        Repetition time (s) and frame rate (Hz).

    Returns
    -------
    ndarray, shape (n_frames,), int64
    """
    p, q = _frames_per_tr(tr_s, frame_rate_hz)
    return ((2 * np.asarray(frames, dtype=np.int64) + 1) * q) // (2 * p)


def codes_by_tr(stream, tr_s, n_trs, first_tr=0):
    """Split a code stream into fixed-width per-TR blocks.

    Parameters
    ----------
    stream : CodeStream
    tr_s : float
        Repetition time, in seconds.
    n_trs : int
        Number of TRs to return.
    first_tr : int, default=0
        Scan index of the first TR returned.

    Returns
    -------
    codes : ndarray, shape (n_trs, n_codebooks, width), int16
        ``width = ceil(tr_s * frame_rate_hz)``; slots past a TR's frame count hold ``PAD_CODE``.
    mask : ndarray, shape (n_trs, width), bool
        True where a slot holds a real frame (a prefix of each row).
    """
    spans = tr_frame_spans(n_trs, tr_s, stream.frame_rate_hz, first_tr) - stream.first_frame
    if n_trs and (spans[0, 0] < 0 or spans[-1, 1] > stream.n_frames):
        raise ValueError(
            f"TRs {first_tr}..{first_tr + n_trs - 1} need frames {spans[0, 0] + stream.first_frame}.."
            f"{spans[-1, 1] + stream.first_frame - 1} but the stream holds frames {stream.first_frame}.."
            f"{stream.first_frame + stream.n_frames - 1}; lower n_trs or encode more audio"
        )
    index, mask = tr_frame_slots(spans, tr_s, stream.frame_rate_hz)
    codes = np.where(mask[:, None, :], stream.codes[:, index].transpose(1, 0, 2), PAD_CODE).astype(np.int16)
    return codes, mask


def tr_frame_slots(spans, tr_s, frame_rate_hz):
    """Frame indices of every TR laid out in fixed-width rows (the layout of :func:`codes_by_tr`).

    Parameters
    ----------
    spans : ndarray, shape (n_trs, 2), int
        ``[start, stop)`` frames of each TR (:func:`tr_frame_spans`, possibly offset).
    tr_s, frame_rate_hz : float

    Returns
    -------
    index : ndarray, shape (n_trs, width), int64
        Frame of each slot (0 in empty slots); ``width = ceil(tr_s * frame_rate_hz)``.
    mask : ndarray, shape (n_trs, width), bool
        True where a slot holds a real frame (a prefix of each row).
    """
    p, q = _frames_per_tr(tr_s, frame_rate_hz)
    offsets = np.arange(-(-p // q))
    mask = offsets < (spans[:, 1] - spans[:, 0])[:, None]
    return np.where(mask, spans[:, :1] + offsets, 0), mask


def stream_from_trs(codes, mask, *, tr_s, frame_rate_hz, first_tr=0, codec_id="", bandwidth_kbps=0.0,
                    codec_status="pretrained"):
    """Rebuild a code stream from per-TR blocks; the inverse of :func:`codes_by_tr`.

    Parameters
    ----------
    codes : ndarray, shape (n_trs, n_codebooks, width), int
    mask : ndarray, shape (n_trs, width), bool
        Must be the mask :func:`codes_by_tr` gives for these TRs.
    tr_s : float
        Repetition time, in seconds.
    frame_rate_hz : float
        Codec frame rate, in hertz.
    first_tr : int, default=0
        Scan index of ``codes[0]``.
    codec_id, bandwidth_kbps, codec_status
        Copied onto the stream (see :class:`CodeStream`).

    Returns
    -------
    CodeStream
        Frames of the given TRs, with ``first_frame`` the first TR's first frame.
    """
    codes, mask = np.asarray(codes), np.asarray(mask, dtype=bool)
    spans = tr_frame_spans(len(codes), tr_s, frame_rate_hz, first_tr)
    p, q = _frames_per_tr(tr_s, frame_rate_hz)
    expected = np.arange(-(-p // q)) < (spans[:, 1] - spans[:, 0])[:, None]
    if codes.ndim != 3 or mask.shape != expected.shape or codes.shape[::2] != mask.shape or (mask != expected).any():
        raise ValueError(
            f"codes {codes.shape} and mask {mask.shape} do not match TRs {first_tr}.. at tr_s={tr_s} s and "
            f"{frame_rate_hz} Hz (expected mask {expected.shape} from codes_by_tr); pass codes_by_tr's own mask"
        )
    flat = codes.transpose(1, 0, 2)[:, mask]
    return CodeStream(flat, frame_rate_hz, codec_id, bandwidth_kbps, codec_status, first_frame=int(spans[0, 0]))
