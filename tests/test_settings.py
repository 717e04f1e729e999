"""Settings: environment, precedence over it, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from glassbox._settings import load_settings
from glassbox.exceptions import ConfigurationError


def test_environment_and_argument_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel")
    monkeypatch.setenv("GLASSBOX_NAMESPACE", "kato")
    monkeypatch.setenv("GLASSBOX_BUCKETS", "[0.1, 0.5, 2]")
    settings = load_settings()
    assert settings.service == "from-otel"
    assert settings.namespace == "kato"
    assert settings.buckets == (0.1, 0.5, 2.0)
    assert load_settings(service="explicit").service == "explicit"


@pytest.mark.parametrize(
    ("env", "val", "match"),
    [
        ("GLASSBOX_METRICS_PORT", "http", "GLASSBOX_METRICS_PORT='http'"),
        ("GLASSBOX_METRICS_PORT", "70000", "GLASSBOX_METRICS_PORT"),
        ("GLASSBOX_NAMESPACE", "my-app", "GLASSBOX_NAMESPACE"),
        ("GLASSBOX_BUCKETS", "[2, 1]", "strictly increasing"),
        ("GLASSBOX_METRICS_PATH", "metrics", "must start with '/'"),
        ("GLASSBOX_LOG_LEVEL", "loud", "GLASSBOX_LOG_LEVEL=.*DEBUG"),
    ],
)
def test_bad_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, val: str, match: str
) -> None:
    monkeypatch.setenv(env, val)
    with pytest.raises(ConfigurationError, match=match):
        load_settings()


def test_log_level_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLASSBOX_LOG_LEVEL", "warning")
    assert load_settings().log_level == "WARNING"
    assert load_settings(log_level=" Debug ").log_level == "DEBUG"


def test_bad_argument_names_the_argument() -> None:
    with pytest.raises(ConfigurationError, match="argument metrics_port="):
        load_settings(metrics_port=0)
    with pytest.raises(ConfigurationError, match="metrics_portt"):
        load_settings(metrics_portt=1)


def test_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    monkeypatch.setenv("GLASSBOX_METRICS_TOKEN_FILE", str(token))
    assert load_settings().metrics_protection().token == "abc"
    monkeypatch.setenv("GLASSBOX_METRICS_TOKEN", "inline")
    with pytest.raises(ConfigurationError, match="not both"):
        load_settings().metrics_protection()
    monkeypatch.delenv("GLASSBOX_METRICS_TOKEN")
    monkeypatch.setenv("GLASSBOX_METRICS_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_settings().metrics_protection()
    monkeypatch.delenv("GLASSBOX_METRICS_TOKEN_FILE")
    monkeypatch.setenv("GLASSBOX_METRICS_BASIC_AUTH", "nopassword")
    with pytest.raises(ConfigurationError, match="user:password"):
        load_settings().metrics_protection()


def test_settings_repr_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLASSBOX_METRICS_TOKEN", "very-secret-value")
    assert "very-secret-value" not in repr(load_settings())
