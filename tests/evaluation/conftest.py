"""A tiny trained pipeline on disk: features (with tiny-codec audio), prepared fMRI, group ISC, model, ridges."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile
from threadpoolctl import threadpool_limits
from transformers import EncodecConfig

from giblet.audio import CodecConfig, EncodecCodec, run_extract_audio
from giblet.audio.code_model_stage import CodeModelConfig, run_fit_code_model
from giblet.features import FeatureTable
from giblet.fmri.prepared import PreparedFmri
from giblet.fmri.stage import run_group_isc
from giblet.splits import SplitConfig, make_split
from giblet.timing import ScanTiming
from giblet.training.stage import TrainingInputs, TrainingSetup, run_train
from giblet.training.trainer import TrainConfig
from tests.audio.conftest import TINY_BANDWIDTH_KBPS, TINY_CONFIG, make_soundtrack

TR_S = 1.5
RUN_N_TRS = (41, 39)  # odd lengths: TR boundaries fall mid-frame at 75 Hz
SUBJECTS = ("sub-a", "sub-b")
ROIS = {"visual": range(0, 5), "auditory": range(5, 10), "noise": range(10, 14)}
N_VOXELS = 16
MODALITIES = ("audio", "video", "text")
TEXTS = ["a dog runs", "a car drives", "people talk", "a dog sleeps", "rain falls"]


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models and arrays run fastest on one thread on a shared CPU (session-wide: the pipeline too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1, user_api="blas"):
        yield
    torch.set_num_threads(threads)


def _lagged(x, runs, lag):
    out = np.zeros_like(x)
    for run in np.unique(runs):
        rows = np.flatnonzero(runs == run)
        out[rows[lag:]] = x[rows[: len(rows) - lag]]
    return out


def _features(out, rng, n_trs, runs):
    """Per-TR video, thumbnail, text and label tables plus annotation segments."""
    times = np.arange(n_trs) * TR_S
    video = rng.standard_normal((n_trs, 4)).astype(np.float32)
    names = ("luminance", "contrast", "red", "motion")
    FeatureTable(video, times, names, runs=runs).save(out / "video_lowlevel_tr.npz")
    thumbs = rng.uniform(0, 1, (n_trs, 8, 12, 3)).astype(np.float32)
    names = tuple(f"px_{i}" for i in range(8 * 12 * 3))
    FeatureTable(thumbs.reshape(n_trs, -1), times, names, runs=runs, meta={"image_shape": [8, 12, 3]}).save(
        out / "video_thumbnails_tr.npz")
    onsets = np.arange(0, n_trs * TR_S, 12.0)
    durations = np.diff(np.r_[onsets, n_trs * TR_S])
    segment_texts = [TEXTS[i % len(TEXTS)] for i in range(len(onsets))]
    vocabulary = {t: rng.standard_normal(6) for t in TEXTS}
    segments = np.stack([vocabulary[t] for t in segment_texts]).astype(np.float32)
    FeatureTable(segments, onsets, tuple(f"text_{i}" for i in range(6)), meta={
        "texts": segment_texts, "durations_s": durations.tolist()}).save(out / "text_segments.npz")
    segment_of_tr = np.searchsorted(onsets, times, side="right") - 1
    FeatureTable(segments[segment_of_tr], times, tuple(f"text_{i}" for i in range(6)), runs=runs).save(
        out / "text_tr.npz")
    labels = np.eye(2, dtype=np.float32)[segment_of_tr % 2]
    FeatureTable(labels, times, ("topic=a", "topic=b"), "labels", runs).save(out / "labels_tr.npz")
    return video


def _audio(out, tmp):
    """A soundtrack through a tiny adapted codec, with the audio stage's own writer."""
    codec = EncodecCodec.untrained(EncodecConfig(**TINY_CONFIG), seed=0, bandwidth_kbps=TINY_BANDWIDTH_KBPS,
                                   device="cpu", chunk_s=20.0, context_s=0.5, crossfade_s=0.2)
    n_trs = sum(RUN_N_TRS)
    sound = make_soundtrack(n_trs * TR_S + 1.0)
    codec.fit_untrained(codec.latents(sound, 24_000), seed=0)
    codec.model.save_pretrained(tmp / "tiny_codec")
    wavfile.write(tmp / "movie.wav", 24_000, sound)
    run_extract_audio(tmp / "movie.wav", out, ScanTiming(TR_S, RUN_N_TRS),
                      CodecConfig(model=str(tmp / "tiny_codec"), bandwidth_kbps=TINY_BANDWIDTH_KBPS, chunk_s=20.0,
                                  context_s=0.5), device="cpu")
    return tmp / "movie.wav"


def _prepared(folder, rng, runs, split, drives):
    grid = (4, 4, 1)
    ijk = np.stack(np.unravel_index(np.arange(N_VOXELS), grid), axis=1).astype(np.int32)
    membership = np.zeros((N_VOXELS, len(ROIS)), bool)
    for r, voxels in enumerate(ROIS.values()):
        membership[list(voxels), r] = True
    paths = []
    for subject in SUBJECTS:
        values = rng.standard_normal((len(runs), N_VOXELS))
        values[:, :5] += 2.0 * drives["visual"][:, :1]
        values[:, 5:10] += 2.0 * drives["auditory"][:, :1]
        values = ((values - values.mean(0)) / values.std(0)).astype(np.float32)
        valid = split.labels >= 0
        values[~valid] = np.nan
        prepared = PreparedFmri(subject, values, runs, TR_S, valid, split, ijk, np.eye(4), grid, tuple(ROIS),
                                membership, np.zeros((0, 3), np.int32), (), np.zeros(N_VOXELS), np.ones(N_VOXELS))
        paths.append(prepared.save(folder / f"{subject}.npz"))
    return paths


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """Paths of a tiny trained pipeline (2 subjects, 80 TRs in two runs, audio + video + text)."""
    root = tmp_path_factory.mktemp("pipeline")
    features, fmri, model = root / "features", root / "fmri", root / "model"
    for folder in (features, fmri, model):
        folder.mkdir()
    rng = np.random.default_rng(0)
    runs = np.repeat(np.arange(len(RUN_N_TRS)), RUN_N_TRS)
    n_trs = len(runs)
    split = make_split(n_trs, TR_S, SplitConfig(fractions=(0.6, 0.2, 0.2), gap_s=6.0, min_gap_s=6.0))
    video = _features(features, rng, n_trs, runs)
    movie = _audio(features, root)
    bands = FeatureTable.load(features / "audio_logmel_tr.npz").values[:, [2, 12, 22]]  # auditory cortex: the spectrum
    bands = (bands - bands.mean(0)) / bands.std(0)
    drives = {"visual": _lagged(video, runs, 2), "auditory": _lagged(bands, runs, 2)}
    prepared = _prepared(fmri, rng, runs, split, drives)
    fir = FeatureTable(np.concatenate([_lagged(video, runs, lag) for lag in (1, 2, 3)], axis=1),
                       np.arange(n_trs) * TR_S, tuple(f"f{i}" for i in range(12)), runs=runs)
    aligned = [fir.save(root / "video_fir.npz")]
    run_group_isc(prepared, fmri / "group_isc.npz")
    code_model = run_fit_code_model(features_dir=features, prepared_path=prepared[0], out_dir=model,
                                    config=CodeModelConfig(max_iter=30))
    torch.manual_seed(0)
    run_train(TrainingInputs(features, tuple(aligned), tuple(prepared), code_model), model, TrainingSetup(
        MODALITIES, TrainConfig(max_epochs=2, window_trs=12, stride_trs=6, batch_windows=4),
        {"hidden": 8, "n_layers": 1, "encoder_delays_trs": (1, 2), "decoder_delays_trs": (1, 2)}))
    return {"features_dir": features, "prepared_paths": prepared, "aligned_paths": aligned, "root": root,
            "model_path": model / "autoencoder.pt", "baselines_path": model / "baselines.joblib",
            "group_isc_path": fmri / "group_isc.npz", "code_model_path": code_model, "movie": movie, "split": split,
            "runs": runs}


@pytest.fixture(scope="session")
def movie_data(pipeline):
    from giblet.training.data import load_movie_data

    return load_movie_data(pipeline["features_dir"], pipeline["prepared_paths"][:1], MODALITIES)


@pytest.fixture(scope="session")
def model(pipeline):
    from giblet.training.stage import load_model

    return load_model(pipeline["model_path"])[0]


def read_json(path):
    return json.loads(Path(path).read_text())
