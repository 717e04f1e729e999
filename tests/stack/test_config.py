"""glassbox.toml: the starter loads; bad input names the file, the field and the fix."""

from __future__ import annotations

import json
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


def with_rule(**rule: Any) -> dict[str, Any]:
    """The starter with one business counter, one business histogram and ``rule``."""
    data = starter()
    service = data["services"][0]
    service["business_metrics"] = [
        {"name": "tool_executions_total", "kind": "counter", "by": ["tool_name", "status"]},
        {"name": "llm_request_duration_seconds", "kind": "histogram", "by": ["provider"]},
        {"name": "sessions_active", "kind": "gauge"},
    ]
    service["rules"] = [
        {"name": "ToolFailureRatioHigh", "severity": "warning", "for": "10m", **rule}
    ]
    return data


RATIO = {
    "kind": "ratio",
    "numerator": 'tool_executions_total{status="error"}',
    "denominator": "tool_executions_total",
    "threshold": 0.1,
}
QUANTILE = {
    "kind": "quantile_above",
    "metric": "llm_request_duration_seconds",
    "quantile": 0.95,
    "threshold": 2.5,
    "buckets": [0.5, 1, 2.5, 5, 10],
}


def test_rules_of_every_kind_load() -> None:
    data = with_rule(**RATIO, min_rate=0.01, by=["tool_name"])
    data["services"][0]["rules"] += [
        {**QUANTILE, "name": "LlmSlow", "severity": "warning", "for": "5m"},
        {
            "name": "ToolsStopped",
            "kind": "rate_below",
            "severity": "critical",
            "for": "10m",
            "metric": 'tool_executions_total{status!="error"}',
            "threshold": 0.01,
        },
        {
            "name": "CheckoutErrors",
            "kind": "rate_above",
            "severity": "info",
            "for": "5m",
            "metric": 'http_requests_total{route="/checkout",status="500"}',  # a RED counter
            "threshold": 0,
        },
    ]
    ratio, quantile, below, above = parse_config(data).services[0].rules
    assert ratio.numerator is not None
    assert str(ratio.numerator) == 'tool_executions_total{status="error"}'
    assert ratio.numerator.promql("shop") == 'tool_executions_total{service="shop",status="error"}'
    assert ratio.min_rate == 0.01
    assert quantile.buckets == (0.5, 1.0, 2.5, 5.0, 10.0)
    assert below.metric is not None
    assert below.metric.matchers[0].op == "!="
    assert above.metric is not None
    assert [m.label for m in above.metric.matchers] == ["route", "status"]


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ('tool_executions_total{status=~"err.*"}', "regular-expression matcher; use = or !="),
        ('tool_executions_total{status="error"', "is not a metric selector"),
        ("rate(tool_executions_total[5m])", "is not a plain metric selector"),
        ('tool_executions_total{service="shop"}', "remove the service matcher"),
        ('tool_executions_total{status="a",status="b"}', "label status is matched twice"),
        ('tool_executions_total{status="say \\"hi\\""}', "may not hold quotes"),
    ],
)
def test_a_bad_matcher_is_named(selector: str, message: str) -> None:
    error = error_of(with_rule(**{**RATIO, "numerator": selector}))
    assert "glassbox.toml: services[0].rules[0].numerator:" in error
    assert message in error


def test_rule_metrics_must_be_known_counters_or_histograms() -> None:
    error = error_of(with_rule(**{**RATIO, "numerator": 'tools_run_total{status="error"}'}))
    assert "services[0]: rules[0].numerator: tools_run_total is not a metric of this service" in (
        error
    )
    assert "declare it with [[services.business_metrics]] name = 'tools_run_total'" in error
    error = error_of(with_rule(**{**RATIO, "denominator": "sessions_active"}))
    assert "rules[0]: denominator: sessions_active is not a counter (counters end in _total)" in (
        error
    )
    error = error_of(with_rule(**{**QUANTILE, "metric": "http_request_duration_seconds"}))
    assert (
        "request-duration histogram; alert on its quantiles with [[services.alerts.latency]]"
        in (error)
    )
    data = with_rule(**{**QUANTILE, "metric": "tool_executions"})
    data["services"][0]["business_metrics"].append({"name": "tool_executions", "kind": "gauge"})
    assert "tool_executions is declared as a gauge; a quantile_above rule needs a histogram" in (
        error_of(data)
    )


def test_a_quantile_threshold_must_be_a_bucket_but_not_the_last() -> None:
    error = error_of(with_rule(**{**QUANTILE, "threshold": 2}))
    assert "services[0].rules[0]: threshold: 2.0 s is not a bucket boundary of" in error
    assert "llm_request_duration_seconds" in error
    assert "use 1.0 or 2.5, or add 2.0 to the rule's buckets" in error
    error = error_of(with_rule(**{**QUANTILE, "threshold": 10}))
    assert "10.0 s is the largest bucket boundary" in error
    data = with_rule(**QUANTILE)
    data["services"][0]["rules"].append(
        {**QUANTILE, "name": "LlmSlow", "severity": "info", "for": "5m", "buckets": [1, 2.5, 5]}
    )
    assert "rules[1].buckets: llm_request_duration_seconds has the buckets" in error_of(data)


def test_rule_names_are_camel_case_and_unique_across_the_stack() -> None:
    assert "'tool_failures' is not an alert name: use CamelCase" in error_of(
        with_rule(**RATIO, name="tool_failures")
    )
    data = with_rule(**RATIO)
    data["services"][0]["rules"].append(data["services"][0]["rules"][0])
    assert "services[0]: rules: the name 'ToolFailureRatioHigh' is used twice" in error_of(data)
    data = with_rule(**RATIO)
    other = json.loads(json.dumps(data["services"][0]))
    data["services"].append({**other, "name": "worker", "slos": []})
    assert "services.rules (alert names): the name 'ToolFailureRatioHigh' is used twice" in (
        error_of(data)
    )


def test_each_kind_takes_its_own_fields() -> None:
    assert "a ratio rule needs denominator" in error_of(
        with_rule(**{k: v for k, v in RATIO.items() if k != "denominator"})
    )
    assert "a rate_above rule takes no min_rate; remove it" in error_of(
        with_rule(kind="rate_above", metric="tool_executions_total", threshold=1, min_rate=1)
    )
    assert "a quantile_above rule needs buckets" in error_of(
        with_rule(**{k: v for k, v in QUANTILE.items() if k != "buckets"})
    )
    assert "threshold: 1.5 is not a ratio" in error_of(with_rule(**{**RATIO, "threshold": 1.5}))
    assert "a rate is never below 0" in error_of(
        with_rule(kind="rate_below", metric="tool_executions_total", threshold=0)
    )
    assert "must select a part of denominator" in error_of(
        with_rule(**{**RATIO, "numerator": "tool_executions_total"})
    )
    assert "by: status is matched by the numerator" in error_of(with_rule(**RATIO, by=["status"]))
    assert "leave 'service' out" in error_of(with_rule(**RATIO, by=["service"]))
    assert "the summary is static text" in error_of(with_rule(**RATIO, summary="{{ $value }}"))
    assert "services[0].rules[0].for: 15s is shorter than two evaluation intervals" in error_of(
        with_rule(**RATIO, **{"for": "15s"})
    )


def test_recordings_are_named_level_metric_operations() -> None:
    data = starter()
    data["services"][0]["recordings"] = [
        {"name": "api:request_rate:1m", "expr": "sum(rate(http_requests_total[1m]))"}
    ]
    (recording,) = parse_config(data).services[0].recordings
    assert recording.name == "api:request_rate:1m"
    data["services"][0]["recordings"] = [{"name": "api_request_rate", "expr": "up"}]
    error = error_of(data)
    assert "services[0].recordings[0].name: 'api_request_rate' is not a recording-rule name" in (
        error
    )
    assert "level:metric:operations" in error
    data["services"][0]["recordings"] = [{"name": "api:up:max", "expr": "max(up"}]
    assert "services[0].recordings[0].expr: not valid PromQL" in error_of(data)


def test_error_severity_defaults_to_critical() -> None:
    data = starter()
    assert parse_config(data).services[0].alerts.error_severity == "critical"
    data["services"][0]["alerts"]["error_severity"] = "warning"
    assert parse_config(data).services[0].alerts.error_severity == "warning"
    data["services"][0]["alerts"]["error_severity"] = "page"
    assert "services[0].alerts.error_severity" in error_of(data)


def test_scrape_interval_of_a_service() -> None:
    data = starter()
    data["services"][0]["scrape_interval"] = "10s"
    assert parse_config(data).services[0].scrape_interval == "10s"
    data["services"][0]["alerts"]["window"] = "30s"
    error = error_of(data)
    assert "services[0].alerts.window: 30s holds fewer than four scrapes" in error
    assert "services[0].scrape_interval is 10s" in error
    data["services"][0]["alerts"]["window"] = "40s"
    assert parse_config(data).services[0].alerts.window == "40s"
    data["services"][0]["scrape_interval"] = "1m"
    assert "services[0].scrape_interval: 1m is longer than prometheus.scrape_interval" in (
        error_of(data)
    )


@pytest.mark.parametrize(
    ("numerator", "denominator", "loads"),
    [
        ('tool_executions_total{status="error"}', 'tool_executions_total{status!="skipped"}', True),
        ('tool_executions_total{status!="ok"}', "tool_executions_total", True),
        ('tool_executions_total{status="error"}', 'tool_executions_total{status="ok"}', False),
        ('tool_executions_total{status!="ok"}', 'tool_executions_total{status!="ok"}', False),
        ("tool_executions_total", 'tool_executions_total{status="ok"}', False),
    ],
)
def test_a_ratio_of_one_counter_needs_a_part_over_its_whole(
    numerator: str, denominator: str, loads: bool
) -> None:
    data = with_rule(**{**RATIO, "numerator": numerator, "denominator": denominator})
    if loads:
        assert parse_config(data).services[0].rules[0].kind == "ratio"
    else:
        assert "must select a part of denominator" in error_of(data)
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


def test_a_business_gauge_can_take_the_max_over_instances() -> None:
    from glassbox.stack.components import collect

    data = starter()
    service = data["services"][0]
    service["business_metrics"] = [
        {"name": "patterns_stored", "kind": "gauge", "by": ["processor_id"], "aggregate": "max"},
        {"name": "sessions_active", "kind": "gauge"},
    ]
    config = parse_config(data)
    queries = [
        q.expr
        for bundle in collect(config)
        for board in bundle.dashboards
        if board.uid.endswith("-business")
        for row in board.rows
        for panel in row.panels
        for q in panel.queries
    ]
    assert any(q.startswith("max by (processor_id) (patterns_stored{") for q in queries), queries
    assert any(q.startswith("sum (sessions_active{") for q in queries), queries
    service["business_metrics"] = [{"name": "jobs_total", "kind": "counter", "aggregate": "max"}]
    error = error_of(data)
    assert "services[0].business_metrics[0]" in error
    assert "only a gauge" in error
