"""Alignment of stimulus features (seconds) to the fMRI frame grid (TRs).

Stimulus samples are sample-and-hold intervals on one continuous clock; fMRI frames are
acquisition times on that clock (``scan_frame_times`` undoes a dataset's pre-shift, so the
haemodynamic lag is applied once). ``convolve_hrf`` is exact and causal, ``resample_to_trs``
counts every second of stimulus once, ``delay`` builds FIR designs, and ``run_align`` is the
``giblet align`` stage.
"""

from giblet.alignment.delay import delay
from giblet.alignment.hrf import HRF_MODELS, Hrf, convolve_hrf
from giblet.alignment.resample import resample_to_trs
from giblet.alignment.stage import run_align, scan_frame_times

__all__ = ["run_align", "convolve_hrf", "resample_to_trs", "delay", "scan_frame_times", "Hrf", "HRF_MODELS"]
