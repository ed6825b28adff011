"""Generate the embedded demo dataset: a film, its annotations and simulated subjects."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm.auto import tqdm

from giblet.demo.brain import (
    FINE_DT_S,
    ROI_DRIVERS,
    audio_band_energy,
    frame_features,
    roi_masks,
    simulate_subject,
    stimulus_drives,
)
from giblet.demo.movie import write_movie
from giblet.demo.scenes import render_frames
from giblet.demo.segments import annotation_table, draw_segments
from giblet.demo.sound import render_soundtrack
from giblet.io import atomic_path, save_nifti, write_json

__all__ = ["generate_demo", "demo_paths"]

log = logging.getLogger(__name__)
_GRID_SHAPE = (20, 24, 20)
_BRAIN_RADII = (9.0, 11.0, 9.0)


def demo_paths(out_dir, subjects, n_runs):
    """Every file the generator writes, keyed by role."""
    out = Path(out_dir)
    paths = {
        "movie": out / "stimulus" / "movie.mp4",
        "annotations": out / "stimulus" / "annotations.tsv",
        "brain_mask": out / "masks" / "brain_mask.nii.gz",
        "ground_truth": out / "ground_truth.json",
    }
    paths.update({f"roi_{name}": out / "masks" / f"roi-{name}.nii.gz" for name in ROI_DRIVERS})
    for sub in subjects:
        for run in range(1, n_runs + 1):
            paths[f"bold_{sub}_run-{run}"] = out / "fmri" / sub / f"{sub}_run-{run}_bold.nii.gz"
    return paths


def _brain_mask():
    centre = (np.array(_GRID_SHAPE) - 1) / 2
    ijk = np.indices(_GRID_SHAPE).transpose(1, 2, 3, 0)
    return (((ijk - centre) / _BRAIN_RADII) ** 2).sum(-1) <= 1


def _affine(voxel_size_mm):
    affine = np.diag([voxel_size_mm] * 3 + [1.0])
    affine[:3, 3] = -(np.array(_GRID_SHAPE) - 1) / 2 * voxel_size_mm
    return affine


def generate_demo(cfg, out_dir):
    """Write the demo dataset described by ``cfg`` (the validated config) under ``out_dir``.

    Deterministic: the same ``cfg["seed"]`` gives byte-identical files.
    """
    demo, tr_s = cfg["demo"], cfg["fmri"]["tr_s"]
    duration_s = demo["duration_s"]
    run_n_trs = cfg["fmri"]["run_n_trs"]
    if not np.isclose(sum(run_n_trs) * tr_s, duration_s):
        raise ValueError(
            f"demo.duration_s is {duration_s} s but fmri.run_n_trs x fmri.tr_s covers "
            f"{sum(run_n_trs) * tr_s} s; make them agree"
        )
    subjects = cfg["fmri"]["subjects"]
    paths = demo_paths(out_dir, subjects, len(run_n_trs))
    rng = np.random.default_rng(cfg["seed"])
    streams = {name: np.random.default_rng(s) for name, s in
               zip(("story", "sound", "picture", "brain"), rng.integers(2**32, size=4))}

    segments = draw_segments(streams["story"], duration_s)
    with atomic_path(paths["annotations"]) as tmp:
        annotation_table(segments).to_csv(tmp, sep="\t", index=False, float_format="%.2f")

    sr = demo["audio_sample_rate_hz"]
    log.info("rendering %.0f s of sound at %d Hz", duration_s, sr)
    audio = render_soundtrack(streams["sound"], segments, sr, duration_s)
    feats, previous = [], None
    fps, (width, height) = demo["video_fps"], demo["video_size"]

    def frames():
        nonlocal previous
        for frame in tqdm(render_frames(streams["picture"], segments, fps, width, height),
                          total=int(round(duration_s * fps)), desc="demo film", unit="frame"):
            feats.append(frame_features(frame, previous))
            previous = frame
            yield frame

    write_movie(paths["movie"], frames(), fps, width, height, audio, sr)
    drives = stimulus_drives(segments, audio_band_energy(audio, sr), np.array(feats), fps, duration_s)

    brain = _brain_mask()
    rois = roi_masks(brain)
    affine = _affine(demo["voxel_size_mm"])
    save_nifti(nib.Nifti1Image(brain.astype(np.uint8), affine), paths["brain_mask"])
    for name, mask in rois.items():
        save_nifti(nib.Nifti1Image(mask.astype(np.uint8), affine), paths[f"roi_{name}"])

    brain_rng = streams["brain"]
    shared = {}  # per ROI: one response pattern, each voxel a variation of it, shared by all subjects
    for name, mod in ROI_DRIVERS.items():
        if mod is not None:
            n_feat, n_roi = drives[mod].shape[1], int(rois[name].sum())
            pattern = brain_rng.standard_normal((n_feat, 1))
            shared[name] = pattern + demo["voxel_weight_sd"] * brain_rng.standard_normal((n_feat, n_roi))
    truth_subjects = {}
    for sub in tqdm(subjects, desc="demo subjects", unit="subject"):
        params = {
            "hrf_peak_s": float(brain_rng.uniform(*demo["hrf_peak_range_s"])),
            "snr": demo["snr"],
            "ar1_rho": demo["ar1_rho"],
            "noise_spatial_corr": demo["noise_spatial_corr"],
            "individual_weight_sd": demo["individual_weight_sd"],
            "drift_sd": demo["drift_sd"],
        }
        y = simulate_subject(brain_rng, drives, rois, brain, shared, params, run_n_trs, tr_s)
        baseline = brain_rng.uniform(500, 1000, brain.sum())
        bold = baseline * (1 + 0.01 * y)  # noise sd = 1 % signal change
        start = 0
        for run, n_trs in enumerate(run_n_trs, start=1):
            vol = np.zeros(_GRID_SHAPE + (n_trs,), np.float32)
            vol[brain] = bold[start : start + n_trs].T
            img = nib.Nifti1Image(vol, affine)
            img.header.set_zooms((demo["voxel_size_mm"],) * 3 + (tr_s,))
            img.header.set_xyzt_units("mm", "sec")
            save_nifti(img, paths[f"bold_{sub}_run-{run}"])
            start += n_trs
        truth_subjects[sub] = params

    write_json(paths["ground_truth"], {
        "seed": cfg["seed"],
        "duration_s": duration_s,
        "tr_s": tr_s,
        "run_n_trs": run_n_trs,
        "stimulus_start_offset_s": 0.0,
        "roi_drivers": ROI_DRIVERS,
        "roi_n_voxels": {name: int(m.sum()) for name, m in rois.items()},
        "drive_features": {
            "audio": "log energy in bands 100-400, 400-1000, 1000-2500, 2500-8000 Hz of the rendered soundtrack",
            "video": "luminance, contrast, red-blue warmth, motion energy of the rendered frames",
            "annotations": "one-hot scene and topic labels of the annotations (not the sound class: "
                           "the sound reaches the brain only through the auditory ROI)",
            "events": "per-segment narrative state and event-boundary impulses",
        },
        "hrf": "double gamma, gamma shape peak/0.9+1, scale 0.9 s, undershoot shape +10 at 1/6, "
               f"convolved at {FINE_DT_S} s and sampled at t*TR per run (runs separate)",
        "noise": "AR(1) with a part shared within each ROI, plus 3 slow cosine drifts per run; "
                 "BOLD = baseline * (1 + 0.01 * (snr * signal + noise))",
        "expected_loso_isc": demo["expected_loso_isc"],
        "subjects": truth_subjects,
        "segments": annotation_table(segments).assign(
            narrative_state=[s.narrative_state for s in segments]).to_dict(orient="records"),
    })
    return paths
