"""The input files a config names, and cheap checks of them before any work.

:func:`check_inputs` opens every input without reading its data (headers, stream lists,
durations) and checks it against the config, and checks that the output folders can be written,
so that a bad file stops ``giblet check-inputs`` (and the workflow, before its first job) with a
message naming the file, the problem and the fix, instead of a stage failing hours later.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import av

from giblet.config import ConfigError

__all__ = ["raw_inputs", "fmri_inputs", "mask_paths", "check_movie", "check_writable", "check_inputs"]


def fmri_inputs(cfg, subject):
    """A subject's fMRI files from the config: a matrix, one file per run, or one file for all runs."""
    fmri = cfg["fmri"]
    if "matrix" in fmri:
        return [Path(fmri["matrix"].format(subject=subject))]
    if "bold" not in fmri:
        raise ConfigError("fmri: set fmri.bold (NIfTI path pattern) or fmri.matrix (matrix path pattern)")
    if "{run}" not in fmri["bold"]:
        return [Path(fmri["bold"].format(subject=subject))]
    return [Path(fmri["bold"].format(subject=subject, run=r)) for r in range(1, len(fmri["run_n_trs"]) + 1)]


def _mask_specs(cfg):
    """The brain, matrix and ROI masks a config names: paths or ``{path, threshold, atlas}``."""
    fmri = cfg["fmri"]
    return [fmri[k] for k in ("brain_mask", "matrix_mask") if k in fmri] + list(fmri.get("rois", {}).values())


def mask_paths(cfg):
    """The brain, matrix and ROI mask files a config names."""
    return [m if isinstance(m, str) else m["path"] for m in _mask_specs(cfg)]


def raw_inputs(cfg):
    """Every input file a config names (film, annotations, fMRI, masks, precomputed features)."""
    stimulus, fmri = cfg["stimulus"], cfg["fmri"]
    paths = [stimulus[k] for k in ("movie", "annotations") if k in stimulus]
    paths += [spec["path"] for spec in stimulus.get("precomputed", [])]
    for subject in fmri["subjects"]:
        paths += [str(p) for p in fmri_inputs(cfg, subject)]
    return list(dict.fromkeys(paths + mask_paths(cfg)))


def _scan_end_s(start_offset_s, run_n_trs, tr_s):
    """Stimulus time, in s, at which the scan ends (one start offset, or one per run)."""
    if isinstance(start_offset_s, list):
        return max(offset + n * tr_s for offset, n in zip(start_offset_s, run_n_trs))
    return start_offset_s + sum(run_n_trs) * tr_s


def check_movie(path, *, modalities, start_offset_s, run_n_trs, tr_s):
    """Open the film's container: the streams the modalities need, and a duration that covers the scan.

    The duration is the container's (to one TR); the audio and video stages check it exactly.
    Raises ValueError naming the file, the problem and the fix.
    """
    try:
        with av.open(str(path)) as container:
            streams = {"audio": container.streams.audio, "video": container.streams.video}
            duration_s = container.duration / av.time_base if container.duration else None
    except av.error.FFmpegError as err:
        raise ValueError(f"{path}: cannot be read as a movie or sound file ({err}); re-copy or re-encode it") from err
    for modality in ("audio", "video"):
        if modality in modalities and not streams[modality]:
            raise ValueError(f"{path}: has no {modality} stream; give the film with its {modality} track, "
                             f"or drop '{modality}' from modalities")
    end_s = _scan_end_s(start_offset_s, run_n_trs, tr_s)
    if duration_s is not None and duration_s + tr_s < end_s:
        raise ValueError(f"{path}: lasts {duration_s:.1f} s but the scan needs the stimulus until {end_s:.1f} s "
                         f"(stimulus.start_offset_s + {sum(run_n_trs)} TRs x {tr_s} s); check "
                         "stimulus.start_offset_s and fmri.run_n_trs, or give the full film")


def check_writable(folder):
    """Raise OSError unless ``folder`` exists and takes a new file, or can be created (nothing is left behind)."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise OSError(f"{folder}: outputs cannot be written there ({err.strerror or err}); choose another folder "
                      "(data_dir, reports_dir or --out) or make it writable") from err


def check_inputs(cfg):
    """Every problem with the config's inputs and output folders, each as one message (empty: all good)."""
    from giblet.fmri import check_fmri_inputs, check_mask_input

    fmri, stimulus = cfg["fmri"], cfg["stimulus"]
    missing = [p for p in raw_inputs(cfg) if not Path(p).exists()]
    if missing:
        listing = "\n  ".join(missing)
        return [f"{len(missing)} input files are missing:\n  {listing}\nput them there (see the comments in the "
                "config file) or change the paths in the config"]
    checks = []
    if "movie" in stimulus and {"audio", "video"} & set(cfg["modalities"]):
        checks.append(lambda: check_movie(stimulus["movie"], modalities=cfg["modalities"],
                                          start_offset_s=stimulus["start_offset_s"], run_n_trs=fmri["run_n_trs"],
                                          tr_s=fmri["tr_s"]))
    for subject in fmri["subjects"]:
        checks.append(lambda s=subject: check_fmri_inputs(
            fmri_inputs(cfg, s), tr_s=fmri["tr_s"], run_n_trs=fmri["run_n_trs"], header_tr=fmri["header_tr"],
            matrix_key=fmri.get("matrix_key")))
    checks += [lambda m=m: check_mask_input(m) for m in _mask_specs(cfg)]
    checks += [lambda d=d: check_writable(Path(cfg[d]) / cfg["dataset"]) for d in ("data_dir", "reports_dir")]
    problems = []
    for check in checks:
        try:
            check()
        except (ValueError, OSError) as err:
            problems.append(str(err))
    return problems
