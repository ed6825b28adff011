"""Config files are checked against the schema before any work, naming the bad key."""

import copy
import subprocess
import sys

import pytest
import yaml

from giblet.cli import main
from giblet.config import SCHEMA_PATH, ConfigError, load_config, validate_config
from tests.conftest import REPO_ROOT

DEMO_CONFIG = REPO_ROOT / "config" / "demo.yaml"


@pytest.fixture
def demo_dict():
    return yaml.safe_load(DEMO_CONFIG.read_text())


def _write(tmp_path, cfg):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_load_config_demo_is_valid_and_gets_defaults():
    cfg = load_config(DEMO_CONFIG)
    assert cfg["fmri"]["tr_s"] == 1.5
    assert cfg["demo"]["expected_loso_isc"]["noise"] == [-0.15, 0.15]


def test_demo_config_values_match_schema_defaults(demo_dict):
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    demo_schema = schema["properties"]["demo"]["properties"]
    for key, value in demo_dict["demo"].items():
        assert value == demo_schema[key]["default"], key


def test_validate_config_names_misspelled_key(demo_dict):
    demo_dict["fmri"]["tr"] = demo_dict["fmri"].pop("tr_s")
    with pytest.raises(ConfigError, match=r"fmri: Additional properties are not allowed \('tr' was unexpected\)"):
        validate_config(demo_dict)


def test_validate_config_names_negative_tr(demo_dict):
    demo_dict["fmri"]["tr_s"] = -1.5
    with pytest.raises(ConfigError, match=r"key 'fmri.tr_s': -1.5 is less than or equal to the minimum of 0"):
        validate_config(demo_dict)


def test_validate_config_reports_every_error_at_once(demo_dict):
    demo_dict["fmri"]["tr_s"] = 0
    demo_dict["demo"]["snr"] = "high"
    with pytest.raises(ConfigError) as err:
        validate_config(demo_dict)
    assert "'demo.snr'" in str(err.value) and "'fmri.tr_s'" in str(err.value)


def test_cli_validate_config_exit_codes(tmp_path, demo_dict, capsys):
    assert main(["validate-config", "--config", str(DEMO_CONFIG)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = copy.deepcopy(demo_dict)
    bad["stimulus"]["movi"] = "x.mp4"
    assert main(["validate-config", "--config", str(_write(tmp_path, bad))]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "'movi' was unexpected" in err


def test_cli_missing_config_file_is_named(tmp_path, capsys):
    assert main(["validate-config", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such config file" in capsys.readouterr().err


def test_snakemake_stops_before_any_work_on_bad_config(tmp_path, demo_dict):
    demo_dict["fmri"]["tr_s"] = -1.5
    demo_dict["data_dir"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(_write(tmp_path, demo_dict))],
        cwd=REPO_ROOT, capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "tr_s" in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()


def test_validate_config_names_a_sound_class_column_the_annotations_lack(demo_dict):
    demo_dict["evaluate"]["sound_classes"] = "noise_type"
    with pytest.raises(ConfigError, match=r"evaluate.sound_classes': 'noise_type' is not among text.label_columns"):
        validate_config(demo_dict)


def test_validate_config_names_split_fractions_that_do_not_sum_to_one(demo_dict):
    demo_dict["split"] = {"fractions": [0.8, 0.2, 0.15]}
    with pytest.raises(ConfigError, match=r"split.fractions': \[0.8, 0.2, 0.15\] sum to 1.15; .* must sum to 1"):
        validate_config(demo_dict)


def test_load_config_names_a_key_written_twice(tmp_path):
    text = DEMO_CONFIG.read_text()
    path = tmp_path / "twice.yaml"
    path.write_text(text.replace("train:\n", "train:\n  patience: 3\n", 1))
    lines = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line.startswith("  patience:")]
    with pytest.raises(ConfigError, match=rf"(?s){path}: not valid YAML:.*key 'patience' is written twice "
                                          rf"\(lines {lines[0]} and {lines[1]}\); keep one"):
        load_config(path)


def test_check_choice_returns_the_value_or_names_the_choices():
    from giblet.config import check_choice

    assert check_choice("fmri.filter", "cosine", ("cosine", "butterworth")) == "cosine"
    with pytest.raises(ValueError, match=r"fmri.filter must be one of \['cosine', 'butterworth'\], got 'box'"):
        check_choice("fmri.filter", "box", ("cosine", "butterworth"))
    with pytest.raises(ValueError, match=r"lesion mode must be one of \['mean', 'noise', 'zero'\], got 'cut'"):
        check_choice("lesion mode", "cut", {"zero": 0, "noise": 1, "mean": 2})
