"""Benchmark the chunked EnCodec wrapper against one direct EncodecModel call (CPU by default).

For each audio length, four fresh processes each time one operation (wall and process CPU
time; CPU time is the steadier figure on a shared machine) and report its peak
resident memory (VmHWM, reset just before the operation) and the RSS before it:
``wrapper-encode`` (EncodecCodec.encode), ``direct-encode`` (one EncodecModel.encode call),
``wrapper-decode`` (EncodecCodec.decode) and ``direct-decode`` (one EncodecModel.decode call).
The codec is the full-size default architecture (EncodecConfig()) in its untrained fallback,
adapted to the benchmark audio (pretrained weights cannot be downloaded here); speed and
memory do not depend on the weights. Audio is the real clips in ../shared/data/clips,
tiled to length.

``--joins`` instead measures how far chunked encoding differs from a single pass as a
function of the left context (the figure quoted in giblet/audio/codec.py).

    python benchmarks/bench_codec.py --out bench_codec.json   # 60 s and 180 s, ~5 min on 2 idle cores
    python benchmarks/bench_codec.py --durations 600          # ~12 min
    python benchmarks/bench_codec.py --joins                  # ~4 min
    python benchmarks/bench_codec.py --durations 60 --chunk-s 5 --context-s 1   # the demo's chunking
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from giblet.audio import UNTRAINED_STATUS, CodeStream, EncodecCodec, load_audio
from giblet.io import write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIPS = REPO_ROOT.parent / "shared" / "data" / "clips"
SAMPLE_RATE_HZ = 24_000
OPERATIONS = ("wrapper-encode", "direct-encode", "wrapper-decode", "direct-decode")


def bench_audio(duration_s):
    """Real clips at 24 kHz, concatenated and tiled to ``duration_s``: (n_samples,) float32."""
    if not CLIPS.exists():
        sys.exit(f"{CLIPS}: not found; the benchmark needs the shared clips beside the repository")
    sound = np.concatenate([load_audio(path, SAMPLE_RATE_HZ) for path in sorted(CLIPS.glob("*.*"))])
    return np.resize(sound, round(duration_s * SAMPLE_RATE_HZ))


def _status_mib(field):
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}; the benchmark needs Linux")


def _reset_peak_rss():
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def _codec(model_dir, **kwargs):
    from transformers import EncodecModel

    return EncodecCodec(EncodecModel.from_pretrained(model_dir), model_id="bench-untrained", status=UNTRAINED_STATUS,
                        device="cpu", **kwargs)


def run_operation(operation, duration_s, model_dir, codes_path, chunking):
    """Time one operation in this process (the wrapper with ``chunking``: chunk_s, context_s); print a JSON line."""
    codec = _codec(model_dir, **chunking)
    model = codec.model
    if operation.endswith("encode"):
        waveform = bench_audio(duration_s)
    else:
        stream = CodeStream.load(codes_path)
    baseline_mib = _status_mib("VmRSS")
    _reset_peak_rss()
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        if operation == "wrapper-encode":
            codec.encode(waveform, SAMPLE_RATE_HZ).save(codes_path)
        elif operation == "direct-encode":
            model.encode(torch.from_numpy(waveform)[None, None], bandwidth=codec.bandwidth_kbps)
        elif operation == "wrapper-decode":
            codec.decode(stream)
        else:
            model.decode(torch.from_numpy(stream.codes.astype(np.int64))[None, None], [None])
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
    print(json.dumps({"operation": operation, "audio_s": duration_s, "wall_s": seconds, "cpu_s": cpu_s,
                      "audio_s_per_s": duration_s / seconds, "peak_rss_mib": _status_mib("VmHWM"),
                      "baseline_rss_mib": baseline_mib}))


def prepare_codec(model_dir):
    """Adapt the untrained full-size codec to 60 s of the benchmark audio and save it."""
    codec = EncodecCodec.untrained(seed=0, device="cpu")
    codec.fit_untrained(codec.latents(bench_audio(60.0), SAMPLE_RATE_HZ), max_frames=4_500, seed=0)
    codec.model.save_pretrained(model_dir)
    return codec


def measure_joins(model_dir, duration_s=60.0, chunk_s=20.0, contexts_s=(0.0, 0.25, 0.5, 1.0, 2.0, 3.0)):
    """Chunked vs single-pass latents and codes, as a function of left context."""
    waveform = bench_audio(duration_s)
    single = _codec(model_dir, chunk_s=duration_s + 1)
    latents = single.latents(waveform, SAMPLE_RATE_HZ)
    codes = single.quantize(latents).codes
    # the quantizer's own sensitivity: single-pass latents nudged by float32 rounding-sized noise
    noise = np.random.default_rng(0).standard_normal(latents.shape).astype(np.float32) * 1e-6 * np.abs(latents).max()
    floor = (single.quantize(latents + noise).codes != codes).mean()
    print(f"{duration_s:.0f} s audio, {chunk_s:.0f} s chunks; quantizer flip rate under 1e-6 relative noise: "
          f"{floor:.4%}")
    rows = []
    for context_s in contexts_s:
        chunked = _codec(model_dir, chunk_s=chunk_s, context_s=context_s, crossfade_s=0.0)
        chunked_latents = chunked.latents(waveform, SAMPLE_RATE_HZ)
        mismatch = chunked.quantize(chunked_latents).codes != codes
        rows.append({"context_s": context_s,
                     "latent_max_rel_diff": float(np.abs(chunked_latents - latents).max() / np.abs(latents).max()),
                     "code_mismatch": float(mismatch.mean()),
                     "code_mismatch_codebook0": float(mismatch[0].mean())})
        print(json.dumps(rows[-1]))
    return {"quantizer_flip_floor": float(floor), "rows": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=[60.0, 180.0],
                        help="audio lengths, in s (600 s takes ~12 min on 2 idle CPU cores)")
    parser.add_argument("--operations", nargs="+", default=list(OPERATIONS), choices=OPERATIONS)
    parser.add_argument("--joins", action="store_true", help="measure chunk-join accuracy instead")
    parser.add_argument("--chunk-s", type=float, default=60.0, help="the wrapper's chunk length, in s (codec.chunk_s)")
    parser.add_argument("--context-s", type=float, default=3.0, help="its left context, in s (codec.context_s)")
    parser.add_argument("--out", type=Path, help="write results as JSON here")
    parser.add_argument("--child", nargs=4, metavar=("OPERATION", "DURATION_S", "MODEL_DIR", "CODES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        operation, duration_s, model_dir, codes_path = args.child
        return run_operation(operation, float(duration_s), model_dir, codes_path,
                             {"chunk_s": args.chunk_s, "context_s": args.context_s})

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "codec"
        prepare_codec(model_dir)
        if args.joins:
            results = measure_joins(model_dir)
        else:
            results = []
            for duration_s in args.durations:
                codes_path = Path(tmp) / f"codes_{duration_s:g}.npz"
                for operation in args.operations:
                    command = [sys.executable, __file__, "--child", operation, str(duration_s), str(model_dir),
                               str(codes_path), "--chunk-s", str(args.chunk_s), "--context-s", str(args.context_s)]
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode:
                        print(f"{operation} {duration_s:g} s failed: {done.stderr.strip().splitlines()[-1]}")
                        continue
                    results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                    row = results[-1]
                    print(f"{operation:15s} {duration_s:6.0f} s audio: {row['wall_s']:7.1f} s wall, "
                          f"{row['cpu_s']:7.1f} s CPU, "
                          f"{row['audio_s_per_s']:5.2f} audio s/s, peak RSS {row['peak_rss_mib']:6.0f} MiB "
                          f"(+{row['peak_rss_mib'] - row['baseline_rss_mib']:.0f})", flush=True)
            by_key = {(r["operation"], r["audio_s"]): r for r in results}
            for duration_s in args.durations:
                for verb in ("encode", "decode"):
                    wrapper = by_key.get((f"wrapper-{verb}", duration_s))
                    direct = by_key.get((f"direct-{verb}", duration_s))
                    if wrapper and direct:
                        print(f"{verb} {duration_s:g} s: wrapper/direct wall time "
                              f"{wrapper['wall_s'] / direct['wall_s']:.2f}, CPU time "
                              f"{wrapper['cpu_s'] / direct['cpu_s']:.2f}, "
                              f"peak RSS {wrapper['peak_rss_mib']:.0f} vs {direct['peak_rss_mib']:.0f} MiB")
    if args.out:
        write_json(args.out, {"device": "cpu", "torch_threads": torch.get_num_threads(), "chunk_s": args.chunk_s,
                              "context_s": args.context_s, "results": results})


if __name__ == "__main__":
    main()
