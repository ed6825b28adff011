"""Train the demo-sized autoencoder on CUDA: epoch time and peak GPU memory, against the CPU.

Builds a simulated movie with the demo's shapes (4 subjects x 450 voxels, 480 TRs in two runs of
240, 8 EnCodec codebooks of 1024 codes at 112.5 frames per TR, 10 video features, 64 x 36
thumbnails, 384-d text embeddings), trains the demo's model (``config/demo.yaml`` sizes and train
settings) for ``--epochs`` epochs on ``cuda`` through :func:`giblet.training.trainer.train` (the
checkpointing, validation and early-stopping loop the ``train`` stage runs), then runs the
evaluation's forward passes on the test block with and without a lesion. The reference is the same
training for one epoch on the CPU, measured in the same run.

Prints: seconds per epoch on each device, the speed-up (CPU / CUDA), peak CUDA memory, and
whether the validation loss fell. ``--voxels 70000 --subjects 17`` sizes one step like
whole-brain Sherlock. Needs a CUDA device; a few minutes on one GPU.

Usage: python benchmarks/bench_gpu.py [--epochs 10] [--subjects 4] [--voxels 450]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from giblet.audio.code_model import CodeModel
from giblet.evaluation.decoding import decoder_outputs
from giblet.models import lesion
from giblet.splits import SplitConfig, make_split
from giblet.training.data import MovieData
from giblet.training.routes import fit_routes
from giblet.training.trainer import TrainConfig, build_model, train

DEMO_TRAIN = {"batch_windows": 2, "patience": 1000, "threads": 2}
DEMO_MODEL = {"hidden": 64, "encoder_delays_trs": (1, 2, 3, 4), "decoder_delays_trs": (1, 2, 3, 4)}


def simulated_movie(n_subjects, n_voxels, run_n_trs=(240, 240), seed=0):
    """MovieData with the demo's shapes; each subject's voxels follow the video features 3 TRs later."""
    rng = np.random.default_rng(seed)
    runs = np.repeat(np.arange(len(run_n_trs)), run_n_trs)
    n = len(runs)
    labels = make_split(n, 1.5, SplitConfig(fractions=(0.7, 0.15, 0.15))).labels
    frames = 113  # 112.5 frames per TR: 112 or 113 slots are filled
    mask = np.ones((n, frames), bool)
    mask[::2, -1] = False
    video = rng.standard_normal((n, 10)).astype(np.float32)
    descriptor = rng.standard_normal((n, 32))
    stimulus = {"audio_codes": rng.integers(0, 1024, (n, 8, frames)) * mask[:, None], "audio_mask": mask,
                "audio_descriptor": descriptor.astype(np.float32),
                "video": video, "thumbs": rng.uniform(0, 1, (n, 3, 36, 64)).astype(np.float32),
                "text": rng.standard_normal((n, 384)).astype(np.float32)}
    bold, valid = {}, {}
    for s in range(n_subjects):
        drive = np.zeros((n, n_voxels), np.float32)
        drive[3:] = video[:-3] @ rng.standard_normal((10, n_voxels)).astype(np.float32) / 3
        bold[f"sub-{s + 1:02d}"] = drive + rng.standard_normal((n, n_voxels), dtype=np.float32)
        valid[f"sub-{s + 1:02d}"] = labels >= 0
    codebooks = rng.standard_normal((8, 1024, 128)).astype(np.float32)
    descriptors = {"audio": descriptor}
    return MovieData(1.5, runs, labels, stimulus, bold, valid, {}, codebooks, {}, ("audio", "video", "text"),
                     descriptors)


def random_code_model(seed=0):
    """A code model of the demo's sizes (8 codebooks x 1024 codes, 32 log-mel bands) with random weights."""
    rng = np.random.default_rng(seed)
    return CodeModel(weight=0.1 * rng.standard_normal((8, 1024, 32)), bias=np.zeros((8, 1024)), mean=np.zeros(32),
                     scale=np.ones(32), unigram=np.full((8, 1024), 1 / 1024), l2=np.ones(8))


def timed_training(movie, device, epochs, workdir):
    torch.manual_seed(0)
    model = build_model(movie, DEMO_MODEL, movie.modalities, random_code_model())
    fit_routes(model, movie)
    cfg = TrainConfig(**DEMO_TRAIN, max_epochs=epochs)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    history = train(model, movie, cfg, workdir, seed=0, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return model, history, (time.perf_counter() - started) / len(history)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs on CUDA (the CPU reference runs one)")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--voxels", type=int, default=450, help="voxels per subject")
    parser.add_argument("--device", default="cuda", help="the device measured (cpu: a smoke test of this script)")
    args = parser.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device here; run it on a machine with a GPU")
    on_cuda = device == "cuda"
    movie = simulated_movie(args.subjects, args.voxels)
    with tempfile.TemporaryDirectory() as cpu_dir, tempfile.TemporaryDirectory() as gpu_dir:
        _, _, cpu_epoch_s = timed_training(movie, "cpu", 1, cpu_dir)
        model, history, gpu_epoch_s = timed_training(movie, device, args.epochs, gpu_dir)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if on_cuda else float("nan")
    test_rows = np.flatnonzero(movie.labels == 2)
    subject = next(iter(movie.bold))
    roi = torch.zeros(args.voxels, dtype=torch.bool, device=device)
    roi[: args.voxels // 4] = True
    intact = decoder_outputs(model, movie, subject, test_rows, device=device, source="predicted_bold")
    silenced = decoder_outputs(model, movie, subject, test_rows, device=device, source="predicted_bold",
                               lesion=lambda voxels: lesion(voxels, roi, "zero"))
    changed = float((intact["text"] - silenced["text"]).abs().mean())
    val = [h["val_loss"] for h in history]
    print(f"demo-sized model: {args.subjects} subjects x {args.voxels} voxels, {movie.n_trs} TRs, "
          f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters")
    print(f"reference (CPU, {torch.get_num_threads()} threads): {cpu_epoch_s:8.2f} s / epoch")
    name = torch.cuda.get_device_name() if on_cuda else device
    print(f"{device} ({name}): {gpu_epoch_s:8.2f} s / epoch over {len(history)} epochs")
    print(f"speed-up CPU / {device}: {cpu_epoch_s / gpu_epoch_s:.1f}x; peak CUDA memory {peak_gib:.2f} GiB")
    print(f"validation loss {val[0]:.3f} -> {min(val):.3f}; evaluation forward passes on {device}, lesioned text "
          f"output changed by {changed:.4f} (mean |diff|)")


if __name__ == "__main__":
    main()
