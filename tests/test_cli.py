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
