import subprocess
import sys
from pathlib import Path

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


def test_init_build_and_bad_config(tmp_path: Path) -> None:
    runner = CliRunner()
    config = tmp_path / "glassbox.toml"
    result = runner.invoke(app, ["init", str(config)])
    assert result.exit_code == 0, result.output
    assert "stack build" in result.output
    again = runner.invoke(app, ["init", str(config)])
    assert again.exit_code == 2
    assert "exists; use --force" in again.output

    built = runner.invoke(app, ["stack", "build", "-c", str(config)])
    assert built.exit_code == 0, built.output
    assert (tmp_path / "monitoring" / "prometheus" / "prometheus.yml").is_file()
    assert "0 removed" in built.output

    config.write_text(
        config.read_text().replace('targets = ["127.0.0.1:9187"]', 'targets = ["127.0.0.1:5432"]')
    )
    broken = runner.invoke(app, ["stack", "build", "-c", str(config)])
    assert broken.exit_code == 2
    assert f"{config}: dependencies[0]" in broken.output
    assert "postgres_exporter" in broken.output
    # the previous stack is untouched
    assert "127.0.0.1:9187" in (tmp_path / "monitoring/prometheus/prometheus.yml").read_text()


def test_verify_fails_on_a_threshold_that_is_not_a_bucket_boundary(tmp_path: Path) -> None:
    runner = CliRunner()
    config = tmp_path / "glassbox.toml"
    assert runner.invoke(app, ["init", str(config)]).exit_code == 0
    config.write_text(
        config.read_text().replace("threshold = 0.5\nseverity", "threshold = 0.3\nseverity")
    )
    result = runner.invoke(app, ["stack", "verify", "-c", str(config)])
    assert result.exit_code == 2
    assert "0.3 s is not a bucket boundary of http_request_duration_seconds" in result.output
    assert "use 0.25 or 0.5" in result.output
