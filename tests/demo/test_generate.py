"""The embedded demo dataset: deterministic, decodable, on the declared grid and TR, with known ISC."""

import copy
import dataclasses
import json

import av
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn import signal
from scipy import stats

from giblet.config import load_config
from giblet.demo.brain import audio_band_energy, stimulus_drives
from giblet.demo.generate import generate_demo
from giblet.demo.segments import draw_segments
from giblet.fmri import loso_isc
from tests.conftest import REPO_ROOT

DEMO_CONFIG = REPO_ROOT / "config" / "demo.yaml"


def _short_config(seed=0):
    cfg = copy.deepcopy(load_config(DEMO_CONFIG))
    cfg["seed"] = seed
    cfg["demo"]["duration_s"] = 60.0
    cfg["fmri"]["run_n_trs"] = [20, 20]
    cfg["fmri"]["subjects"] = ["sub-01", "sub-02"]
    return cfg


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The full-size demo, generated once for this module."""
    out = tmp_path_factory.mktemp("demo")
    cfg = load_config(DEMO_CONFIG)
    return cfg, generate_demo(cfg, out)


def _file_bytes(paths):
    return {key: path.read_bytes() for key, path in paths.items()}


def test_generate_demo_same_seed_gives_identical_bytes(tmp_path):
    first = _file_bytes(generate_demo(_short_config(seed=3), tmp_path / "a"))
    second = _file_bytes(generate_demo(_short_config(seed=3), tmp_path / "b"))
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_generate_demo_other_seed_gives_other_data(tmp_path):
    first = generate_demo(_short_config(seed=3), tmp_path / "a")
    other = generate_demo(_short_config(seed=4), tmp_path / "b")
    for key in ("movie", "annotations", "bold_sub-01_run-1"):
        assert first[key].read_bytes() != other[key].read_bytes(), key


def test_generate_demo_rejects_duration_that_disagrees_with_trs(tmp_path):
    cfg = _short_config()
    cfg["fmri"]["run_n_trs"] = [20, 21]
    with pytest.raises(ValueError, match="demo.duration_s is 60.0 s but fmri.run_n_trs"):
        generate_demo(cfg, tmp_path)


def test_demo_movie_has_video_and_audio_of_the_film_length(demo):
    cfg, paths = demo
    duration_s = cfg["demo"]["duration_s"]
    with av.open(str(paths["movie"])) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.average_rate >= 12
        assert (video.codec_context.width, video.codec_context.height) == tuple(cfg["demo"]["video_size"])
        assert audio.sample_rate == cfg["demo"]["audio_sample_rate_hz"] != 24000
        n_frames = sum(1 for _ in container.decode(video=0))
    assert n_frames == duration_s * cfg["demo"]["video_fps"]
    with av.open(str(paths["movie"])) as container:
        n_samples = sum(f.samples for f in container.decode(audio=0))
    # AAC adds encoder priming/padding of at most two 1024-sample frames
    assert abs(n_samples / audio.sample_rate - duration_s) < 2 * 1024 / audio.sample_rate
    assert paths["movie"].stat().st_size < 20e6


def test_demo_annotations_tile_the_film(demo):
    cfg, paths = demo
    table = pd.read_csv(paths["annotations"], sep="\t")
    assert list(table.columns) == ["onset", "offset", "description", "scene", "sound", "topic"]
    assert table["onset"].iloc[0] == 0 and table["offset"].iloc[-1] == cfg["demo"]["duration_s"]
    np.testing.assert_allclose(table["onset"].iloc[1:], table["offset"].iloc[:-1])
    lengths = table["offset"] - table["onset"]
    assert lengths.min() >= 3 and lengths.max() <= 20 + 3
    assert set(table["sound"]) == {"speech", "music", "noise", "silence"}


def test_demo_sound_is_independent_of_the_scene():
    """Only the auditory drive carries the sound: the scene must not predict it."""
    segments = draw_segments(np.random.default_rng(0), 40_000.0)
    table = pd.crosstab([s.scene for s in segments], [s.sound for s in segments])
    assert table.shape == (4, 4)
    assert stats.chi2_contingency(table).pvalue > 0.01, table


def test_demo_semantic_drive_ignores_the_sound_class():
    """The semantic ROI follows scene and topic only, so that silencing the auditory ROI has a known cost."""
    segments = draw_segments(np.random.default_rng(0), 60.0)
    resounded = [dataclasses.replace(s, sound="silence" if s.sound != "silence" else "music") for s in segments]
    band_energy, frames = np.zeros((600, 4)), np.zeros((900, 4))
    drives = [stimulus_drives(segs, band_energy, frames, 15, 60.0) for segs in (segments, resounded)]
    np.testing.assert_array_equal(drives[0]["annotations"], drives[1]["annotations"])
    assert drives[0]["annotations"].shape[1] == 4 + 3  # scenes + topics


def test_demo_bold_has_declared_shape_affine_and_tr(demo):
    cfg, paths = demo
    mask = nib.load(paths["brain_mask"])
    for sub in cfg["fmri"]["subjects"]:
        for run, n_trs in enumerate(cfg["fmri"]["run_n_trs"], start=1):
            img = nib.load(paths[f"bold_{sub}_run-{run}"])
            assert img.shape == mask.shape + (n_trs,)
            np.testing.assert_array_equal(img.affine, mask.affine)
            assert img.header["pixdim"][4] == pytest.approx(cfg["fmri"]["tr_s"])
            assert img.header.get_xyzt_units() == ("mm", "sec")
    for name in ("auditory", "visual", "semantic", "pmc", "noise"):
        roi = nib.load(paths[f"roi_{name}"])
        assert roi.shape == mask.shape
        assert 30 <= roi.get_fdata().sum() <= 200, name


def test_demo_roi_isc_falls_in_declared_ranges(demo):
    cfg, paths = demo
    truth = json.loads(paths["ground_truth"].read_text())
    brain = nib.load(paths["brain_mask"]).get_fdata() > 0
    runs = np.repeat(np.arange(len(truth["run_n_trs"])), truth["run_n_trs"])
    roi_means = {name: [] for name in truth["roi_drivers"]}
    for sub in truth["subjects"]:
        bold = np.concatenate([nib.load(paths[f"bold_{sub}_run-{r + 1}"]).get_fdata()[brain].T
                               for r in range(len(truth["run_n_trs"]))])
        bold = signal.clean(bold, runs=runs, detrend=True, standardize="zscore_sample",
                            high_pass=0.01, t_r=truth["tr_s"])
        for name in roi_means:
            roi = nib.load(paths[f"roi_{name}"]).get_fdata()[brain] > 0
            roi_means[name].append(bold[:, roi].mean(axis=1))
    for name, (low, high) in truth["expected_loso_isc"].items():
        isc = loso_isc(np.stack(roi_means[name]))
        assert np.all((isc >= low) & (isc <= high)), (name, isc)


def test_demo_ground_truth_records_what_recovery_needs(demo):
    cfg, paths = demo
    truth = json.loads(paths["ground_truth"].read_text())
    assert truth["seed"] == cfg["seed"]
    assert truth["roi_drivers"] == {"auditory": "audio", "visual": "video", "semantic": "annotations",
                                    "pmc": "events", "noise": None}
    peaks = [s["hrf_peak_s"] for s in truth["subjects"].values()]
    assert len(set(peaks)) == len(peaks) and all(4.5 <= p <= 6.0 for p in peaks)
    assert all(s["snr"] == cfg["demo"]["snr"] for s in truth["subjects"].values())


def test_generate_demo_short_film_with_absent_labels_has_no_nan_voxels(tmp_path):
    """Regression: a label absent from a short film z-scored to NaN and blanked its ROI."""
    cfg = _short_config(seed=0)
    cfg["demo"]["duration_s"], cfg["fmri"]["run_n_trs"] = 30.0, [10, 10]
    paths = generate_demo(cfg, tmp_path)
    bold = nib.load(paths["bold_sub-01_run-1"]).get_fdata()
    assert np.isfinite(bold).all()
    brain = nib.load(paths["brain_mask"]).get_fdata() > 0
    assert (bold[brain].std(axis=1) > 0).all()


def test_audio_band_energy_puts_silence_at_the_hearing_threshold():
    rate = 16000
    t = np.arange(rate) / rate
    audio = np.r_[np.zeros(rate), 0.5 * np.sin(2 * np.pi * 700 * t)]  # 1 s of silence, then a 700 Hz tone
    energy = audio_band_energy(audio, rate)
    assert energy.shape == (20, 4)
    silent, tone = energy[:10], energy[10:]
    # silence: every band holds the threshold's noise power, proportional to the band's width in Hz
    assert np.ptp(silent, axis=0).max() < 1e-9
    per_hz = np.exp(silent[0]) / np.diff([100, 400, 1000, 2500, 8000])
    np.testing.assert_allclose(per_hz, per_hz[0], rtol=0.02)
    # the tone lifts its own band (400-1000 Hz) ~14 nats above the threshold and the others barely
    lift = tone.mean(axis=0) - silent.mean(axis=0)
    assert lift[1] > 10 and np.delete(lift, 1).max() < 1.0
