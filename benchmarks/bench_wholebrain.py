"""Peak memory (max RSS) and wall time of ``prepare-fmri`` and ``train`` on whole-brain-sized data.

Sherlock-sized simulated subjects: a 61 x 73 x 61 grid (MNI 3 mm) with a brain mask covering the
whole grid (271,633 voxels), 1976 TRs in two runs of 946 + 1030, TR 1.5 s. Under ``--workdir``
(default: a temporary folder) the script writes ``inputs/``: per subject two 4-D float32 BOLD runs
(uncompressed ``.nii``, ~1 GiB each: white noise barely compresses and gzip would take minutes;
``read_bold`` reads both formats a few volumes at a time), the brain mask, two ROI masks,
annotations (TSV) and a precomputed per-TR feature (``.npy``), and a config modelled on
``config/sherlock_shared.yaml`` (``modalities: [text]``, ``model.readout_rank: 16``, one epoch).
It then runs the stages with the arguments the workflow rules pass, one subprocess each:
prepare-fmri (per subject), extract-text, import-features, align, train.

Each stage is the ``giblet`` command line (``giblet.cli.main``) started by a launcher that makes
faulthandler dump the Python stack on SIGUSR1. Peak RSS is the child's high-water mark (VmHWM in
``/proc/PID/status``), polled every 0.2 s with its RSS (a child's ``ru_maxrss`` is no lower than
the parent's RSS when it forked, so it is not used). A stage above ``--max-rss-gib`` or running
past ``--timeout-s`` has its stack dumped and is killed (the stack is printed with its log's tail).

Prints one row per stage (wall s, peak RSS GiB, peak / reference, status) under the reference:
one subject's float32 data array, n_voxels x n_trs x 4 bytes, measured on the generated arrays.

Usage: python benchmarks/bench_wholebrain.py [--workdir DIR] [--subjects 2] [--keep]
       [--max-rss-gib 12] [--timeout-s 1800]
Without ``--keep`` the ``inputs/``, ``derived/`` and ``logs/`` folders are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml

GRID = (61, 73, 61)
RUN_N_TRS = [946, 1030]
TR_S = 1.5
AFFINE = np.array([[-3.0, 0, 0, 90], [0, 3.0, 0, -126], [0, 0, 3.0, -72], [0, 0, 0, 1]])
GIB = 2**30
LAUNCHER = ("import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
            "from giblet.cli import main; sys.exit(main(sys.argv[1:]))")


def _save_mask(path, mask):
    nib.Nifti1Image(mask.astype(np.uint8), AFFINE).to_filename(path)
    return str(path)


def write_inputs(inputs, subjects, seed=0):
    """Write BOLD runs, masks, annotations, a precomputed feature and the config.

    Returns the config path, the brain-mask voxel count and the bytes of the first subject's data.
    """
    inputs.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_trs, n_voxels = sum(RUN_N_TRS), int(np.prod(GRID))
    shared = np.convolve(rng.standard_normal(n_trs + 9), np.hanning(10), "valid")[:n_trs].astype(np.float32)
    weights = (0.3 * rng.standard_normal(n_voxels)).astype(np.float32)  # shared by subjects
    data_bytes = {}
    for subject in subjects:
        (inputs / subject).mkdir()
        data_bytes[subject] = 0
        for run, (start, n) in enumerate(zip(np.cumsum([0] + RUN_N_TRS), RUN_N_TRS), 1):
            # (TR, z, y, x) in C order, so that .T is the (x, y, z, TR) image in F order, written as is
            run_data = rng.standard_normal((n, n_voxels), dtype=np.float32)
            for a in range(0, n, 64):
                run_data[a : a + 64] += shared[start + a : start + min(a + 64, n), None] * weights
            data_bytes[subject] += run_data.nbytes
            img = nib.Nifti1Image(run_data.reshape((n,) + GRID[::-1]).T, AFFINE)
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = TR_S
            img.to_filename(inputs / subject / f"{subject}_run-{run}_bold.nii")
            del run_data, img
    brain = np.ones(GRID, bool)
    pmc, left = np.zeros(GRID, bool), np.zeros(GRID, bool)
    pmc[tuple(slice(n * 2 // 5, n * 3 // 5) for n in GRID)] = True  # a central block
    left[GRID[0] // 2 :] = True  # x axis flipped: high i is the left hemisphere
    t, stops = 0.0, []
    while t < n_trs * TR_S:
        t = min(t + rng.uniform(3, 20), n_trs * TR_S)
        stops.append(t)
    starts = [0.0] + stops[:-1]
    who = rng.choice(["A man", "A woman", "Two detectives", "A child"], len(stops))
    what = rng.choice(["walks into", "talks in", "looks around", "runs out of"], len(stops))
    where = rng.choice(["a flat", "a taxi", "the street", "a laboratory"], len(stops))
    annotations = pd.DataFrame({"onset": starts, "offset": stops,
                                "description": [f"{a} {b} {c}." for a, b, c in zip(who, what, where)],
                                "scene": rng.choice(["indoor", "outdoor"], len(stops))})
    annotations.to_csv(inputs / "annotations.tsv", sep="\t", index=False)
    np.save(inputs / "envelope.npy", np.abs(rng.standard_normal(n_trs)))
    config = {
        "dataset": "wholebrain_bench", "seed": seed, "device": "cpu", "modalities": ["text"],
        "data_dir": str(inputs.parent / "derived"), "reports_dir": str(inputs.parent / "derived"),
        "stimulus": {"annotations": str(inputs / "annotations.tsv"), "start_offset_s": 0.0,
                     "precomputed": [{"path": str(inputs / "envelope.npy"), "key": "array",
                                      "name": "audio_envelope"}]},
        "text": {"label_columns": ["scene"]},
        "split": {"fractions": [0.8, 0.1, 0.1], "gap_s": 32.0},
        "fmri": {"tr_s": TR_S, "run_n_trs": RUN_N_TRS, "subjects": list(subjects),
                 "bold": str(inputs / "{subject}" / "{subject}_run-{run}_bold.nii"),
                 "brain_mask": _save_mask(inputs / "brain_mask.nii.gz", brain),
                 "rois": {"pmc": _save_mask(inputs / "roi-pmc.nii.gz", pmc),
                          "left": _save_mask(inputs / "roi-left.nii.gz", left)}},
        "model": {"readout_rank": 16},
        "train": {"max_epochs": 1, "patience": 1},
    }
    path = inputs / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, int(brain.sum()), data_bytes[subjects[0]]


def _memory(pid):
    """(VmRSS, VmHWM) of a running process, in bytes; (0, 0) once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        return tuple(int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM"))
    except (FileNotFoundError, KeyError):
        return 0, 0


def run_stage(argv, log_path, max_rss, timeout_s):
    """Run ``giblet *argv`` with its output in ``log_path``; return (wall s, peak RSS bytes, status)."""
    with open(log_path, "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, *argv], stdout=log, stderr=subprocess.STDOUT)
        peak, status = 0, None
        while proc.poll() is None:
            rss, hwm = _memory(proc.pid)
            peak = max(peak, hwm)
            if status is None and (rss > max_rss or time.perf_counter() - start > timeout_s):
                status = f"killed: RSS > {max_rss / GIB:g} GiB" if rss > max_rss else f"killed: past {timeout_s:g} s"
                os.kill(proc.pid, signal.SIGUSR1)  # faulthandler: Python stack into the log
                time.sleep(0.5)
                proc.kill()
            time.sleep(0.2)
    wall = time.perf_counter() - start
    return wall, peak, status or ("ok" if proc.returncode == 0 else f"exit {proc.returncode}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="folder for inputs, outputs and logs (default: a temporary one)")
    parser.add_argument("--subjects", type=int, default=2, help="simulated subjects (each ~2 GiB of BOLD)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--max-rss-gib", type=float, default=12.0, help="kill a stage above this RSS")
    parser.add_argument("--timeout-s", type=float, default=1800.0,
                        help="kill a stage running longer (train: ~15 min on 2 cores)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="giblet_wholebrain_"))
    folders = {name: workdir / name for name in ("inputs", "derived", "logs")}
    subjects = [f"sub-{i + 1:02d}" for i in range(args.subjects)]
    try:
        started = time.perf_counter()
        config, n_voxels, data_bytes = write_inputs(folders["inputs"], subjects)
        folders["logs"].mkdir()
        subprocess.run([sys.executable, "-m", "giblet.cli", "validate-config", "--config", str(config)], check=True)
        print(f"inputs written in {time.perf_counter() - started:.0f} s under {workdir}")
        print(f"reference: one subject's float32 data, {n_voxels} voxels x {sum(RUN_N_TRS)} TRs x 4 B = "
              f"{data_bytes / GIB:.3f} GiB")
        derived, c = folders["derived"], ["--config", str(config), "--threads", "1"]  # each rule's threads
        features, aligned = derived / "features", derived / "aligned"
        fmri = [derived / "fmri" / f"{s}.npz" for s in subjects]
        stems = ["text_segments", "labels_segments", "precomputed"]
        stages = [(f"prepare_fmri {s}", ["prepare-fmri", *c, "--subject", s, "--out", str(p)])
                  for s, p in zip(subjects, fmri)]
        stages += [
            ("extract_text", ["extract-text", *c, "--out", str(features)]),
            ("import_features", ["import-features", *c, "--out", str(features / "precomputed.npz")]),
            ("align", ["align", *c, "--inputs", *[str(features / f"{t}.npz") for t in stems], "--out", str(aligned)]),
            (f"train ({len(subjects)} subj.)", ["train", *c[:2], "--threads", "2", "--features", str(features),
                                                "--aligned", *[str(aligned / f"{t}_fir.npz") for t in stems],
                                                "--fmri", *map(str, fmri), "--out", str(derived / "model")]),
        ]
        print(f"\n{'stage':<22}{'wall s':>8}{'peak RSS GiB':>14}{'peak / data':>13}  status")
        for name, argv in stages:
            log_path = folders["logs"] / f"{name.split(' (')[0].replace(' ', '_')}.log"
            wall, peak, status = run_stage(argv, log_path, args.max_rss_gib * GIB, args.timeout_s)
            print(f"{name:<22}{wall:>8.1f}{peak / GIB:>14.2f}{peak / data_bytes:>13.2f}  {status}", flush=True)
            if status != "ok":
                print(f"--- last lines of {log_path} ---\n" + "".join(log_path.read_text().splitlines(True)[-40:]))
                break
    finally:
        if not args.keep:
            for folder in folders.values():
                shutil.rmtree(folder, ignore_errors=True)
            if not args.workdir:
                workdir.rmdir()


if __name__ == "__main__":
    main()
