"""config/sherlock_shared.yaml through the whole DAG on real data: three subjects, a short training budget."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from giblet.fmri import GroupIsc
from tests.conftest import REPO_ROOT, SHARED_DATA
from tests.workflow.conftest import merge

SUBJECTS = ["s1", "s2", "s3"]
SHORT = {
    "fmri": {"subjects": SUBJECTS},
    "train": {"max_epochs": 2},
    "cross_validation": {"folds": 3, "seeds": [0]},
    "evaluate": {"n_permutations": 20, "n_bootstrap": 20, "n_examples": 2},
}


@pytest.fixture(scope="module")
def sherlock_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sherlock_shared")
    cfg = merge(yaml.safe_load((REPO_ROOT / "config" / "sherlock_shared.yaml").read_text()), SHORT)
    cfg["data_dir"], cfg["reports_dir"] = str(root / "data"), str(root / "reports")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return root


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (Sherlock PMC voxels and annotations)")
def test_sherlock_shared_config_runs_to_the_group_page(sherlock_run):
    reports = sherlock_run / "reports" / "sherlock_shared"
    assert sorted(p.name for p in reports.glob("*.html")) == sorted(["index.html", *(f"{s}.html" for s in SUBJECTS)])
    derived = sherlock_run / "data" / "sherlock_shared" / "derived" / "evaluation"
    group = json.loads((derived / "group_summary.json").read_text())
    assert group["numbers"]["encoding/autoencoder/rois/pmc/r"]["n"] == len(SUBJECTS)
    contrasts = pd.read_csv(derived / "group_summary_lesion_contrasts.tsv", sep="\t")
    assert contrasts.empty  # one ROI: nothing to contrast it with
    isc = GroupIsc.load(sherlock_run / "data" / "sherlock_shared" / "derived" / "fmri" / "group_isc.npz")
    published = pd.DataFrame(isc.summary["published_isc"])
    assert published["subject"].tolist() == SUBJECTS and (published["n_group"] == 17).all()
    assert np.abs(published["reproduced"] - published["published"]).max() < 1e-4  # measured: 5e-8
    assert "ISC against the published values" in (reports / "index.html").read_text()
    cv = json.loads((sherlock_run / "data" / "sherlock_shared" / "derived" / "cross_validation" / "cv_encoding.json")
                    .read_text())
    assert cv["folds"] == 3 and sorted({row["subject"] for row in cv["subjects"]}) == SUBJECTS
    assert 0.1 < cv["group"]["pmc"]["ceiling"] < 0.8 and abs(cv["group"]["pmc"]["ridge_r"]) < 0.3
    assert "Cross-validated encoding" in (reports / "index.html").read_text()
    pooled = pd.DataFrame(cv["identification"]["subjects"])  # text decoded on every fold, pooled per subject
    assert set(pooled["model"]) == {"autoencoder", "ridge"} and set(pooled["view"]) == {"embedding"}
    assert (pooled["n_folds"] == 3).all() and pooled["rank_accuracy"].between(0.3, 0.8).all()
    assert "Cross-validated decoding: TR identification" in (reports / "index.html").read_text()
    for subject in SUBJECTS:
        encoding = pd.read_csv(derived / subject / "encoding_rois.tsv", sep="\t")
        assert set(encoding["roi"]) == {"pmc"} and encoding["r"].between(-1, 1).all()
        texts = pd.read_csv(derived / subject / "text_examples.tsv", sep="\t")
        for model in ("autoencoder", "ridge"):
            retrieved = texts[f"{model}_measured_bold"]
            assert retrieved.nunique() > len(retrieved) // 20, (subject, model)  # not one hub for every TR
