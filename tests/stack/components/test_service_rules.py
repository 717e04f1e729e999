"""[[services.rules]], [[services.recordings]] and BusinessLabelOverflow: rules, cases, panels.

The stack built from them passes verify (each case is run by promtool), and a rule
whose threshold or guard is changed by hand fails its own case.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from glassbox.exceptions import ConfigurationError
from glassbox.stack.build import render_stack, write_stack
from glassbox.stack.components import collect
from glassbox.stack.config import StackConfig, parse_config
from glassbox.stack.model import Alert, Bundle, Dashboard
from glassbox.stack.verify import verify_stack

STARTER: dict[str, Any] = tomllib.loads(
    files("glassbox.stack").joinpath("starter.toml").read_text(encoding="utf-8")
)

BUSINESS = [
    {"name": "tool_executions_total", "kind": "counter", "by": ["tool_name", "status"]},
    {"name": "cache_requests_total", "kind": "counter", "by": ["result"]},
    {"name": "documents_ingested_total", "kind": "counter"},
    {"name": "llm_request_duration_seconds", "kind": "histogram", "by": ["provider"]},
]
LLM_BUCKETS = [0.5, 1, 2.5, 5, 10, 30]
RULES: list[dict[str, Any]] = [
    {
        "name": "ToolFailureRatioHigh",
        "kind": "ratio",
        "severity": "warning",
        "for": "10m",
        "numerator": 'tool_executions_total{status="error"}',
        "denominator": "tool_executions_total",
        "threshold": 0.1,
        "min_rate": 0.05,
        "by": ["tool_name"],
    },
    {
        "name": "CacheMissRatioHigh",
        "kind": "ratio",
        "severity": "info",
        "for": "15m",
        "summary": "The cache misses too often",
        "numerator": 'cache_requests_total{result="miss"}',
        "denominator": 'cache_requests_total{result!="bypass"}',
        "threshold": 0.5,
    },
    {
        "name": "IngestionStopped",
        "kind": "rate_below",
        "severity": "critical",
        "for": "10m",
        "metric": "documents_ingested_total",
        "threshold": 0.5,
    },
    {
        "name": "ToolStopped",
        "kind": "rate_below",
        "severity": "warning",
        "for": "10m",
        "metric": 'tool_executions_total{status!="error"}',
        "threshold": 0.01,
        "by": ["tool_name"],
    },
    {
        "name": "RouteServerErrors",
        "kind": "rate_above",
        "severity": "warning",
        "for": "5m",
        "metric": 'http_requests_total{status="500"}',
        "threshold": 2,
        "by": ["route"],
    },
    {
        "name": "RouteRateHigh",
        "kind": "rate_above",
        "severity": "info",
        "for": "5m",
        "metric": "http_requests_total",
        "threshold": 100,
        "by": ["route"],
    },
    {
        "name": "ToolErrorsAtAll",
        "kind": "rate_above",
        "severity": "info",
        "for": "5m",
        "metric": 'tool_executions_total{status="error"}',
        "threshold": 0,
    },
    {
        "name": "LlmLatencyHigh",
        "kind": "quantile_above",
        "severity": "warning",
        "for": "10m",
        "metric": "llm_request_duration_seconds",
        "quantile": 0.95,
        "threshold": 2.5,
        "buckets": LLM_BUCKETS,
        "min_rate": 0.05,
        "by": ["provider"],
    },
    {
        "name": "OpenAiTailSlow",
        "kind": "quantile_above",
        "severity": "info",
        "for": "10m",
        "metric": 'llm_request_duration_seconds{provider="openai"}',
        "quantile": 0.999,
        "threshold": 0.5,
        "buckets": LLM_BUCKETS,
    },
]


def config_data(**service: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(STARTER))
    data["services"][0].update(
        {
            "scrape_interval": "10s",
            "business_metrics": BUSINESS,
            "rules": RULES,
            "recordings": [
                {
                    "name": "api:request_rate:1m",
                    "expr": 'sum by (service) (rate(http_requests_total{service="shop"}[1m]))',
                }
            ],
            **service,
        }
    )
    data["services"][0]["alerts"]["error_severity"] = "warning"
    return data


@pytest.fixture(scope="module")
def config() -> StackConfig:
    return parse_config(config_data())


@pytest.fixture(scope="module")
def bundle(config: StackConfig) -> Bundle:
    return next(b for b in collect(config) if b.name == "service-shop")


def alert(bundle: Bundle, name: str) -> Alert:
    return next(a for a in bundle.alerts if a.name == name)


def recorded(bundle: Bundle) -> dict[str, str]:
    records = [r for g in bundle.groups for r in g.recordings]
    names = [r.record for r in records]
    assert len(names) == len(set(names)), "a recording rule is written twice"
    return {r.record: r.expr for r in records}


def test_a_ratio_records_both_rates_grouped_alike(bundle: Bundle) -> None:
    records = recorded(bundle)
    assert records["service_tool_name:tool_executions_status_error:rate5m"] == (
        "sum by (service, tool_name)"
        ' (rate(tool_executions_total{service="shop",status="error"}[5m]))'
    )
    assert records["service_tool_name:tool_executions:rate5m"] == (
        'sum by (service, tool_name) (rate(tool_executions_total{service="shop"}[5m]))'
    )
    ratio = alert(bundle, "ToolFailureRatioHigh")
    assert ratio.expr == (
        'service_tool_name:tool_executions_status_error:rate5m{service="shop"}'
        ' / service_tool_name:tool_executions:rate5m{service="shop"} > 0.1'
        ' and on (service, tool_name) service_tool_name:tool_executions:rate5m{service="shop"}'
        " >= 0.05"
    )
    assert (ratio.severity, ratio.for_, ratio.expr_labels) == (
        "warning",
        "10m",
        ("service", "tool_name"),
    )
    assert [c.name for c in ratio.cases] == [
        "ratio above the threshold",
        "ratio below the threshold",
        "a trickle of events below min_rate does not fire",
    ]
    fired = ratio.cases[0].firing[0]
    assert dict(fired.labels) == {"service": "shop", "tool_name": "a"}
    assert fired.value == pytest.approx(0.55)
    cache = alert(bundle, "CacheMissRatioHigh")
    assert cache.summary == "The cache misses too often"
    assert "service:cache_requests_result_not_bypass:rate5m" in cache.expr
    assert " and on " not in cache.expr  # no min_rate, no guard and no trickle case
    assert len(cache.cases) == 2


def test_rates_reuse_the_services_own_recordings(bundle: Bundle) -> None:
    records = recorded(bundle)
    assert alert(bundle, "RouteRateHigh").expr == (
        'service_route:http_requests:rate5m{service="shop"} > 100.0'
    )
    assert "service_route:http_requests:rate5m" in records  # once, the RED recording
    assert records["service_route:http_requests_status_500:rate5m"] == (
        'sum by (service, route) (rate(http_requests_total{service="shop",status="500"}[5m]))'
    )


def test_rate_above_zero_fires_on_any_increase(bundle: Bundle) -> None:
    errors = alert(bundle, "ToolErrorsAtAll")
    assert errors.expr == 'service:tool_executions_status_error:rate5m{service="shop"} > 0.0'
    assert errors.cases[0].firing[0].value == 1.0
    assert errors.cases[1].series[0].values.startswith("0+0x")


def test_rate_below_fires_on_a_stop_and_without_by_on_absence(bundle: Bundle) -> None:
    stopped = alert(bundle, "IngestionStopped")
    assert stopped.expr == (
        'service:documents_ingested:rate5m{service="shop"} < 0.5'
        ' or absent(service:documents_ingested:rate5m{service="shop"}) * 0'
    )
    assert [c.name for c in stopped.cases] == [
        "the counter stops increasing",
        "rate above the threshold",
        "the counter has no series",
    ]
    assert [e.value for c in stopped.cases for e in c.firing] == [0, 0]
    grouped = alert(bundle, "ToolStopped")
    assert "absent" not in grouped.expr
    assert [c.name for c in grouped.cases] == [
        "the counter stops increasing",
        "rate above the threshold",
    ]
    series = grouped.cases[0].series[0].series
    assert 'status="other"' in series  # satisfies status!="error"
    assert 'tool_name="a"' in series


def test_a_quantile_rule_reads_its_histogram(bundle: Bundle) -> None:
    records = recorded(bundle)
    assert records["service_provider:llm_request_duration_seconds:p95_5m"] == (
        "histogram_quantile(0.95, sum by (service, provider, le)"
        ' (rate(llm_request_duration_seconds_bucket{service="shop"}[5m])))'
    )
    slow = alert(bundle, "LlmLatencyHigh")
    assert "service_provider:llm_request_duration_seconds_count:rate5m" in slow.expr
    assert slow.cases[0].firing[0].value == pytest.approx(2.5 + 2.5 * 0.95)
    buckets = [s.series for s in slow.cases[0].series if "_bucket" in s.series]
    assert any('le="2.5"' in s for s in buckets)
    assert any('le="+Inf"' in s for s in buckets)
    tail = alert(bundle, "OpenAiTailSlow")
    assert tail.expr == 'service:llm_request_duration_seconds:p99_9_5m{service="shop"} > 0.5'
    assert tail.summary == "p99.9 of llm_request_duration_seconds is above 0.5 s"


def test_user_recordings_join_the_recording_group(bundle: Bundle) -> None:
    group = next(g for g in bundle.groups if g.name == "shop-recording")
    assert group.recordings[-1].record == "api:request_rate:1m"


def test_error_severity_and_scrape_interval(config: StackConfig, bundle: Bundle) -> None:
    assert alert(bundle, "ServiceHighErrorRatio").severity == "warning"
    (job,) = bundle.jobs
    assert job.scrape_interval == "10s"
    prometheus = yaml.safe_load(render_stack(config)["prometheus/prometheus.yml"])
    shop = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "shop")
    assert shop["scrape_interval"] == "10s"


def business_dashboard(dashboards: tuple[Dashboard, ...]) -> Dashboard | None:
    return next((d for d in dashboards if d.uid.endswith("-business")), None)


def test_business_metrics_bring_the_label_overflow_alert_and_panel(bundle: Bundle) -> None:
    overflow = alert(bundle, "BusinessLabelOverflow")
    assert overflow.expr == (
        "sum by (service, metric, label)"
        ' (increase(glassbox_label_overflow_total{service="shop"}[15m])) > 0'
    )
    assert (overflow.severity, overflow.for_) == ("warning", "15m")
    assert dict(overflow.cases[0].firing[0].labels) == {
        "service": "shop",
        "metric": "orders_total",
        "label": "customer_id",
    }
    assert overflow.cases[1].firing == ()
    board = business_dashboard(bundle.dashboards)
    assert board is not None
    panel = board.rows[0].panels[-1]
    assert panel.title == "Label values folded into __overflow__"
    assert "glassbox_label_overflow_total" in panel.queries[0].expr
    assert bundle.metrics["glassbox_label_overflow_total"] == "counter"
    plain = next(b for b in collect(parse_config(STARTER)) if b.name == "service-shop")
    assert "BusinessLabelOverflow" not in {a.name for a in plain.alerts}
    assert business_dashboard(plain.dashboards) is None


def test_generated_names_cannot_be_taken() -> None:
    clash = {**RULES[2], "name": "ServiceDown"}
    with pytest.raises(ConfigurationError, match=r"services\[0\]\.rules\[0\]\.name: ServiceDown"):
        collect(parse_config(config_data(rules=[clash])))
    taken = [{"name": "service:http_requests:rate5m", "expr": "sum by (service) (up)"}]
    with pytest.raises(ConfigurationError, match="recording rule glassbox generates"):
        collect(parse_config(config_data(recordings=taken)))
    twins = [
        {**RULES[4], "name": "A", "metric": 'http_requests_total{status="a-b"}'},
        {**RULES[4], "name": "B", "metric": 'http_requests_total{status="a_b"}'},
    ]
    with pytest.raises(ConfigurationError, match="is already recorded as"):
        collect(parse_config(config_data(rules=twins)))


needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("amtool") is None,
    reason="promtool and amtool come from ./scripts/setup.sh",
)


@pytest.fixture(scope="module")
def built(config: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rules") / "monitoring"
    write_stack(render_stack(config), directory)
    return directory


@needs_promtool
def test_the_stack_with_custom_rules_verifies(config: StackConfig, built: Path) -> None:
    steps = verify_stack(config, built)
    assert {s.name: s.problems for s in steps if not s.ok} == {}


@needs_promtool
def test_a_hand_changed_threshold_or_guard_fails_its_case(
    config: StackConfig, built: Path, tmp_path: Path
) -> None:
    stack = tmp_path / "monitoring"
    shutil.copytree(built, stack)
    rules = stack / "prometheus/rules/service-shop.yml"
    doc = yaml.safe_load(rules.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ToolFailureRatioHigh":
                rule["expr"] = rule["expr"].replace(" >= 0.05", " >= 0")
            elif rule.get("alert") == "IngestionStopped":
                rule["expr"] = rule["expr"].replace("< 0.5", "< 0")
    rules.write_text(yaml.safe_dump(doc))
    problems = {s.name: s.problems for s in verify_stack(config, stack) if not s.ok}
    (output,) = next(v for k, v in problems.items() if k.startswith("promtool test rules"))
    assert "ToolFailureRatioHigh: a trickle of events below min_rate does not fire" in output
    assert "IngestionStopped: the counter stops increasing" in output
