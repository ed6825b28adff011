"""The demo's ground truth is recovered: lesions hit the modality that drives a region; encoding beats noise.

Needs the demo DAG's outputs (``snakemake --cores 2``). A subject's test block holds ~60 TRs, so
the lesion criteria are judged on all demo subjects' TRs pooled (``run_group_summary``).
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from giblet.evaluation import run_evaluate, run_group_summary
from giblet.training.stage import load_model

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
    outputs = [run_evaluate(p.stem, features_dir=DERIVED / "features", aligned_paths=aligned, prepared_paths=prepared,
                            model_path=DERIVED / "model" / "autoencoder.pt",
                            baselines_path=DERIVED / "model" / "baselines.joblib",
                            group_isc_path=DERIVED / "fmri" / "group_isc.npz", out_dir=out / p.stem,
                            modalities=modalities, n_permutations=200, device="cpu")
               for p in prepared]
    group = run_group_summary([o["summary"] for o in outputs], out / "group.json",
                              [o["lesions_per_tr"] for o in outputs])
    return {"modalities": modalities, "outputs": outputs, "group": json.loads(Path(group).read_text()),
            "contrasts": pd.read_csv(out / "group_lesion_contrasts.tsv", sep="\t")}


def _extra_cost(demo, model, roi, other, modality):
    c = demo["contrasts"]
    return c[(c["model"] == model) & (c["input"] == "measured_bold") & (c["modality"] == modality)
             & (c["roi"] == roi) & (c["other"] == other)].iloc[0]


#: The autoencoder's lesion contrasts move with every retraining (on this film, seed 0, from +0.07
#: [0.03, 0.13] to +0.01 [-0.05, 0.06] for video after a change of the simulation alone), so they are
#: expected to fail but may pass: not strict.
AUTOENCODER_LESIONS_OPEN = pytest.mark.xfail(
    strict=False, reason="issue 7 open: the autoencoder decodes sound from measured BOLD barely above its code prior "
                         "(validation cross-entropy best at epoch 1; TR identification 0.49-0.61) and pictures at "
                         "0.51-0.62, so its lesion contrasts are within noise: audio +0.029 [-0.001, 0.059], video "
                         "+0.008 [-0.049, 0.060] on 4 x 61 test TRs")


@pytest.mark.parametrize("model, roi, other, modality", [
    pytest.param("autoencoder", "auditory", "visual", "audio", marks=AUTOENCODER_LESIONS_OPEN),
    pytest.param("autoencoder", "visual", "auditory", "video", marks=AUTOENCODER_LESIONS_OPEN),
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
