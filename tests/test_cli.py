import subprocess
import sys

from typer.testing import CliRunner

import glassbox
from glassbox.cli import app


def test_version_flag() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"glassbox {glassbox.__version__}"


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_console_script_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "glassbox", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"glassbox {glassbox.__version__}"
