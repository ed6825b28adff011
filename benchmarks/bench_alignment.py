"""Benchmark ``giblet.alignment.convolve_hrf`` against nilearn's ``compute_regressor``.

Scan: Sherlock's 1976 TRs (946 + 1030, TR 1.5 s), two runs convolved separately.

- (a) 1,024 features at 75 Hz (per-frame codebook embeddings: 222,300 samples);
- (b) 100,000 features at 2 Hz (5,928 samples);
- scaling of (b) from 1,000 to 100,000 features.

nilearn is called once per feature and run (its API convolves one event regressor at a time),
on a subset of features (the full loop would take minutes to hours), and compared per feature.
Its default grid (TR / 50) makes its regressor lag the exact one by ~half a grid step, so the
"same output" check uses two nilearn oversamplings combined by Richardson extrapolation.
Peak memory is the largest numpy allocation above the inputs during a call (tracemalloc,
traced in a separate, untimed call).

Usage: ``python benchmarks/bench_alignment.py [--json results.json] [--small]``
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from nilearn.glm.first_level import compute_regressor

from giblet.alignment import Hrf, convolve_hrf, resample_to_trs, scan_frame_times
from giblet.io import write_json

RUN_N_TRS = [946, 1030]
TR_S = 1.5


def _timed(function, *args):
    """Wall time (s) and result of one call."""
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def _peak_mb(function, *args):
    """Largest numpy/Python allocation above what existed before, during one call (MB).

    Traced separately from the timing: tracemalloc slows Python-level loops (nilearn's).
    """
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    function(*args)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak / 2**20


def _scan(rate_hz):
    frame_times, frame_runs = scan_frame_times(RUN_N_TRS, TR_S)
    sample_times = np.arange(int(round(sum(RUN_N_TRS) * TR_S * rate_hz))) / rate_hz
    sample_runs = (sample_times >= RUN_N_TRS[0] * TR_S).astype(int)
    return sample_times, frame_times, (sample_runs, frame_runs)


def _nilearn(values, sample_times, frame_times, runs, rate_hz, oversampling):
    """compute_regressor per run for one feature: each sample is an event of one sample period."""
    out = np.empty(frame_times.size)
    for run in np.unique(runs[1]):
        s, f = runs[0] == run, runs[1] == run
        # events just before the grid points nilearn rounds them to; frame times start at 0 per run
        start = frame_times[f][0]
        condition = np.vstack([sample_times[s] - start - 1e-7, np.full(s.sum(), 1 / rate_hz), values[s]])
        out[f] = compute_regressor(condition, "glover", frame_times[f] - start, oversampling=oversampling)[0][:, 0]
    return out


def _case(name, rate_hz, n_features, n_reference, exact_oversampling, rng, report):
    sample_times, frame_times, runs = _scan(rate_hz)
    features = rng.standard_normal((sample_times.size, n_features), dtype=np.float32)
    ours_s, ours = _timed(convolve_hrf, features, sample_times, frame_times, Hrf("glover"), runs)
    ours_mb = _peak_mb(convolve_hrf, features, sample_times, frame_times, Hrf("glover"), runs)
    ref_s, _ = _timed(
        lambda: [_nilearn(features[:, j], sample_times, frame_times, runs, rate_hz, 50) for j in range(n_reference)]
    )
    ref_mb = _peak_mb(_nilearn, features[:, 0], sample_times, frame_times, runs, rate_hz, 50)
    default = _nilearn(features[:, 0], sample_times, frame_times, runs, rate_hz, 50)
    exact = 2 * _nilearn(features[:, 0], sample_times, frame_times, runs, rate_hz, 2 * exact_oversampling) - _nilearn(
        features[:, 0], sample_times, frame_times, runs, rate_hz, exact_oversampling
    )
    resample_s, _ = _timed(resample_to_trs, features, sample_times, frame_times, TR_S, "mean", runs)
    scale = np.abs(exact).max()
    row = {
        "case": name,
        "n_samples": int(sample_times.size),
        "n_features": n_features,
        "input_mb": features.nbytes / 2**20,
        "output_mb": ours.nbytes / 2**20,
        "convolve_hrf_s": ours_s,
        "convolve_hrf_peak_extra_mb": ours_mb,
        "nilearn_features_timed": n_reference,
        "nilearn_s_per_feature": ref_s / n_reference,
        "nilearn_peak_mb": ref_mb,
        "speedup_per_feature": (ref_s / n_reference) / (ours_s / n_features),
        "max_abs_diff_vs_nilearn_exact": float(np.abs(ours[:, 0] - exact).max()),
        "max_abs_diff_vs_nilearn_default": float(np.abs(ours[:, 0] - default).max()),
        "response_max_abs": float(scale),
        "resample_to_trs_s": resample_s,
    }
    report["cases"].append(row)
    print(
        f"{name}: {n_features} features x {sample_times.size} samples ({row['input_mb']:.0f} MB in, "
        f"{row['output_mb']:.1f} MB out)\n"
        f"  convolve_hrf {ours_s:.2f} s ({1e3 * ours_s / n_features:.3f} ms/feature), peak extra {ours_mb:.1f} MB\n"
        f"  nilearn      {1e3 * ref_s / n_reference:.1f} ms/feature (timed on {n_reference}), peak {ref_mb:.0f} MB\n"
        f"  speed-up per feature {row['speedup_per_feature']:.0f}x; |diff| vs nilearn exact "
        f"{row['max_abs_diff_vs_nilearn_exact']:.1e}, vs nilearn default grid "
        f"{row['max_abs_diff_vs_nilearn_default']:.1e} (response max {scale:.2f})\n"
        f"  resample_to_trs {resample_s:.2f} s"
    )


def _scaling(feature_counts, rng, report):
    sample_times, frame_times, runs = _scan(2.0)
    print("scaling at 2 Hz (5,928 samples):")
    for n_features in feature_counts:
        features = rng.standard_normal((sample_times.size, n_features), dtype=np.float32)
        seconds, out = _timed(convolve_hrf, features, sample_times, frame_times, Hrf("glover"), runs)
        peak_mb = _peak_mb(convolve_hrf, features, sample_times, frame_times, Hrf("glover"), runs)
        report["scaling_2hz"].append(
            {"n_features": n_features, "seconds": seconds, "peak_extra_mb": peak_mb,
             "input_mb": features.nbytes / 2**20, "output_mb": out.nbytes / 2**20}
        )
        print(f"  {n_features:>7} features: {seconds:6.2f} s, {1e6 * seconds / n_features:6.1f} us/feature, "
              f"peak extra {peak_mb:7.1f} MB (input {features.nbytes / 2**20:.0f} MB, "
              f"output {out.nbytes / 2**20:.0f} MB)")
        del features, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    parser.add_argument("--small", action="store_true", help="a quick run with 10x fewer features")
    args = parser.parse_args()
    scale = 10 if args.small else 1
    rng = np.random.default_rng(0)
    report = {"cases": [], "scaling_2hz": []}
    _case("(a) 75 Hz codebook embeddings", 75.0, 1024 // scale, 4, 225, rng, report)
    _case("(b) 2 Hz", 2.0, 100_000 // scale, 16, 60, rng, report)
    _scaling([n // scale for n in (1_000, 3_000, 10_000, 30_000, 100_000)], rng, report)
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
