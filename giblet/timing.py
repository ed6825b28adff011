"""The scan clock that every extraction stage places its features on."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ScanTiming"]


@dataclass(frozen=True)
class ScanTiming:
    """When the scan's TRs are, and where the stimulus starts on their clock.

    TR ``t`` covers ``[t * tr_s, (t + 1) * tr_s)`` seconds from the first fMRI frame; runs
    are concatenated on that clock, in scan order.

    Attributes
    ----------
    tr_s : float
        Repetition time, in seconds (``fmri.tr_s``).
    run_n_trs : tuple of int
        TRs of each run, in scan order (``fmri.run_n_trs``; Sherlock: ``(946, 1030)``).
    start_offset_s : float or tuple of float, default=0.0
        Stimulus time of the first fMRI frame, in seconds (``stimulus.start_offset_s``); a
        tuple gives one per run (video only, see :func:`giblet.video.run_extract_video`).
    """

    tr_s: float
    run_n_trs: tuple
    start_offset_s: float | tuple = 0.0

    def __post_init__(self):
        object.__setattr__(self, "run_n_trs", tuple(int(n) for n in self.run_n_trs))
        if isinstance(self.start_offset_s, list):
            object.__setattr__(self, "start_offset_s", tuple(self.start_offset_s))

    @property
    def n_trs(self):
        """TRs in the scan, all runs together."""
        return sum(self.run_n_trs)

    @classmethod
    def from_config(cls, cfg):
        """The timing of a validated config (``fmri.tr_s``, ``fmri.run_n_trs``, ``stimulus.start_offset_s``)."""
        return cls(tr_s=cfg["fmri"]["tr_s"], run_n_trs=cfg["fmri"]["run_n_trs"],
                   start_offset_s=cfg["stimulus"]["start_offset_s"])
