"""Every stage has a giblet subcommand."""

import subprocess
import sys

import pytest

from giblet.cli import build_parser


def test_cli_help_lists_stage_commands():
    result = subprocess.run([sys.executable, "-m", "giblet.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("validate-config", "demo-data"):
        assert command in result.stdout


def test_cli_demo_data_requires_out():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo-data", "--config", "config/demo.yaml"])


def test_cli_extract_text_without_annotations_names_the_key(tmp_path, capsys):
    import yaml

    from giblet.cli import main
    from tests.conftest import REPO_ROOT

    cfg = yaml.safe_load((REPO_ROOT / "config" / "demo.yaml").read_text())
    del cfg["stimulus"]["annotations"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["extract-text", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "extract-text needs stimulus.annotations (or drop 'text' from modalities)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_stage_settings_defaults_match_the_schema():
    import yaml

    from giblet.audio.stage import CodecConfig
    from giblet.config import validate_config
    from giblet.text.stage import TextConfig
    from giblet.timing import ScanTiming
    from giblet.video.stage import VideoConfig
    from tests.conftest import REPO_ROOT

    cfg = yaml.safe_load((REPO_ROOT / "config" / "demo.yaml").read_text())
    for section in ("codec", "video", "text"):
        cfg.pop(section, None)
    cfg["stimulus"].pop("start_offset_s", None)
    cfg["evaluate"]["sound_classes"] = None  # names a label column of the demo's text section
    cfg = validate_config(cfg)
    assert ScanTiming.from_config(cfg) == ScanTiming(tr_s=1.5, run_n_trs=(240, 240), start_offset_s=0.0)
    assert CodecConfig.from_dict(cfg["codec"]) == CodecConfig()
    assert VideoConfig.from_dict(cfg["video"]) == VideoConfig()
    assert TextConfig.from_dict(cfg["text"]) == TextConfig()


@pytest.mark.parametrize("name", ["demo", "sherlock", "sherlock_shared"])
def test_shipped_configs_give_stage_settings(name):
    from giblet.audio.code_model_stage import CodeScoreConfig
    from giblet.audio.stage import CodecConfig
    from giblet.config import load_config
    from giblet.report import ReportConfig
    from giblet.text.stage import TextConfig
    from giblet.timing import ScanTiming
    from giblet.training import TrainingSetup
    from giblet.video.stage import VideoConfig
    from tests.conftest import REPO_ROOT

    cfg = load_config(REPO_ROOT / "config" / f"{name}.yaml")
    timing = ScanTiming.from_config(cfg)
    assert timing.n_trs == sum(cfg["fmri"]["run_n_trs"]) and timing.run_n_trs == tuple(cfg["fmri"]["run_n_trs"])
    assert CodecConfig.from_dict(cfg["codec"]).model == cfg["codec"]["model"]
    assert VideoConfig.from_dict(cfg["video"]).thumb_size == tuple(cfg["video"]["thumb_size"])
    text = TextConfig.from_dict(cfg["text"])
    assert text.annotation_format.label_columns == tuple(cfg["text"]["label_columns"])
    scoring = CodeScoreConfig.from_config(cfg)
    assert (scoring.n_bootstrap, scoring.seed) == (cfg["evaluate"]["n_bootstrap"], cfg["seed"])
    assert ReportConfig.from_config(cfg) == ReportConfig(cfg["dataset"], tuple(cfg["fmri"]["subjects"]))
    setup = TrainingSetup.from_config(cfg)
    assert setup.train.group_target_weight == (0.5 if name.startswith("sherlock") else 0.0)
    assert (setup.model_options["route_mode"], setup.preshift_trs) == (
        ("joint", 3) if name.startswith("sherlock") else ("best_band", 0))


def test_stage_settings_reject_unknown_keys():
    from giblet.audio.stage import CodecConfig
    from giblet.text.stage import TextConfig
    from giblet.video.stage import VideoConfig

    for section, config in (("codec", CodecConfig), ("video", VideoConfig), ("text", TextConfig)):
        with pytest.raises(ValueError, match=rf"{section}: unknown keys \['colour'\]; known keys are \["):
            config.from_dict({"colour": "red"})
