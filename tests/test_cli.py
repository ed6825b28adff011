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
