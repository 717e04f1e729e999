"""Grafana: dashboards (JSON, built with grafana-foundation-sdk) and provisioning files.

Dashboards target the Grafana release in :data:`GRAFANA_IMAGE`. Every panel and
variable reads the datasource by its fixed uid (:data:`PROMETHEUS_UID`, ...), and the
provisioning file creates the datasources with exactly those uids, linked to each
other: metric exemplars and log lines to traces, traces to logs and to the service map.
:func:`lint_dashboard` / :func:`lint_dashboards` check any dashboard JSON for the
mistakes that render silently wrong in Grafana; :func:`dashboard_queries` lists the
PromQL of a dashboard for checks against Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import yaml
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import gauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prometheus_m

from glassbox.stack.model import Dashboard, Panel, Query, Variable

__all__ = [
    "GRAFANA_IMAGE",
    "JAEGER_UID",
    "LOKI_SERVICE_LABEL",
    "LOKI_UID",
    "PROMETHEUS_UID",
    "TEMPO_UID",
    "dashboard_queries",
    "lint_dashboard",
    "lint_dashboards",
    "render_dashboard",
    "render_grafana",
    "render_provisioning",
]

GRAFANA_IMAGE = "grafana/grafana:11.6.0"
PROMETHEUS_UID = "glassbox-prometheus"
LOKI_UID = "glassbox-loki"
TEMPO_UID = "glassbox-tempo"
JAEGER_UID = "glassbox-jaeger"
#: The Loki stream label holding the service name (Tempo's trace-to-logs filters on it).
LOKI_SERVICE_LABEL = "service"

DATASOURCES_FILE = "grafana/provisioning/datasources/glassbox.yml"
DASHBOARDS_FILE = "grafana/provisioning/dashboards/glassbox.yml"
DASHBOARDS_DIR = "grafana/dashboards"

_GRID_COLUMNS = 24
_PROMETHEUS = dash_m.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
_PanelBuilder = timeseries.Panel | stat.Panel | gauge.Panel | table.Panel

# ---------------------------------------------------------------------------------------
# Dashboards
# ---------------------------------------------------------------------------------------


def render_dashboard(dashboard: Dashboard) -> str:
    """The Grafana JSON of one dashboard: pretty, newline-terminated, same input same bytes.

    Rows are expanded row panels followed by their panels, laid out left to right on the
    24-column grid and wrapped when a panel does not fit. Queries pass through verbatim.
    Variables are chained: each one's query is filtered by every earlier variable whose
    label its selector does not already match, so that label must exist on its metric.
    Threshold steps sit above a base colour: red if the top step is green (higher is
    better), else green. Raises ValueError for a panel that does not fit the grid or a
    variable metric that is not a series selector.
    """
    builder = (
        dash_b.Dashboard(dashboard.title)
        .uid(dashboard.uid)
        .tags(list(dashboard.tags))
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .annotation(
            dash_b.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(dash_m.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .link(
            dash_b.DashboardLink("glassbox dashboards")
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags(["glassbox"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    if dashboard.description:
        builder.description(dashboard.description)
    for index, variable in enumerate(dashboard.variables):
        builder.with_variable(_variable(variable, dashboard.variables[:index]))

    panel_id = 0
    y = 0
    for row in dashboard.rows:
        panel_id += 1
        builder.with_row(
            dash_b.Row(row.title).id(panel_id).grid_pos(dash_m.GridPos(x=0, y=y, w=24, h=1))
        )
        y += 1
        x = line_height = 0
        for panel in row.panels:
            if not 1 <= panel.width <= _GRID_COLUMNS or panel.height < 1:
                raise ValueError(
                    f"dashboard {dashboard.uid!r}, panel {panel.title!r}: width must be 1..24"
                    f" and height at least 1 (got width={panel.width}, height={panel.height})"
                )
            if x + panel.width > _GRID_COLUMNS:
                x, y, line_height = 0, y + line_height, 0
            panel_id += 1
            pos = dash_m.GridPos(x=x, y=y, w=panel.width, h=panel.height)
            builder.with_panel(_panel(panel, panel_id, pos))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return json.dumps(builder.build(), cls=JSONEncoder, indent=2) + "\n"


def _variable(variable: Variable, earlier: Sequence[Variable]) -> dash_b.QueryVariable:
    selector = _chain(variable.metric, earlier)
    builder = (
        dash_b.QueryVariable(variable.name)
        .query(f"label_values({selector}, {variable.label})")
        .datasource(_PROMETHEUS)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(variable.multi)
        .include_all(variable.include_all)
        .allow_custom_value(False)
    )
    if variable.include_all:
        value: str | list[str] = ["$__all"] if variable.multi else "$__all"
        text: str | list[str] = ["All"] if variable.multi else "All"
        current = dash_m.VariableOption(selected=True, text=text, value=value)
        builder.all_value(".*").current(current)
    return builder


_SELECTOR_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{(?P<body>.*)\})?\s*$", re.S
)
_MATCHER_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"')


def _chain(metric: str, earlier: Sequence[Variable]) -> str:
    """``metric`` with ``label=~"$name"`` added for each earlier variable not yet matched."""
    match = _SELECTOR_RE.match(metric)
    if match is None or not (match["name"] or match["body"] is not None):
        raise ValueError(
            f"variable metric {metric!r} is not a series selector: use 'metric' or"
            " 'metric{label=\"value\"}'"
        )
    body = (match["body"] or "").strip().rstrip(",").strip()
    matched = set(_MATCHER_RE.findall(body))
    extra = [
        f'{v.label}=~"${v.name}"'
        for v in earlier
        if v.label not in matched and f"${v.name}" not in body and f"${{{v.name}}}" not in body
    ]
    if not extra:
        return metric.strip()
    matchers = ", ".join([body, *extra] if body else extra)
    return f"{match['name'] or ''}{{{matchers}}}"


def _base_colour(panel: Panel) -> str:
    # Higher is better when the top step is green (health, budget left): below it is red.
    if panel.thresholds and sorted(panel.thresholds)[-1][1] == "green":
        return "red"
    return "green"


def _thresholds(panel: Panel) -> dash_b.ThresholdsConfig:
    steps = [dash_m.Threshold(value=None, color=_base_colour(panel))]
    steps += [dash_m.Threshold(value=v, color=colour) for v, colour in sorted(panel.thresholds)]
    return dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE).steps(steps)


def _ref_id(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _target(query: Query, index: int, kind: str) -> prometheus.Dataquery:
    target = (
        prometheus.Dataquery()
        .expr(query.expr)
        .ref_id(_ref_id(index))
        .legend_format(query.legend or "__auto")
        .datasource(_PROMETHEUS)
        .editor_mode(prometheus_m.QueryEditorMode.CODE)
    )
    if kind == "table":
        target.instant().format(prometheus_m.PromQueryFormat.TABLE)
    else:
        target.range().format(prometheus_m.PromQueryFormat.TIME_SERIES)
    if kind == "timeseries":
        # Histogram queries carry exemplars; Grafana links them to Tempo by trace_id.
        target.exemplar("_bucket" in query.expr)
    return target


def _panel(panel: Panel, panel_id: int, pos: dash_m.GridPos) -> _PanelBuilder:
    builder: _PanelBuilder
    if panel.kind == "timeseries":
        builder = (
            timeseries.Panel()
            .draw_style(common_m.GraphDrawStyle.LINE)
            .line_interpolation(common_m.LineInterpolation.LINEAR)
            .line_width(1)
            .fill_opacity(10)
            .show_points(common_m.VisibilityMode.NEVER)
            .span_nulls(False)
            .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.PALETTE_CLASSIC))
            .thresholds_style(
                common_b.GraphThresholdsStyleConfig().mode(
                    common_m.GraphThresholdsStyleMode.DASHED
                    if panel.thresholds
                    else common_m.GraphThresholdsStyleMode.OFF
                )
            )
            .legend(
                common_b.VizLegendOptions()
                .display_mode(common_m.LegendDisplayMode.LIST)
                .placement(common_m.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(
                common_b.VizTooltipOptions()
                .mode(common_m.TooltipDisplayMode.MULTI)
                .sort(common_m.SortOrder.DESCENDING)
            )
        )
    elif panel.kind == "stat":
        builder = (
            stat.Panel()
            .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .graph_mode(common_m.BigValueGraphMode.AREA)
            .color_mode(
                common_m.BigValueColorMode.VALUE
                if panel.thresholds
                else common_m.BigValueColorMode.NONE
            )
            .text_mode(common_m.BigValueTextMode.AUTO)
            .justify_mode(common_m.BigValueJustifyMode.AUTO)
            .orientation(common_m.VizOrientation.AUTO)
            .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
        )
    elif panel.kind == "gauge":
        builder = (
            gauge.Panel()
            .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .show_threshold_markers(True)
            .show_threshold_labels(False)
            .orientation(common_m.VizOrientation.AUTO)
            .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
        )
        bounds = {"percentunit": (0.0, 1.0), "percent": (0.0, 100.0)}.get(panel.unit)
        if bounds is not None:
            builder.min(bounds[0]).max(bounds[1])
    else:
        builder = table.Panel().show_header(True).cell_height(common_m.TableCellHeight.SM)
        if len(panel.queries) > 1:
            builder.with_transformation(dash_m.DataTransformerConfig(id_val="merge", options={}))
        builder.with_transformation(
            dash_m.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True}}
            )
        )
    builder.id(panel_id).title(panel.title).datasource(_PROMETHEUS).grid_pos(pos)
    builder.unit(panel.unit).thresholds(_thresholds(panel))
    if panel.description:
        builder.description(panel.description)
    for index, query in enumerate(panel.queries):
        builder.with_target(_target(query, index, panel.kind))
    return builder


# ---------------------------------------------------------------------------------------
# Provisioning
# ---------------------------------------------------------------------------------------


def _traces_datasource(traces: Literal["tempo", "jaeger"], url: str) -> dict[str, Any]:
    """Tempo or Jaeger, each linking a span to its service's logs around the span."""
    to_logs = {
        "datasourceUid": LOKI_UID,
        "spanStartTimeShift": "-5m",
        "spanEndTimeShift": "5m",
        "filterByTraceID": True,
        "filterBySpanID": False,
        "tags": [{"key": "service.name", "value": LOKI_SERVICE_LABEL}],
    }
    if traces == "jaeger":
        return {
            "name": "Jaeger",
            "type": "jaeger",
            "uid": JAEGER_UID,
            "access": "proxy",
            "url": url,
            "editable": False,
            "jsonData": {"tracesToLogsV2": to_logs, "nodeGraph": {"enabled": True}},
        }
    return {
        "name": "Tempo",
        "type": "tempo",
        "uid": TEMPO_UID,
        "access": "proxy",
        "url": url,
        "editable": False,
        "jsonData": {
            "tracesToLogsV2": to_logs,
            "serviceMap": {"datasourceUid": PROMETHEUS_UID},
            "nodeGraph": {"enabled": True},
            "search": {"hide": False},
        },
    }


def render_provisioning(
    *,
    prometheus_url: str,
    loki_url: str,
    tempo_url: str,
    dashboards_path: str,
    scrape_interval: str = "15s",
    traces: Literal["tempo", "jaeger"] = "tempo",
    jaeger_url: str = "http://jaeger:16686",
) -> dict[str, str]:
    """The datasource and dashboard-provider provisioning files, relative path → YAML.

    ``dashboards_path`` is where the dashboard JSON files are mounted in the container;
    ``scrape_interval`` must be Prometheus' own, as ``$__rate_interval`` is derived from it.
    ``traces`` picks the trace store (Tempo at ``tempo_url`` or Jaeger at ``jaeger_url``)
    that exemplars and log lines link to.
    """
    traces_uid = JAEGER_UID if traces == "jaeger" else TEMPO_UID
    datasources = {
        "apiVersion": 1,
        "prune": True,
        "datasources": [
            {
                "name": "Prometheus",
                "type": "prometheus",
                "uid": PROMETHEUS_UID,
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "httpMethod": "POST",
                    "timeInterval": scrape_interval,
                    "exemplarTraceIdDestinations": [
                        {"name": "trace_id", "datasourceUid": traces_uid},
                    ],
                },
            },
            {
                "name": "Loki",
                "type": "loki",
                "uid": LOKI_UID,
                "access": "proxy",
                "url": loki_url,
                "editable": False,
                "jsonData": {
                    "derivedFields": [
                        {
                            "name": "trace_id",
                            "matcherType": "regex",
                            "matcherRegex": r'"trace_id":\s*"([0-9a-f]{32})"',
                            # "$$" escapes provisioning's environment-variable expansion.
                            "url": "$${__value.raw}",
                            "datasourceUid": traces_uid,
                            "urlDisplayLabel": "View trace",
                        },
                    ],
                },
            },
            _traces_datasource(traces, jaeger_url if traces == "jaeger" else tempo_url),
        ],
    }
    providers = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "glassbox",
                "orgId": 1,
                "folder": "glassbox",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": dashboards_path, "foldersFromFilesStructure": False},
            }
        ],
    }
    header = "# Generated by glassbox; edit glassbox.toml and regenerate instead.\n"
    return {
        DATASOURCES_FILE: header + yaml.safe_dump(datasources, sort_keys=False),
        DASHBOARDS_FILE: header + yaml.safe_dump(providers, sort_keys=False),
    }


def render_grafana(
    dashboards: Sequence[Dashboard],
    *,
    prometheus_url: str = "http://prometheus:9090",
    loki_url: str = "http://loki:3100",
    tempo_url: str = "http://tempo:3200",
    dashboards_path: str = "/var/lib/grafana/dashboards/glassbox",
    scrape_interval: str = "15s",
    traces: Literal["tempo", "jaeger"] = "tempo",
    jaeger_url: str = "http://jaeger:16686",
) -> dict[str, str]:
    """Every Grafana file, path → text: provisioning plus ``grafana/dashboards/<uid>.json``.

    Mount ``grafana/dashboards`` at ``dashboards_path``. Raises ValueError on duplicate uids.
    """
    files = render_provisioning(
        prometheus_url=prometheus_url,
        loki_url=loki_url,
        tempo_url=tempo_url,
        dashboards_path=dashboards_path,
        scrape_interval=scrape_interval,
        traces=traces,
        jaeger_url=jaeger_url,
    )
    for dashboard in dashboards:
        path = f"{DASHBOARDS_DIR}/{dashboard.uid}.json"
        if path in files:
            raise ValueError(f"two dashboards have the uid {dashboard.uid!r}; uids must be unique")
        files[path] = render_dashboard(dashboard)
    return files


# ---------------------------------------------------------------------------------------
# Lint
# ---------------------------------------------------------------------------------------

_PROVISIONED_UIDS = (PROMETHEUS_UID, LOKI_UID, TEMPO_UID, JAEGER_UID)
#: Pseudo-datasources every Grafana has.
_BUILTIN_UIDS = frozenset({"-- Grafana --", "grafana", "-- Mixed --", "-- Dashboard --"})
_UNIT_KINDS = frozenset({"timeseries", "stat", "gauge", "bargauge"})
_BUILTIN_VARIABLES = frozenset(
    {
        "__interval",
        "__interval_ms",
        "__rate_interval",
        "__rate_interval_ms",
        "__range",
        "__range_s",
        "__range_ms",
        "__from",
        "__to",
        "__dashboard",
        "__user",
        "__org",
        "__timezone",
        "__auto",
    }
)
_VARIABLE_REF_RE = re.compile(r"\$\{(\w+)(?:[:.][^}]*)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")
_RANGE_FUNCTION_RE = re.compile(r"\b(rate|irate|increase)\s*\(")
_RATE_WINDOWS = frozenset({"$__rate_interval", "${__rate_interval}"})
_UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}\Z")


def lint_dashboard(text: str, *, where: str) -> list[str]:
    """Problems in one dashboard's JSON, each naming ``where``, the panel and the fix.

    Checks: JSON, uid, units, rate windows, datasource uids, grid overlaps and
    undefined variables. An empty list means clean.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"{where}: invalid JSON: {exc}"]
    if not isinstance(data, dict):
        return [f"{where}: not a dashboard: the top level is a JSON {type(data).__name__}"]
    problems: list[str] = []
    uid = data.get("uid")
    if not isinstance(uid, str) or not uid:
        problems.append(f'{where}: the dashboard has no "uid"; set a fixed one')
    elif not _UID_RE.match(uid):
        problems.append(
            f"{where}: uid {uid!r} must be 1-40 characters of letters, digits, '-' and '_'"
        )

    variables = [v for v in _list(_dict(data.get("templating")).get("list")) if isinstance(v, dict)]
    defined = {v["name"] for v in variables if isinstance(v.get("name"), str)}
    allowed = set(_PROVISIONED_UIDS)
    for v in variables:
        if v.get("type") == "datasource" and isinstance(v.get("name"), str):
            allowed |= {f"${v['name']}", f"${{{v['name']}}}"}

    for v in variables:
        label = f'{where}: variable "{v.get("name", "?")}"'
        problems += _check_datasource(v.get("datasource"), allowed, label)
        query = v.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str):
            problems += _check_references(query, defined, label)

    for annotation in _list(_dict(data.get("annotations")).get("list")):
        if isinstance(annotation, dict) and not annotation.get("builtIn"):
            name = annotation.get("name", "?")
            problems += _check_datasource(
                annotation.get("datasource"), allowed, f'{where}: annotation "{name}"'
            )

    seen_ids: dict[int, str] = {}
    for panel in _panels(data):
        title = _title(panel)
        label = f'{where}: panel "{title}"'
        panel_id = panel.get("id")
        if isinstance(panel_id, int):
            if panel_id in seen_ids:
                other = seen_ids[panel_id]
                problems.append(f'{label}: panel id {panel_id} is also used by "{other}"')
            seen_ids.setdefault(panel_id, title)
        kind = panel.get("type")
        if kind == "row":
            continue
        unit = _dict(_dict(panel.get("fieldConfig")).get("defaults")).get("unit")
        if kind in _UNIT_KINDS and not unit:
            problems.append(
                f"{label}: the {kind} panel has no unit; set fieldConfig.defaults.unit"
                " (reqps, s, percentunit, bytes, short, ...)"
            )
        panel_ds = panel.get("datasource")
        if panel_ds is not None:
            problems += _check_datasource(panel_ds, allowed | _BUILTIN_UIDS, label)
        ref_ids: set[str] = set()
        for target in _list(panel.get("targets")):
            if not isinstance(target, dict):
                continue
            ref = str(target.get("refId", "?"))
            if ref in ref_ids:
                problems.append(f"{label}: two queries share refId {ref}; refIds must be unique")
            ref_ids.add(ref)
            qlabel = f"{label}: query {ref}"
            if target.get("datasource") is not None:
                problems += _check_datasource(target["datasource"], allowed, qlabel)
            expr = target.get("expr")
            if not isinstance(expr, str):
                continue
            if _is_prometheus(target, panel):
                problems += _check_rate_windows(expr, qlabel)
            problems += _check_references(expr, defined, qlabel)

    problems += _check_grid(data, where)
    return problems


def lint_dashboards(files: Mapping[str, str]) -> list[str]:
    """:func:`lint_dashboard` for every ``*.json`` entry, plus uid uniqueness across them.

    Other entries (provisioning YAML) are skipped, so ``render_grafana``'s output fits.
    """
    problems: list[str] = []
    owners: dict[str, str] = {}
    for path, text in files.items():
        if not path.endswith(".json"):
            continue
        problems += lint_dashboard(text, where=path)
        try:
            uid = json.loads(text).get("uid")
        except (json.JSONDecodeError, AttributeError):
            continue
        if not isinstance(uid, str) or not uid:
            continue
        if uid in owners:
            problems.append(
                f'{path}: uid "{uid}" is also used by {owners[uid]}; Grafana loads only one'
                " of them, so give each dashboard its own uid"
            )
        else:
            owners[uid] = path
    return problems


def dashboard_queries(text: str) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every Prometheus target, in panel order, verbatim.

    Variables (``$service``, ``$__rate_interval``) are left in; loki/tempo targets are
    skipped. Raises ValueError if ``text`` is not a dashboard JSON object.
    """
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a dashboard: the top level is not a JSON object")
    out: list[tuple[str, str]] = []
    for panel in _panels(data):
        for target in _list(panel.get("targets")):
            if (
                isinstance(target, dict)
                and isinstance(target.get("expr"), str)
                and _is_prometheus(target, panel)
            ):
                out.append((_title(panel), target["expr"]))
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _title(panel: dict[str, Any]) -> str:
    title = panel.get("title")
    return title if isinstance(title, str) and title else f"(untitled, id {panel.get('id', '?')})"


def _panels(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel: top-level ones and those inside (collapsed) rows."""
    for panel in _list(data.get("panels")):
        if isinstance(panel, dict):
            yield panel
            for inner in _list(panel.get("panels")):
                if isinstance(inner, dict):
                    yield inner


def _is_prometheus(target: dict[str, Any], panel: dict[str, Any]) -> bool:
    ds = target.get("datasource") or panel.get("datasource")
    if ds is None:
        return True  # the default datasource, which is Prometheus
    if isinstance(ds, dict):
        return ds.get("type") == "prometheus" or ds.get("uid") == PROMETHEUS_UID
    return False


def _check_datasource(ds: Any, allowed: set[str] | frozenset[str], label: str) -> list[str]:
    if ds is None:
        return []
    if isinstance(ds, str):
        if ds in allowed:
            return []
        return [
            f'{label}: datasource "{ds}" is a name; give {{"type", "uid"}} with a provisioned uid'
        ]
    uid = _dict(ds).get("uid")
    if uid in allowed:
        return []
    known = ", ".join(_PROVISIONED_UIDS)
    return [f'{label}: datasource uid "{uid}" is not provisioned (provisioned: {known})']


def _check_references(text: str, defined: set[str], label: str) -> list[str]:
    problems = []
    seen: set[str] = set()
    for match in _VARIABLE_REF_RE.finditer(text):
        name = match[1] or match[2] or match[3]
        if name[0].isdigit() or name in _BUILTIN_VARIABLES or name in defined or name in seen:
            continue
        seen.add(name)
        if name.startswith("__"):
            problems.append(f"{label}: ${name} is not a Grafana built-in variable (typo?)")
        else:
            have = ", ".join(sorted(defined)) or "none"
            problems.append(
                f"{label}: references ${name}, which the dashboard does not define"
                f" (defined: {have})"
            )
    return problems


def _blank_strings(expr: str) -> str:
    """``expr`` with the inside of every string literal replaced by spaces (same length)."""
    out = list(expr)
    quote: str | None = None
    i = 0
    while i < len(out):
        c = expr[i]
        if quote is None:
            if c in "\"'`":
                quote = c
        elif c == "\\" and quote != "`":
            out[i] = " "
            if i + 1 < len(out):
                out[i + 1] = " "
            i += 1
        elif c == quote:
            quote = None
        else:
            out[i] = " "
        i += 1
    return "".join(out)


def _check_rate_windows(expr: str, label: str) -> list[str]:
    problems = []
    code = _blank_strings(expr)
    for match in _RANGE_FUNCTION_RE.finditer(code):
        function = match[1]
        window: str | None = None
        depth = 0
        i = match.end()
        while i < len(code):
            c = code[i]
            if c in "({":
                depth += 1
            elif c in ")}":
                if depth == 0:
                    break
                depth -= 1
            elif c == "[":
                end = code.find("]", i)
                if end < 0:
                    break
                if depth == 0:
                    window = expr[i + 1 : end].split(":", maxsplit=1)[0].strip()
                i = end
            i += 1
        if window is None:
            problems.append(f"{label}: {function}() has no range selector; use [$__rate_interval]")
        elif window not in _RATE_WINDOWS:
            problems.append(
                f"{label}: {function}() over [{window}]; use [$__rate_interval] so the window"
                " follows the scrape interval and the graph's step"
            )
    return problems


def _check_grid(data: dict[str, Any], where: str) -> list[str]:
    groups: list[list[dict[str, Any]]] = [[]]
    for panel in _list(data.get("panels")):
        if isinstance(panel, dict):
            groups[0].append(panel)
            inner = [p for p in _list(panel.get("panels")) if isinstance(p, dict)]
            if inner:
                groups.append(inner)
    problems = []
    for group in groups:
        boxes: list[tuple[str, int, int, int, int]] = []
        for panel in group:
            title = _title(panel)
            pos = _dict(panel.get("gridPos"))
            x, y, w, h = pos.get("x"), pos.get("y"), pos.get("w"), pos.get("h")
            if not (
                isinstance(x, int)
                and isinstance(y, int)
                and isinstance(w, int)
                and isinstance(h, int)
            ):
                problems.append(f'{where}: panel "{title}" has no complete gridPos (x, y, w, h)')
                continue
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > _GRID_COLUMNS:
                problems.append(
                    f'{where}: panel "{title}" at x={x} w={w} does not fit the 24-column grid'
                )
            for other, ox, oy, ow, oh in boxes:
                if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                    problems.append(
                        f'{where}: panel "{title}" (x={x} y={y} w={w} h={h}) overlaps'
                        f' panel "{other}" (x={ox} y={oy} w={ow} h={oh})'
                    )
            boxes.append((title, x, y, w, h))
    return problems
