"""PromQL lint: each rule of the generated-rules guidelines catches its mistake."""

from __future__ import annotations

import pytest

from glassbox.stack.config import parse_config
from glassbox.stack.lint import lint_alert, lint_expr, lint_recording, vocabulary

CONFIG = parse_config(
    {
        "services": [{"name": "api", "targets": ["127.0.0.1:8000"]}],
        "receivers": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/"}],
    }
)
VOCAB = vocabulary(
    CONFIG,
    {
        "http_requests_total": "counter",
        "http_request_duration_seconds": "histogram",
        "http_requests_in_progress": "gauge",
        "node_load5": "gauge",
        "node_cpu_seconds_total": "counter",
        "up": "gauge",
    },
    {"service:http_requests:rate5m"},
)


@pytest.mark.parametrize(
    "expr",
    [
        'sum by (service) (rate(http_requests_total{status=~"5.."}[5m]))'
        " / sum by (service) (rate(http_requests_total[5m])) > 0.05",
        "histogram_quantile(0.95, sum by (service, le) (rate("
        'http_request_duration_seconds_bucket{service="api"}[5m]))) > 0.5',
        'sum by (service) (rate(http_request_duration_seconds_bucket{le="1.0"}[5m]))',
        "max by (instance) (node_load5) / count by (instance) (node_cpu_seconds_total) > 2",
        "max by (service) (up) == 0 and on (service) max by (service) (up) >= 0",
        'absent(up{service="api"})',
        "1 - max by (instance) (node_load5) / max by (instance) (node_load5) > 0.9",
    ],
)
def test_sound_expressions_pass(expr: str) -> None:
    assert lint_expr(expr, VOCAB, where="r") == []


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        # the guides' mistake: node_load5 keeps job, the count does not
        (
            "max by (instance, job) (node_load5) / count by (instance) (node_cpu_seconds_total)",
            "carry different labels, (instance, job) and (instance)",
        ),
        ("node_load5 / node_load5", "cannot prove both sides of '/'"),
        ("rate(node_load5[5m]) > 1", "rate() of node_load5, which is a gauge"),
        ("rate(http_requests_in_progress[5m])", "which is a gauge"),
        ("sum(rate(http_request_total[5m]))", "reads http_request_total, which no"),
        ('rate(http_request_duration_seconds_bucket{le="1"}[5m])', 'le="1" on'),
        (
            "histogram_quantile(0.9, sum by (service) (rate("
            "http_request_duration_seconds_bucket[5m])))",
            "without 'le'",
        ),
        (
            "max by (service) (up) > 0 and on (route) max by (service) (up)",
            "the left side only carries (service)",
        ),
        ("sum(rate(http_requests_total[5m]) / ", "not valid PromQL"),
    ],
)
def test_mistakes_are_named(expr: str, message: str) -> None:
    problems = lint_expr(expr, VOCAB, where="rules/x.yml g/R")
    assert any(message in p for p in problems), problems
    assert all(p.startswith("rules/x.yml g/R: ") for p in problems)


def test_recorded_series_carry_their_rules_labels() -> None:
    vocab = vocabulary(CONFIG, {"http_requests_total": "counter"}, {"a:x:rate5m", "b:x:rate5m"})
    lint_recording(
        "sum by (service) (rate(http_requests_total[5m]))",
        vocab,
        where="r",
        record="a:x:rate5m",
        labels=["slo"],
    )
    lint_recording(
        "sum by (service) (rate(http_requests_total[5m]))", vocab, where="r", record="b:x:rate5m"
    )
    assert vocab.recorded_labels["a:x:rate5m"] == {"service", "slo"}
    assert lint_expr("a:x:rate5m / a:x:rate5m", vocab, where="r") == []
    assert "different labels" in lint_expr("a:x:rate5m / b:x:rate5m", vocab, where="r")[0]


def test_alert_guidelines() -> None:
    good = {
        "alert": "A",
        "expr": "up == 0",
        "for": "2m",
        "labels": {"severity": "critical"},
        "annotations": {"summary": "s", "description": "d {{ $value }}", "runbook_url": "u"},
    }
    assert lint_alert(good, where="A", evaluation_interval="15s") == []
    bad = {
        "alert": "A",
        "expr": "up == 0",
        "for": "15s",
        "labels": {"severity": "page", "value": "{{ $value }}"},
        "annotations": {"summary": "{{ $labels.x }}"},
    }
    problems = "\n".join(lint_alert(bad, where="A", evaluation_interval="15s"))
    for expected in (
        "severity label must be",
        "label value is templated",
        "shorter than two evaluation intervals",
        "summary annotation must be static",
        "description annotation is missing",
        "runbook_url annotation is missing",
    ):
        assert expected in problems, (expected, problems)
