"""glassbox.toml: the starter loads; bad input names the file, the field and the fix."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from glassbox.exceptions import ConfigurationError
from glassbox.stack import config as config_module
from glassbox.stack.config import duration_seconds, load_config, parse_config

STARTER = files("glassbox.stack").joinpath("starter.toml").read_text(encoding="utf-8")


def starter() -> dict[str, Any]:
    return tomllib.loads(STARTER)


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigurationError) as info:
        parse_config(data, source="glassbox.toml")
    return str(info.value)


def test_starter_loads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "glassbox.toml"
    path.write_text(STARTER)
    config = load_config(path)
    (service,) = config.services
    assert service.catalogue.requests_total.name == "http_requests_total"
    assert [s.name for s in service.slos] == ["availability", "latency"]
    assert service.slos[0].error_budget == pytest.approx(0.001)
    assert config.default_receiver == "team-email"
    assert {r.kind for r in config.receivers} == {"pagerduty", "slack", "email"}


def test_missing_file_and_bad_toml_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file; run 'glassbox init'"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("project = \n")
    with pytest.raises(ConfigurationError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)


def test_inline_secret_is_refused_with_the_fix() -> None:
    data = starter()
    data["receivers"][0]["routing_key"] = "R0UT1NGKEY"
    message = error_of(data)
    assert "glassbox.toml: receivers[0].routing_key" in message
    assert "never written inline" in message
    assert "R0UT1NGKEY" not in message


def test_latency_threshold_must_be_a_bucket_boundary() -> None:
    data = starter()
    data["services"][0]["alerts"]["latency"][0]["threshold"] = 0.3
    message = error_of(data)
    assert "services[0]" in message
    assert "alerts.latency[0].threshold: 0.3 s is not a bucket boundary" in message
    assert "use 0.25 or 0.5" in message
    data = starter()
    data["services"][0]["slos"][1]["threshold"] = 1
    assert parse_config(data).services[0].slos[1].threshold == 1.0  # 1 == 1.0, a bound
    data["services"][0]["slos"][1]["threshold"] = 10.0
    assert "largest bucket boundary" in error_of(data)


def test_exporter_port_not_server_port() -> None:
    data = starter()
    data["dependencies"][0]["targets"] = ["db.internal:5432"]
    message = error_of(data)
    assert "dependencies[0]" in message
    assert "postgres server's own port" in message
    assert "postgres_exporter, port 9187" in message


def test_unknown_keys_references_and_durations() -> None:
    data = starter()
    data["services"][0]["targtes"] = ["x:1"]
    assert "services[0].targtes: unknown setting" in error_of(data)
    data = starter()
    data["routing"]["routes"][0]["receivers"] = ["nobody"]
    assert "no receiver named 'nobody'" in error_of(data)
    data = starter()
    data["prometheus"]["scrape_interval"] = "15 seconds"
    assert "prometheus.scrape_interval: '15 seconds' is not a Prometheus duration" in error_of(data)
    data = starter()
    data["services"][0]["alerts"]["latency"][0]["for"] = "15s"
    assert "shorter than two evaluation intervals" in error_of(data)
    data = starter()
    data["services"][0]["slos"][0]["objective"] = 90
    assert "could never fire" in error_of(data)
    data = starter()
    data["receivers"].append({"name": "hook", "kind": "webhook", "url": "https://u:p@h/x"})
    assert "no user:password part" in error_of(data)


def test_durations() -> None:
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("28d") == 28 * 86400
    assert duration_seconds("500ms") == 0.5
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        duration_seconds("5 m")


def test_static_alert_labels_are_checked() -> None:
    data = starter()
    data["dependencies"][0]["labels"] = {"team": "data", "component": "database"}
    config = parse_config(data)
    assert config.dependencies[0].labels == {"component": "database", "team": "data"}
    data["services"][0]["labels"] = {"dependency": "x"}
    message = error_of(data)
    assert "services[0].labels: 'dependency' is a label glassbox's alerts set" in message
    data["services"][0]["labels"] = {"com-ponent": "x"}
    assert "'com-ponent' is not a label name" in error_of(data)
    data["services"][0]["labels"] = {"component": ""}
    assert "label 'component' needs a value" in error_of(data)


def test_route_and_inhibit_matchers_name_labels_alerts_carry() -> None:
    data = starter()
    data["dependencies"][0]["labels"] = {"component": "database"}
    data["routing"]["routes"].insert(
        0, {"matchers": ["component = database"], "receivers": ["oncall"]}
    )
    data["routing"]["inhibit"] = [
        {
            "source_matchers": ['alertname="PostgresDown"'],
            "target_matchers": ['component="database"', 'severity=~"warning|info"'],
            "equal": ["cluster"],
        }
    ]
    config = parse_config(data)
    assert config.routing.routes[0].matchers == ('component="database"',)
    assert [m.text() for m in config.routing.routes[1].label_matchers()] == ['severity="critical"']

    data["routing"]["routes"][0]["matchers"] = ["component=database", "tier=~'x'"]
    message = error_of(data)
    assert "routing.routes[0].matchers[1]: no generated alert carries the label 'tier'" in message
    assert 'labels = { tier = "..." }' in message
    data["routing"]["routes"][0]["matchers"] = ['component="databse"']
    assert 'no alert has component="databse"; component is one of database' in error_of(data)
    data["routing"]["routes"][0]["matchers"] = ['alertname="PostgresDwn"']
    assert 'no alert has alertname="PostgresDwn"' in error_of(data)
    data["routing"]["routes"][0]["matchers"] = ['component~"database"']
    message = error_of(data)
    assert (
        "routing.routes[0].matchers[0]: 'component~\"database\"' is not an Alertmanager" in message
    )
    # values coming from the alerts' expressions or Prometheus are not known beforehand
    data["routing"]["routes"][0]["matchers"] = ['instance="db-1:9187"', 'cluster="eu"']
    parse_config(data)

    data["routing"]["inhibit"][0]["equal"] = ["tenant"]
    assert "routing.inhibit[0].equal[0]: no generated alert carries the label" in error_of(data)
    data["routing"]["inhibit"][0]["equal"] = []
    data["routing"]["inhibit"][0]["source_matchers"] = ['slo="x"', 'tier="gold"']
    assert "routing.inhibit[0].source_matchers[1]: no generated alert" in error_of(data)
    data["routing"]["inhibit"][0]["source_matchers"] = []
    assert "routing.inhibit[0].source_matchers: Tuple should have at least 1 item" in error_of(data)


def test_message_fields_depend_on_the_receiver_kind() -> None:
    data = starter()
    data["receivers"][1]["message"] = {"title": "{{ .CommonLabels.alertname }}", "text": "x"}
    data["receivers"][2]["message"] = {"subject": "s", "body": "b", "html": "<p>h</p>"}
    data["receivers"][0]["message"] = {"summary": "{{ .CommonLabels.alertname }}"}
    config = parse_config(data)
    message = config.receivers[2].message
    assert message is not None
    assert message.fields() == {"subject": "s", "body": "b", "html": "<p>h</p>"}
    data["receivers"][1]["message"] = {"subject": "s"}
    assert (
        "receivers[1]: message.subject: a slack receiver's message takes title and text"
        in error_of(data)
    )
    data["receivers"][1]["message"] = {"title": "  "}
    assert "message.title is empty; remove it to keep the default" in error_of(data)
    data["receivers"][1]["message"] = {"titel": "x"}
    assert "receivers[1].message.titel: unknown setting" in error_of(data)


def test_logs_and_tracing_tables() -> None:
    config = parse_config(starter())
    assert config.logs.retention is None
    assert (config.tracing.backend, config.tracing.retention) == ("tempo", None)
    data = starter()
    data["logs"] = {"retention": "7d"}
    data["tracing"] = {"backend": "jaeger", "retention": "3d"}
    config = parse_config(data)
    assert (config.logs.retention, config.tracing.retention) == ("7d", "3d")
    data["tracing"] = {"backend": "zipkin"}
    assert "tracing.backend: Input should be 'tempo' or 'jaeger'" in error_of(data)
    data["tracing"] = {"retention": "3 days"}
    assert "tracing.retention: '3 days' is not a Prometheus duration" in error_of(data)


def test_the_starters_commented_routing_examples_load() -> None:
    """The commented labels, matcher route, inhibit rule, message and retention examples."""
    keys = (
        "labels = ",
        "[receivers.message]",
        "[[routing.routes]]",
        "matchers = ",
        'receivers = ["team-email"]',
        "[[routing.inhibit]]",
        "source_matchers = ",
        "target_matchers = ",
        "[logs]",
        "retention = ",
        "[tracing]",
        "backend = ",
    )
    lines = []
    for line in STARTER.splitlines():
        body = line.removeprefix("# ")
        example = body.startswith(keys) or (body.startswith(("title", "text")) and "{{" in body)
        lines.append(body if line.startswith("# ") and example else line)
    config = parse_config(tomllib.loads("\n".join(lines)))
    assert config.services[0].labels == {"team": "shop"}
    assert config.dependencies[0].labels == {"component": "database"}
    assert config.routing.routes[-1].matchers == ('component="database"',)
    assert config.routing.inhibit[0].target_matchers == ('team="shop"', 'severity="warning"')
    message = config.receiver("team-slack").message
    assert message is not None
    assert set(message.fields()) == {"title", "text"}
    assert (config.logs.retention, config.tracing.backend, config.tracing.retention) == (
        "7d",
        "tempo",
        "3d",
    )


def test_a_label_the_alerts_set_is_refused_even_if_not_listed_as_reserved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A component that adds an expression label is protected before the list catches up."""
    monkeypatch.setattr(config_module, "RESERVED_ALERT_LABELS", frozenset({"alertname"}))
    data = starter()
    data["dependencies"][0]["labels"] = {"instance": "db-1"}
    assert (
        "dependencies[0].labels: 'instance' is a label glassbox's alerts set themselves"
        in error_of(data)
    )
