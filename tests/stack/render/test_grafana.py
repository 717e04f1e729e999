"""The Grafana renderer: dashboard JSON, provisioning YAML and the dashboard lint."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from glassbox.stack.model import Dashboard, Panel, Query, Row, Variable
from glassbox.stack.render.grafana import (
    GRAFANA_IMAGE,
    JAEGER_UID,
    LOKI_UID,
    PROMETHEUS_UID,
    TEMPO_UID,
    dashboard_queries,
    lint_dashboard,
    lint_dashboards,
    render_dashboard,
    render_grafana,
    render_provisioning,
)

SEL = 'service=~"$service", instance=~"$instance", route=~"$route"'
RATE = f"sum by (route) (rate(http_requests_total{{{SEL}}}[$__rate_interval]))"
P95 = (
    "histogram_quantile(0.95, sum by (le) "
    f"(rate(http_request_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))"
)
UP = 'sum(up{service=~"$service", instance=~"$instance"})'


def small_dashboard(uid: str = "glassbox-test") -> Dashboard:
    return Dashboard(
        uid=uid,
        title="Test service",
        description="A small dashboard",
        variables=(
            Variable("service", "service", "http_requests_total"),
            Variable("instance", "instance", "up"),
            Variable("route", "route", 'http_requests_total{service=~"$service"}'),
        ),
        rows=(
            Row(
                "Traffic",
                (
                    Panel(
                        "Request rate",
                        (Query(RATE, "{{route}}"), Query("sum(up)", "up")),
                        unit="reqps",
                        description="Requests per second by route",
                        thresholds=((100.0, "orange"), (200.0, "red")),
                    ),
                    Panel("Targets up", (Query(UP, "up"),), unit="short", kind="stat", width=6),
                    Panel("Latency p95", (Query(P95, "p95"),), unit="s", width=12),
                ),
            ),
            Row(
                "Health",
                (
                    Panel(
                        "Health",
                        (Query("min(health_check_status)", "health"),),
                        kind="stat",
                        thresholds=((0.5, "orange"), (1.0, "green")),
                        width=24,
                        height=4,
                    ),
                ),
            ),
        ),
    )


def rendered(uid: str = "glassbox-test") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render_dashboard(small_dashboard(uid)))
    return data


def panel(data: dict[str, Any], title: str) -> dict[str, Any]:
    return next(p for p in data["panels"] if p["title"] == title)


def dumped(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2)


# --- rendering ------------------------------------------------------------------------


def test_image_is_pinned_to_the_sdk_release() -> None:
    assert GRAFANA_IMAGE == "grafana/grafana:11.6.0"


def test_dashboard_basics() -> None:
    data = rendered()
    assert data["uid"] == "glassbox-test"
    assert data["title"] == "Test service"
    assert data["description"] == "A small dashboard"
    assert data["tags"] == ["glassbox"]
    assert data["time"] == {"from": "now-6h", "to": "now"}
    assert data["refresh"] == "30s"
    assert data["editable"] is False
    assert data["annotations"]["list"][0]["builtIn"] == 1


def test_rows_then_panels_in_order() -> None:
    data = rendered()
    assert [(p["type"], p["title"]) for p in data["panels"]] == [
        ("row", "Traffic"),
        ("timeseries", "Request rate"),
        ("stat", "Targets up"),
        ("timeseries", "Latency p95"),
        ("row", "Health"),
        ("stat", "Health"),
    ]
    assert all(p["collapsed"] is False for p in data["panels"] if p["type"] == "row")
    ids = [p["id"] for p in data["panels"]]
    assert len(set(ids)) == len(ids)


def test_grid_positions_wrap_and_do_not_overlap() -> None:
    data = rendered()
    pos = {p["title"] + "/" + p["type"]: p["gridPos"] for p in data["panels"]}
    assert pos["Traffic/row"] == {"x": 0, "y": 0, "w": 24, "h": 1}
    assert pos["Request rate/timeseries"] == {"x": 0, "y": 1, "w": 12, "h": 8}
    assert pos["Targets up/stat"] == {"x": 12, "y": 1, "w": 6, "h": 8}
    # 18 + 12 > 24: wraps to the next line.
    assert pos["Latency p95/timeseries"] == {"x": 0, "y": 9, "w": 12, "h": 8}
    assert pos["Health/row"] == {"x": 0, "y": 17, "w": 24, "h": 1}
    assert pos["Health/stat"] == {"x": 0, "y": 18, "w": 24, "h": 4}
    boxes = [tuple(p["gridPos"][k] for k in "xywh") for p in data["panels"]]
    for i, (x, y, w, h) in enumerate(boxes):
        assert x + w <= 24
        for ox, oy, ow, oh in boxes[i + 1 :]:
            assert not (x < ox + ow and ox < x + w and y < oy + oh and oy < y + h)


def test_every_datasource_is_the_provisioned_prometheus() -> None:
    data = rendered()
    ref = {"type": "prometheus", "uid": PROMETHEUS_UID}
    for p in data["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == ref
        assert all(t["datasource"] == ref for t in p["targets"])
    assert all(v["datasource"] == ref for v in data["templating"]["list"])


def test_targets_keep_expr_and_legend() -> None:
    targets = panel(rendered(), "Request rate")["targets"]
    assert [(t["refId"], t["expr"], t["legendFormat"]) for t in targets] == [
        ("A", RATE, "{{route}}"),
        ("B", "sum(up)", "up"),
    ]
    assert all(t["range"] is True for t in targets)


def test_histogram_queries_ask_for_exemplars() -> None:
    data = rendered()
    assert panel(data, "Latency p95")["targets"][0]["exemplar"] is True
    assert panel(data, "Request rate")["targets"][0]["exemplar"] is False


def test_units_descriptions_and_thresholds() -> None:
    data = rendered()
    rate = panel(data, "Request rate")
    defaults = rate["fieldConfig"]["defaults"]
    assert defaults["unit"] == "reqps"
    assert rate["description"] == "Requests per second by route"
    assert defaults["thresholds"]["steps"] == [
        {"value": None, "color": "green"},
        {"value": 100.0, "color": "orange"},
        {"value": 200.0, "color": "red"},
    ]
    assert defaults["custom"]["thresholdsStyle"] == {"mode": "dashed"}
    assert panel(data, "Targets up")["fieldConfig"]["defaults"]["unit"] == "short"
    assert panel(data, "Latency p95")["fieldConfig"]["defaults"]["unit"] == "s"
    # Higher is better (top step green): below the first step is red.
    health = next(p for p in data["panels"] if p["title"] == "Health" and p["type"] == "stat")
    assert [s["color"] for s in health["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [
        "red",
        "orange",
        "green",
    ]


def test_timeseries_defaults() -> None:
    ts = panel(rendered(), "Request rate")
    custom = ts["fieldConfig"]["defaults"]["custom"]
    assert custom["drawStyle"] == "line"
    assert custom["showPoints"] == "never"
    assert ts["options"]["tooltip"] == {"mode": "multi", "sort": "desc"}
    assert ts["options"]["legend"]["showLegend"] is True


def test_variables_are_chained() -> None:
    variables = rendered()["templating"]["list"]
    assert [v["name"] for v in variables] == ["service", "instance", "route"]
    assert [v["query"] for v in variables] == [
        "label_values(http_requests_total, service)",
        'label_values(up{service=~"$service"}, instance)',
        # service is already matched by the component's own selector: not added twice
        'label_values(http_requests_total{service=~"$service", instance=~"$instance"}, route)',
    ]
    for v in variables:
        assert v["type"] == "query"
        assert v["multi"] is True
        assert v["includeAll"] is True
        assert v["allValue"] == ".*"
        assert v["refresh"] == 2


def test_render_is_deterministic() -> None:
    first = render_dashboard(small_dashboard())
    assert first == render_dashboard(small_dashboard())
    assert first.endswith("}\n")


def test_panel_wider_than_the_grid_is_refused() -> None:
    bad = Dashboard("u", "t", (Row("r", (Panel("wide", (Query("up"),), width=25),)),))
    with pytest.raises(ValueError, match="wide"):
        render_dashboard(bad)


def test_table_queries_are_instant_tables() -> None:
    d = Dashboard("u", "t", (Row("r", (Panel("tab", (Query("up"), Query("up")), kind="table"),)),))
    tab = panel(json.loads(render_dashboard(d)), "tab")
    assert all(t["instant"] is True and t["format"] == "table" for t in tab["targets"])
    assert [t["id"] for t in tab["transformations"]] == ["merge", "organize"]


def test_render_grafana_files() -> None:
    files = render_grafana([small_dashboard("a"), small_dashboard("b")])
    assert sorted(files) == [
        "grafana/dashboards/a.json",
        "grafana/dashboards/b.json",
        "grafana/provisioning/dashboards/glassbox.yml",
        "grafana/provisioning/datasources/glassbox.yml",
    ]
    assert json.loads(files["grafana/dashboards/b.json"])["uid"] == "b"
    assert lint_dashboards(files) == []
    with pytest.raises(ValueError, match="uid 'a'"):
        render_grafana([small_dashboard("a"), small_dashboard("a")])


# --- provisioning ---------------------------------------------------------------------


def provisioning() -> tuple[dict[str, Any], dict[str, Any]]:
    files = render_provisioning(
        prometheus_url="http://prom:9090",
        loki_url="http://loki:3100",
        tempo_url="http://tempo:3200",
        dashboards_path="/dash",
    )
    assert sorted(files) == [
        "grafana/provisioning/dashboards/glassbox.yml",
        "grafana/provisioning/datasources/glassbox.yml",
    ]
    return (
        yaml.safe_load(files["grafana/provisioning/datasources/glassbox.yml"]),
        yaml.safe_load(files["grafana/provisioning/dashboards/glassbox.yml"]),
    )


def test_datasources_have_fixed_uids_and_prometheus_is_default() -> None:
    ds, _ = provisioning()
    by_uid = {d["uid"]: d for d in ds["datasources"]}
    assert set(by_uid) == {PROMETHEUS_UID, LOKI_UID, TEMPO_UID}
    assert by_uid[PROMETHEUS_UID]["type"] == "prometheus"
    assert by_uid[PROMETHEUS_UID]["url"] == "http://prom:9090"
    assert by_uid[PROMETHEUS_UID]["isDefault"] is True
    assert by_uid[PROMETHEUS_UID]["jsonData"]["timeInterval"] == "15s"
    assert [d for d in ds["datasources"] if d.get("isDefault")] == [by_uid[PROMETHEUS_UID]]
    assert by_uid[LOKI_UID]["type"] == "loki"
    assert by_uid[TEMPO_UID]["type"] == "tempo"


def test_datasources_link_metrics_logs_and_traces() -> None:
    ds, _ = provisioning()
    by_uid = {d["uid"]: d for d in ds["datasources"]}
    assert by_uid[PROMETHEUS_UID]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": TEMPO_UID}
    ]
    (derived,) = by_uid[LOKI_UID]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == TEMPO_UID
    assert derived["url"] == "$${__value.raw}"  # "$$": not an environment variable
    line = '{"event":"request","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"x"}'
    match = re.search(derived["matcherRegex"], line)
    assert match is not None
    assert match[1] == "0af7651916cd43dd8448eb211c80319c"
    tempo = by_uid[TEMPO_UID]["jsonData"]
    assert tempo["tracesToLogsV2"]["datasourceUid"] == LOKI_UID
    assert tempo["tracesToLogsV2"]["filterByTraceID"] is True
    assert tempo["serviceMap"]["datasourceUid"] == PROMETHEUS_UID


def test_jaeger_replaces_tempo_and_keeps_the_links() -> None:
    files = render_provisioning(
        prometheus_url="http://prom:9090",
        loki_url="http://loki:3100",
        tempo_url="http://tempo:3200",
        dashboards_path="/dash",
        traces="jaeger",
        jaeger_url="http://jaeger:16686",
    )
    ds = yaml.safe_load(files["grafana/provisioning/datasources/glassbox.yml"])
    by_uid = {d["uid"]: d for d in ds["datasources"]}
    assert set(by_uid) == {PROMETHEUS_UID, LOKI_UID, JAEGER_UID}
    jaeger = by_uid[JAEGER_UID]
    assert (jaeger["type"], jaeger["url"]) == ("jaeger", "http://jaeger:16686")
    assert jaeger["jsonData"]["tracesToLogsV2"]["datasourceUid"] == LOKI_UID
    assert jaeger["jsonData"]["tracesToLogsV2"]["tags"] == [
        {"key": "service.name", "value": "service"}
    ]
    assert by_uid[PROMETHEUS_UID]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": JAEGER_UID}
    ]
    (derived,) = by_uid[LOKI_UID]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == JAEGER_UID


def test_dashboard_provider() -> None:
    _, providers = provisioning()
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "glassbox"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "/dash"


# --- lint -----------------------------------------------------------------------------


def test_lint_passes_a_clean_dashboard() -> None:
    assert lint_dashboard(render_dashboard(small_dashboard()), where="a.json") == []


def test_lint_invalid_json() -> None:
    (problem,) = lint_dashboard("{not json", where="a.json")
    assert problem.startswith("a.json: invalid JSON")


def test_lint_missing_uid() -> None:
    data = rendered()
    del data["uid"]
    (problem,) = lint_dashboard(dumped(data), where="a.json")
    assert problem.startswith("a.json:")
    assert "uid" in problem


def test_lint_duplicate_uid_across_files() -> None:
    text = render_dashboard(small_dashboard("same"))
    problems = lint_dashboards({"a.json": text, "b.json": text, "x.yml": "not: json"})
    assert problems == [
        'b.json: uid "same" is also used by a.json; Grafana loads only one of them,'
        " so give each dashboard its own uid"
    ]


def test_lint_missing_unit() -> None:
    data = rendered()
    del panel(data, "Targets up")["fieldConfig"]["defaults"]["unit"]
    (problem,) = lint_dashboard(dumped(data), where="a.json")
    assert problem.startswith('a.json: panel "Targets up"')
    assert "no unit" in problem


@pytest.mark.parametrize("function", ["rate", "irate", "increase"])
def test_lint_fixed_rate_window(function: str) -> None:
    data = rendered()
    panel(data, "Request rate")["targets"][1]["expr"] = (
        f'sum({function}(http_requests_total{{route="/x[1m]"}}[5m]))'
    )
    (problem,) = lint_dashboard(dumped(data), where="a.json")
    assert problem.startswith('a.json: panel "Request rate": query B')
    assert f"{function}() over [5m]" in problem


def test_lint_rate_window_ignores_strings_and_subquery_steps() -> None:
    data = rendered()
    panel(data, "Request rate")["targets"][1]["expr"] = (
        'max_over_time(sum(rate(x{a="rate(y[5m])"}[$__rate_interval]))[1h:])'
    )
    assert lint_dashboard(dumped(data), where="a.json") == []


def test_lint_unknown_datasource_uid() -> None:
    data = rendered()
    panel(data, "Latency p95")["targets"][0]["datasource"]["uid"] = "P1809F7CD0C75ACF3"
    (problem,) = lint_dashboard(dumped(data), where="a.json")
    assert problem.startswith('a.json: panel "Latency p95": query A')
    assert '"P1809F7CD0C75ACF3" is not provisioned' in problem


def test_lint_datasource_variable_is_allowed() -> None:
    data = rendered()
    data["templating"]["list"].append({"type": "datasource", "name": "ds", "query": "prometheus"})
    panel(data, "Latency p95")["datasource"] = {"type": "prometheus", "uid": "${ds}"}
    assert lint_dashboard(dumped(data), where="a.json") == []


def test_lint_overlapping_panels() -> None:
    data = rendered()
    panel(data, "Targets up")["gridPos"]["x"] = 6
    (problem,) = lint_dashboard(dumped(data), where="a.json")
    assert problem.startswith('a.json: panel "Targets up"')
    assert 'overlaps panel "Request rate"' in problem


def test_lint_panel_off_the_grid() -> None:
    data = rendered()
    panel(data, "Targets up")["gridPos"]["x"] = 20
    (problem,) = lint_dashboard(dumped(data), where="a.json")
    assert 'panel "Targets up"' in problem
    assert "24-column grid" in problem


def test_lint_undefined_variable() -> None:
    data = rendered()
    panel(data, "Targets up")["targets"][0]["expr"] = (
        'sum(up{job="$job", env="${env:regex}"}) * $__range_s'
    )
    problems = lint_dashboard(dumped(data), where="a.json")
    assert len(problems) == 2
    assert all(p.startswith('a.json: panel "Targets up": query A') for p in problems)
    assert "$job" in problems[0]
    assert "$env" in problems[1]


def test_lint_builtin_typo() -> None:
    data = rendered()
    panel(data, "Request rate")["targets"][0]["expr"] = RATE.replace(
        "$__rate_interval", "$__rate_intreval"
    )
    problems = lint_dashboard(dumped(data), where="a.json")
    assert any("$__rate_intreval is not a Grafana built-in" in p for p in problems)


def test_dashboard_queries() -> None:
    queries = dashboard_queries(render_dashboard(small_dashboard()))
    assert queries == [
        ("Request rate", RATE),
        ("Request rate", "sum(up)"),
        ("Targets up", UP),
        ("Latency p95", P95),
        ("Health", "min(health_check_status)"),
    ]


def test_dashboard_queries_skip_other_datasources() -> None:
    data = rendered()
    panel(data, "Latency p95")["targets"][0]["datasource"] = {"type": "loki", "uid": LOKI_UID}
    assert ("Latency p95", P95) not in dashboard_queries(dumped(data))
