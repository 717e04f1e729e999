"""`glassbox stack build`: deterministic output, written atomically, nothing lost."""

from __future__ import annotations

import os
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from glassbox.exceptions import ConfigurationError
from glassbox.stack.build import MANIFEST, render_stack, write_stack
from glassbox.stack.config import parse_config

STARTER = tomllib.loads(files("glassbox.stack").joinpath("starter.toml").read_text())
GOLDEN = Path(__file__).parent / "golden"


def test_output_is_deterministic_and_complete() -> None:
    config = parse_config(STARTER)
    first, second = render_stack(config), render_stack(parse_config(STARTER))
    assert first == second
    for expected in (
        "prometheus/prometheus.yml",
        "prometheus/rules/service-shop.yml",
        "prometheus/rules/slo.yml",
        "prometheus/tests/slo.600s.test.yml",
        "alertmanager/alertmanager.yml",
        "alertmanager/templates/glassbox.tmpl",
        "grafana/provisioning/datasources/glassbox.yml",
        "grafana/dashboards/glassbox-shop-overview.json",
        "grafana/dashboards/glassbox-slo.json",
        "loki/loki.yml",
        "alloy/config.alloy",
        "tempo/tempo.yml",
        "compose.yaml",
        "kubernetes/kustomization.yaml",
    ):
        assert expected in first, expected


def test_output_matches_the_golden_files() -> None:
    """The starter's stack, file by file (GLASSBOX_UPDATE_GOLDEN=1 rewrites them)."""
    rendered = render_stack(parse_config(STARTER))
    if os.environ.get("GLASSBOX_UPDATE_GOLDEN") == "1":
        write_stack(rendered, GOLDEN, force=True)
    on_disk = {
        p.relative_to(GOLDEN).as_posix(): p.read_text(encoding="utf-8")
        for p in GOLDEN.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    assert sorted(on_disk) == sorted(rendered)
    for rel, text in rendered.items():
        assert on_disk[rel] == text, f"{rel} changed; review, then GLASSBOX_UPDATE_GOLDEN=1"


def test_no_secret_value_reaches_any_file(monkeypatch: pytest.MonkeyPatch) -> None:
    planted = "xoxb-PLANTED-SECRET-4242"
    for name in ("PAGERDUTY_ROUTING_KEY", "SLACK_WEBHOOK_URL", "GRAFANA_ADMIN_PASSWORD"):
        monkeypatch.setenv(name, planted)
    rendered = render_stack(parse_config(STARTER))
    assert not [rel for rel, text in rendered.items() if planted in text]


def test_write_replaces_atomically_and_reports_changes(tmp_path: Path) -> None:
    out = tmp_path / "monitoring"
    first = write_stack({"a.txt": "1\n", "b/c.txt": "2\n"}, out)
    assert first.changed == ("a.txt", "b/c.txt")
    second = write_stack({"a.txt": "1\n", "d.txt": "3\n"}, out)
    assert second.changed == ("d.txt",)
    assert second.removed == ("b/c.txt",)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [MANIFEST, "a.txt", "d.txt"]
    # no staging or backup directories are left beside it
    assert [p.name for p in tmp_path.iterdir()] == ["monitoring"]


def test_refuses_a_foreign_directory_and_hand_edits(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigurationError, match="was not written by glassbox"):
        write_stack({"a.txt": "1\n"}, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "monitoring"
    write_stack({"a.txt": "1\n"}, out)
    (out / "a.txt").write_text("tuned by hand\n")
    with pytest.raises(ConfigurationError, match=r"edited by hand: a\.txt"):
        write_stack({"a.txt": "2\n"}, out)
    assert (out / "a.txt").read_text() == "tuned by hand\n"
    write_stack({"a.txt": "2\n"}, out, force=True)
    assert (out / "a.txt").read_text() == "2\n"


def test_a_failed_write_leaves_the_previous_stack(tmp_path: Path) -> None:
    out = tmp_path / "monitoring"
    write_stack({"a.txt": "1\n"}, out)
    with pytest.raises(ValueError, match="outside the output directory"):
        write_stack({"../escape.txt": "x"}, out)
    assert (out / "a.txt").read_text() == "1\n"
    assert not (tmp_path / "escape.txt").exists()


def test_jaeger_backend_swaps_the_trace_store_everywhere() -> None:
    data = {**STARTER, "tracing": {"backend": "jaeger", "retention": "3d"}}
    rendered = render_stack(parse_config(data))
    assert "jaeger/jaeger.yml" in rendered
    assert not [rel for rel in rendered if rel.startswith("tempo/")]
    datasources = rendered["grafana/provisioning/datasources/glassbox.yml"]
    assert "glassbox-jaeger" in datasources
    assert "tempo" not in datasources
    assert "tempo" not in rendered["compose.yaml"]
    assert "tempo" not in rendered["alloy/config.alloy"].lower()
