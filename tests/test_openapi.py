"""The service's OpenAPI document follows its settings and never carries a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from typer.testing import CliRunner

from glassbox.cli import app
from glassbox.exceptions import ConfigurationError
from glassbox.openapi import service_document

HEALTH = ["/health", "/health/live", "/health/ready", "/health/detailed"]


def test_open_service_has_no_security_and_every_path() -> None:
    document = service_document(service="orders", version="2.0.0")
    validate(document)
    assert sorted(document["paths"]) == sorted([*HEALTH, "/metrics"])
    assert "securitySchemes" not in document["components"]
    assert document["info"]["version"] == "2.0.0"
    for item in document["paths"].values():
        assert set(item) == {"get", "head"}
        assert "security" not in item["get"]
        assert "content" not in item["head"]["responses"]["200"]


def test_protection_appears_where_it_is_set_and_secrets_do_not() -> None:
    document = service_document(service="orders", metrics_basic_auth="scraper:s3cret-basic",
                                health_token="s3cret-health")  # fmt: skip
    validate(document)
    text = json.dumps(document)
    assert "s3cret" not in text
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "metricsBasic": {"type": "http", "scheme": "basic",
                         "description": "GLASSBOX_METRICS_BASIC_AUTH"},
        "healthToken": {"type": "http", "scheme": "bearer",
                        "description": "GLASSBOX_HEALTH_TOKEN"},
    }  # fmt: skip
    paths = document["paths"]
    assert paths["/metrics"]["get"]["security"] == [{"metricsBasic": []}]
    assert "401" in paths["/metrics"]["get"]["responses"]
    assert paths["/health/detailed"]["get"]["security"] == [{"healthToken": []}]
    assert "security" not in paths["/health/ready"]["get"]


def test_moved_paths_and_a_metrics_port_of_its_own() -> None:
    document = service_document(service="orders", health_prefix="/ops/health/",
                                metrics_port=9464)  # fmt: skip
    assert sorted(document["paths"]) == sorted(p.replace("/health", "/ops/health") for p in HEALTH)


def test_bad_settings_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"GLASSBOX_HEALTH_PREFIX|health_prefix"):
        service_document(health_prefix="health")


def test_cli_prints_or_writes_the_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLASSBOX_METRICS_TOKEN", "cli-secret-token")
    result = CliRunner().invoke(app, ["openapi"])
    assert result.exit_code == 0, result.output
    assert "metricsToken" in json.loads(result.output)["components"]["securitySchemes"]
    assert "cli-secret-token" not in result.output
    target = tmp_path / "console.json"
    result = CliRunner().invoke(app, ["openapi", "console", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "/api/logs" in json.loads(target.read_text())["paths"]
    assert [p.name for p in tmp_path.iterdir()] == ["console.json"]
    result = CliRunner().invoke(app, ["openapi", "grafana"])
    assert result.exit_code == 2
    assert "neither 'service' nor 'console'" in result.output
    result = CliRunner().invoke(app, ["openapi", "-o", str(tmp_path / "missing" / "x.json")])
    assert result.exit_code == 2
    assert "cannot write" in result.output
