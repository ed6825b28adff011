"""The demo's ground truth is recovered: lesions hit the modality that drives a region; encoding beats noise.

Needs the demo DAG's outputs (``snakemake --cores 2``). A subject's test block holds ~60 TRs, so
the lesion criteria are judged on all demo subjects' TRs pooled (``run_group_summary``).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from giblet.audio.code_model import CodeModel
from giblet.evaluation import EvaluateConfig, EvaluateInputs, run_evaluate, run_group_summary
from giblet.evaluation.decoding import autoencoder_views, score_views
from giblet.evaluation.metrics import bootstrap_ci
from giblet.evaluation.predict import scored_design
from giblet.evaluation.targets import decoding_targets
from giblet.outputs import GROUP_SUMMARY_OUTPUTS
from giblet.training.data import load_movie_data
from giblet.training.routes import fit_routes
from giblet.training.stage import load_model
from giblet.training.trainer import build_model

DERIVED = Path(__file__).resolve().parents[2] / "data" / "demo" / "derived"
ALIGNED_PREFIXES = {"audio": ("audio",), "video": ("video",), "text": ("text", "labels")}  # the align rule's order
DRIVEN = {"visual": "video", "auditory": "audio", "semantic": "text"}  # demo ROI -> modality driving it

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DERIVED / "model" / "baselines.joblib").exists(),
                       reason="needs the demo outputs in data/demo/derived: run `snakemake --cores 2` first"),
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_evaluation")
    modalities = tuple(load_model(DERIVED / "model" / "autoencoder.pt")[1]["config"]["modalities"])
    aligned = [p for m in modalities for prefix in ALIGNED_PREFIXES[m]
               for p in sorted((DERIVED / "aligned").glob(f"{prefix}_*_fir.npz"))]
    prepared = sorted((DERIVED / "fmri").glob("sub-*.npz"))
    inputs = EvaluateInputs(features_dir=DERIVED / "features", aligned_paths=aligned, prepared_paths=prepared,
                            model_path=DERIVED / "model" / "autoencoder.pt",
                            baselines_path=DERIVED / "model" / "baselines.joblib",
                            group_isc_path=DERIVED / "fmri" / "group_isc.npz")
    config = EvaluateConfig(modalities, n_permutations=200, device="cpu")
    outputs = [run_evaluate(p.stem, inputs, out / p.stem, config) for p in prepared]
    group = run_group_summary([o["summary"] for o in outputs], out, [o["lesions_per_tr"] for o in outputs])
    return {"modalities": modalities, "outputs": outputs, "group": json.loads(Path(group).read_text()),
            "contrasts": pd.read_csv(out / GROUP_SUMMARY_OUTPUTS["lesion_contrasts"], sep="\t")}


def _extra_cost(demo, model, roi, other, modality):
    c = demo["contrasts"]
    return c[(c["model"] == model) & (c["input"] == "measured_bold") & (c["modality"] == modality)
             & (c["roi"] == roi) & (c["other"] == other)].iloc[0]


@pytest.mark.parametrize("model, roi, other, modality", [
    ("autoencoder", "auditory", "visual", "audio"),
    ("autoencoder", "visual", "auditory", "video"),
    ("ridge", "visual", "auditory", "video"),
    ("ridge", "auditory", "visual", "audio"),
])
def test_demo_silencing_the_driven_roi_costs_its_modality_most(demo, model, roi, other, modality):
    if modality not in demo["modalities"]:
        pytest.skip(f"the demo model was trained without {modality}")
    row = _extra_cost(demo, model, roi, other, modality)
    assert row["extra_cost"] > 0 and row["ci_low"] > 0, row.to_dict()


def test_demo_noise_roi_costs_nothing_significant(demo):
    lesions = demo["group"]["pooled_lesions"]
    costs = {(decoder, m): effects[m]["noise"]["ci"][1] < 0  # the whole interval below 0: a cost
             for decoder, effects in lesions.items() for m in effects}
    assert len(costs) == 3 * len(demo["modalities"]) and not any(costs.values()), lesions


def test_demo_encoding_in_driven_rois_beats_the_noise_roi(demo):
    tables = pd.concat([pd.read_csv(o["encoding_rois"], sep="\t") for o in demo["outputs"]])
    mean_r = tables[tables["model"] == "autoencoder"].groupby("roi")["r"].mean()
    driven = [roi for roi, modality in DRIVEN.items() if modality in demo["modalities"]]
    assert (mean_r[driven] > mean_r["noise"] + 0.2).all(), mean_r.to_dict()


def _pooled_intact(demo, metric, model="autoencoder", modality="audio"):
    """Per-TR scores of the intact decoder from measured BOLD, every subject's test TRs pooled."""
    per_tr = pd.concat([pd.read_csv(o["lesions_per_tr"], sep="\t") for o in demo["outputs"]])
    rows = per_tr[(per_tr["model"] == model) & (per_tr["input"] == "measured_bold") & (per_tr["modality"] == modality)
                  & (per_tr["metric"] == metric) & (per_tr["roi"] == "noise") & (per_tr["part"] == "roi")]
    return rows["intact"].to_numpy()


def test_demo_autoencoder_decodes_sound_from_bold_above_the_code_prior(demo):
    if "audio" not in demo["modalities"]:
        pytest.skip("the demo model was trained without audio")
    bits = _pooled_intact(demo, "bits_per_code")
    _, low, high = bootstrap_ci(bits, block_trs=5, seed=0)
    identification = _pooled_intact(demo, "rank_accuracy").mean()
    assert len(bits) >= 4 * 55 and bits.mean() >= 0.2 and low > 0, (bits.mean(), low, high)
    assert identification >= 0.70, identification


def test_demo_code_model_from_the_true_descriptor_gains_over_the_prior():
    scores = json.loads((DERIVED / "model" / "code_model_scores.json").read_text())["test"]["bits_per_code"]
    assert scores["mean"] >= 0.6 and scores["ci_low"] > 0, scores


def test_demo_audio_route_fitted_on_shuffled_bold_gains_nothing(demo):
    """A control: the route fitted on BOLD shifted half a run against the film learns no sound."""
    if "audio" not in demo["modalities"]:
        pytest.skip("the demo model was trained without audio")
    data = load_movie_data(DERIVED / "features", sorted((DERIVED / "fmri").glob("sub-*.npz")), demo["modalities"])
    for subject, bold in data.bold.items():
        for run in np.unique(data.runs):
            rows = np.flatnonzero(data.runs == run)
            bold[rows] = np.roll(bold[rows], len(rows) // 2, axis=0)
    model = build_model(data, {}, demo["modalities"], CodeModel.load(DERIVED / "model" / "code_model.npz"))
    fit_routes(model, data)
    bits = []
    for subject in data.subjects:
        rows = scored_design(data, subject, data.bold[subject], model.config.decoder_delays_trs)[2]
        targets = decoding_targets(data, DERIVED / "features", rows, model.audio_head)
        views = autoencoder_views(model.eval(), data, subject, targets)
        bits.append(score_views(views["audio"], targets)["bits_per_code"][1])
    _, low, high = bootstrap_ci(np.concatenate(bits), block_trs=5, seed=0)
    assert low <= 0 <= high, (low, high)


def test_demo_autoencoder_encodes_the_auditory_roi_at_least_as_well_as_ridge_in_every_subject(demo):
    if "audio" not in demo["modalities"]:
        pytest.skip("the demo model was trained without audio")
    tables = pd.concat([pd.read_csv(o["encoding_rois"], sep="\t").assign(subject=o["summary"].parent.name)
                        for o in demo["outputs"]])
    auditory = tables[tables["roi"] == "auditory"].pivot_table(index="subject", columns="model", values="r")
    assert (auditory["autoencoder"] >= auditory["ridge"]).all(), auditory.to_dict()


def test_demo_report_pages_stay_small():
    """Pages are self-contained (figures and sounds inline): each stays under 2 MB so that it opens quickly."""
    pages = sorted((DERIVED.parents[2] / "reports" / "demo").glob("*.html"))
    assert len(pages) == 5, pages  # four subjects and the group page
    assert {p.name: p.stat().st_size for p in pages if p.stat().st_size > 2_000_000} == {}
