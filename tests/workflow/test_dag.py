"""The Snakemake DAG plans every stage for each shipped config, with or without the data."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, SHARED_DATA
from tests.workflow.conftest import demo_config_under


def _snakemake(configfile, tmp_path, *flags):
    cfg = yaml.safe_load((REPO_ROOT / configfile).read_text())
    cfg["data_dir"] = str(tmp_path / "data")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *flags, "--cores", "2", "--configfile", str(path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=env)


def _dry_run(configfile, tmp_path):
    result = _snakemake(configfile, tmp_path, "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _planned(stdout):
    return {line.split()[0] for line in stdout.splitlines() if line and line.split()[-1].isdigit()
            and len(line.split()) == 2}


def test_dag_demo_plans_every_stage_from_raw_stimuli(tmp_path):
    path, _ = demo_config_under(tmp_path)
    planned = _planned(_dry_run(path, tmp_path))
    assert {"demo_data", "extract_audio", "extract_video", "extract_text", "align", "prepare_fmri",
            "group_isc", "train", "all"} <= planned


def test_dag_sherlock_plans_without_the_data(tmp_path):
    planned = _planned(_dry_run("config/sherlock.yaml", tmp_path))
    assert {"check_inputs", "extract_audio", "prepare_fmri", "train"} <= planned


def test_dag_run_without_the_data_prints_what_is_missing(tmp_path):
    """Regression: the rule's `set -euo pipefail` exited before the message reached the console."""
    result = _snakemake("config/sherlock.yaml", tmp_path)
    assert result.returncode != 0
    assert "input files are missing:" in result.stderr and "stimuli_Sherlock.m4v" in result.stderr


@pytest.mark.real
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_dag_sherlock_shared_skips_absent_modalities(tmp_path):
    planned = _planned(_dry_run("config/sherlock_shared.yaml", tmp_path))
    assert {"import_features", "extract_text", "prepare_fmri", "align", "train"} <= planned
    assert not {"extract_audio", "extract_video", "check_inputs"} & planned


def test_dag_passes_each_rule_its_threads(tmp_path):
    """Threads come from Snakemake (scaled to --cores), not from the config: every stage gets --threads."""
    path, _ = demo_config_under(tmp_path)
    result = _snakemake(path, tmp_path, "-n", "-p")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    calls = [line.split("Shell command: ", 1)[1] for line in result.stdout.splitlines() if "Shell command: giblet " in line]
    threads = {call.split()[1]: int(call.split("--threads ")[1].split()[0]) for call in calls if "--threads " in call}
    assert len(threads) == len({call.split()[1] for call in calls}) >= 10
    assert threads["train"] == 2 and threads["evaluate"] == 1  # train takes every core of --cores 2
