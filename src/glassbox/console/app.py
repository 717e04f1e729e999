"""The local console: one web app over the local stack that ``glassbox up`` runs.

Pages (server-rendered HTML shells; ``web/console.js`` fills them from the JSON API)::

    GET /                          overview: targets up/down, alerts, SLO budgets, health
    GET /dashboards                the Grafana dashboards of ``dashboards_dir``
    GET /dashboards/{uid}          one dashboard: rows, panels, variables, uPlot charts
    GET /alerts                    firing/pending alerts (click one for details), silences
    GET /inbox                     notifications the local inbox received, per receiver
    GET /logs                      log search (level, text, trace_id, service)
    GET /traces                    recent traces
    GET /traces/{trace_id}         one trace as a span waterfall

JSON API (every read is a GET; nothing is ever written)::

    GET /api/overview
    GET /api/alerts                alerts of Alertmanager and Prometheus, merged
    GET /api/silences
    GET /api/dashboards            [{uid, title, tags}]
    GET /api/dashboards/{uid}      the dashboard, normalised: variables, rows, panels
    GET /api/dashboards/{uid}/variables/{name}?range=&var-<name>=...
                                   the variable's values (Prometheus label values)
    GET /api/dashboards/{uid}/panels/{id}?range=&width=&var-<name>=...
                                   the panel's targets run through query_range, with
                                   $__interval, $__rate_interval and variables substituted
    GET /api/inbox?receiver=&limit=
    GET /api/logs?level=&text=&trace_id=&span_id=&service=&since=&limit=
    GET /api/traces?service=&min_duration_ms=&errors_only=&since=&limit=
    GET /api/traces/{trace_id}     the spans, ordered as a tree, with offsets
    GET /api/services

Security: the console only ever calls the fixed Prometheus and Alertmanager endpoints
it needs on the two base URLs it was given, and runs only the PromQL of the dashboard
files (the browser names a panel, never a query or a URL). Every response carries a
Content-Security-Policy without inline scripts, there are no CORS headers, requests
with a Host other than loopback names are refused (DNS rebinding), and any method but
GET/HEAD is answered 405. The page script only ever sets data with ``textContent``.

Charts are drawn with uPlot from npm, which ``scripts/console-assets.sh`` installs into
``.cache/console/node_modules`` (not committed); without it the console still runs and
the dashboard page says how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import html
import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glassbox.console.openapi import (
    FALSE_FLAGS,
    MAX_DURATION_MS,
    MAX_RANGE_SECONDS,
    TRUE_FLAGS,
    console_document,
)
from glassbox.console.store import LEVELS
from glassbox.stack.config import StackConfig, duration_seconds

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "UPLOT_VERSION",
    "ConsoleServer",
    "create_console",
    "default_assets_dir",
    "expand_query",
    "normalise_dashboard",
    "round_interval",
    "set_console_config",
]

log = logging.getLogger("glassbox.console")

#: The uPlot release scripts/console-assets.sh installs.
UPLOT_VERSION = "1.6.32"
UPLOT_FILES = {"uPlot.iife.min.js": "text/javascript", "uPlot.min.css": "text/css"}
WEB_DIR = Path(__file__).with_name("web")
WEB_FILES = {
    "console.js": "text/javascript",
    "console.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: Time ranges the pages offer (any ``<n><unit>`` up to MAX_RANGE is accepted).
RANGES = ("15m", "1h", "6h", "24h", "7d")
MAX_RANGE = float(MAX_RANGE_SECONDS)
#: Prometheus refuses a range query of more than 11,000 points per series.
_MAX_POINTS = 11_000
_MAX_SERIES = 200
_DEFAULT_SCRAPE = 15.0
_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_UID_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}\Z")
_VAR_RE = re.compile(
    r"\$\{(?P<braced>\w+)(?::[^}]*)?\}|\[\[(?P<bracket>\w+)(?::[^\]]*)?\]\]|\$(?P<plain>\w+)"
)
_LABEL_VALUES_RE = re.compile(r"^\s*label_values\(\s*(?:(?P<sel>.*),\s*)?(?P<label>\w+)\s*\)\s*\Z")
_RANGE_RE = re.compile(r"^(?:now-)?([1-9][0-9]*)(ms|s|m|h|d|w|y)\Z")
_LEGEND_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_REGEX_SPECIAL = re.compile(r"[\\^$.|?*+()\[\]{}]")
_ALL = "$__all"

# -- helpers that need no server ----------------------------------------------------------

#: Grafana's interval rounding (kbn.roundInterval): (below this many seconds, use this).
_ROUNDING: tuple[tuple[float, float], ...] = (
    (0.015, 0.010),
    (0.035, 0.020),
    (0.075, 0.050),
    (0.15, 0.100),
    (0.35, 0.200),
    (0.75, 0.500),
    (1.5, 1.0),
    (3.5, 2.0),
    (7.5, 5.0),
    (12.5, 10.0),
    (17.5, 15.0),
    (25.0, 20.0),
    (45.0, 30.0),
    (90.0, 60.0),
    (210.0, 120.0),
    (450.0, 300.0),
    (750.0, 600.0),
    (1050.0, 900.0),
    (1500.0, 1200.0),
    (2700.0, 1800.0),
    (5400.0, 3600.0),
    (9000.0, 7200.0),
    (27000.0, 21600.0),
    (45000.0, 43200.0),
    (64800.0, 86400.0),
    (129600.0, 86400.0),
    (302400.0, 172800.0),
    (907200.0, 604800.0),
)


def round_interval(seconds: float) -> float:
    """A "nice" interval near ``seconds``, as Grafana picks ``$__interval``."""
    for below, nice in _ROUNDING:
        if seconds < below:
            return nice
    return 2592000.0 if seconds < 3628800.0 else 31536000.0


def format_duration(seconds: float) -> str:
    """``120`` -> ``2m``; the largest unit that divides it exactly (Prometheus syntax)."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "1ms"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def parse_range(value: str | None, default: str = "6h") -> float:
    """Seconds of a range such as ``6h`` or ``now-6h``; ValueError for anything else."""
    text = value or default
    match = _RANGE_RE.match(text)
    if match is None:
        raise ValueError(f"range {text!r} is not a duration such as 15m, 1h, 6h, 24h or 7d")
    seconds = duration_seconds(f"{match.group(1)}{match.group(2)}")
    if not 0 < seconds <= MAX_RANGE:
        raise ValueError(f"range {text!r} must be longer than 0 and at most 90d")
    return seconds


def _promql_string(value: str) -> str:
    """``value`` made safe inside a double-quoted PromQL string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def _regex_literal(value: str) -> str:
    """``value`` as a regular expression matching only itself, inside a PromQL string."""
    return _promql_string(_REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value))


@dataclasses.dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    label: str
    kind: str
    query: str
    multi: bool
    include_all: bool
    all_value: str | None
    current: tuple[str, ...]
    options: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        match = _LABEL_VALUES_RE.match(self.query) if self.kind == "query" else None
        return {
            "name": self.name,
            "label": self.label,
            "type": self.kind,
            "query": self.query,
            "label_name": match.group("label") if match else None,
            "multi": self.multi,
            "include_all": self.include_all,
            "all_value": self.all_value,
            "current": list(self.current),
            "options": list(self.options),
        }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _variables(data: Mapping[str, Any]) -> list[_Variable]:
    out: list[_Variable] = []
    for raw in _as_list(_as_dict(data.get("templating")).get("list")):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            continue
        kind = str(raw.get("type") or "query")
        if kind not in ("query", "custom", "constant"):
            continue
        query = raw.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        query = query if isinstance(query, str) else ""
        current = _as_dict(raw.get("current")).get("value")
        values = current if isinstance(current, list) else [current] if current else []
        options: tuple[str, ...] = ()
        if kind == "custom":
            options = tuple(v.strip() for v in query.split(",") if v.strip())
        elif kind == "constant":
            options = (query,)
            values = [query]
        out.append(
            _Variable(
                name=raw["name"],
                label=str(raw.get("label") or raw["name"]),
                kind=kind,
                query=query,
                multi=bool(raw.get("multi")),
                include_all=bool(raw.get("includeAll")),
                all_value=raw.get("allValue") if isinstance(raw.get("allValue"), str) else None,
                current=tuple(str(v) for v in values),
                options=options,
            )
        )
    return out


def _panel_json(panel: Mapping[str, Any]) -> dict[str, Any]:
    defaults = _as_dict(_as_dict(panel.get("fieldConfig")).get("defaults"))
    steps = _as_list(_as_dict(defaults.get("thresholds")).get("steps"))
    targets: list[dict[str, Any]] = []
    for target in _as_list(panel.get("targets")):
        if not isinstance(target, dict) or not isinstance(target.get("expr"), str):
            continue
        ds = _as_dict(target.get("datasource") or panel.get("datasource"))
        if ds and ds.get("type") not in (None, "prometheus"):
            continue
        if target.get("hide"):
            continue
        targets.append(
            {
                "ref_id": str(target.get("refId") or chr(ord("A") + len(targets))),
                "expr": target["expr"],
                "legend": str(target.get("legendFormat") or ""),
                "instant": bool(target.get("instant")),
            }
        )
    grid = _as_dict(panel.get("gridPos"))
    custom = _as_dict(defaults.get("custom"))
    return {
        "id": panel.get("id"),
        "type": str(panel.get("type") or "timeseries"),
        "title": str(panel.get("title") or ""),
        "description": str(panel.get("description") or ""),
        "unit": str(defaults.get("unit") or "short"),
        "decimals": defaults.get("decimals"),
        "min": defaults.get("min"),
        "max": defaults.get("max"),
        "fill_opacity": custom.get("fillOpacity", 10),
        "thresholds": [
            {"value": s.get("value"), "color": str(s.get("color") or "")}
            for s in steps
            if isinstance(s, dict)
        ],
        "show_thresholds": _as_dict(custom.get("thresholdsStyle")).get("mode", "off") != "off",
        "grid": {
            "x": int(grid.get("x") or 0),
            "y": int(grid.get("y") or 0),
            "w": int(grid.get("w") or 12),
            "h": int(grid.get("h") or 8),
        },
        "targets": targets,
    }


def normalise_dashboard(data: Mapping[str, Any], *, uid: str) -> dict[str, Any]:
    """The parts of a Grafana dashboard JSON the console draws: variables, rows, panels.

    Panels before the first row go into an untitled row; a collapsed row keeps its
    panels (Grafana nests them inside the row). Only Prometheus targets are kept.
    """
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for panel in _as_list(data.get("panels")):
        if not isinstance(panel, dict):
            continue
        if panel.get("type") == "row":
            current = {
                "title": str(panel.get("title") or ""),
                "collapsed": bool(panel.get("collapsed")),
                "panels": [_panel_json(p) for p in _as_list(panel.get("panels"))
                           if isinstance(p, dict)],
            }  # fmt: skip
            rows.append(current)
            continue
        if current is None:
            current = {"title": "", "collapsed": False, "panels": []}
            rows.append(current)
        current["panels"].append(_panel_json(panel))
    time_range = _as_dict(data.get("time"))
    return {
        "uid": uid,
        "title": str(data.get("title") or uid),
        "description": str(data.get("description") or ""),
        "tags": [str(t) for t in _as_list(data.get("tags"))],
        "range": str(time_range.get("from") or "now-6h").removeprefix("now-"),
        "refresh": str(data.get("refresh") or ""),
        "shared_crosshair": bool(data.get("graphTooltip")),
        "variables": [v.to_json() for v in _variables(data)],
        "rows": rows,
    }


def _format_value(variable: _Variable, selected: Sequence[str]) -> str:
    """The text a variable stands for in PromQL, as Grafana formats it for Prometheus."""
    values = list(selected) or list(variable.current) or ([_ALL] if variable.include_all else [])
    if _ALL in values:
        if variable.all_value is not None:
            return variable.all_value
        values = list(variable.options) or [".*"]
        if values == [".*"]:
            return ".*"
    if not values:
        return ""
    if variable.multi or variable.include_all:
        escaped = [_regex_literal(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    return _promql_string(values[0])


def expand_query(
    expr: str,
    variables: Sequence[_Variable],
    selected: Mapping[str, Sequence[str]],
    builtins: Mapping[str, str],
) -> str:
    """``expr`` with ``$__interval``-style builtins and template variables substituted.

    ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]`` are recognised; values
    are escaped for the double-quoted PromQL strings they stand in. Unknown names are
    left as they are.
    """
    by_name = {v.name: v for v in variables}

    def sub(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bracket") or match.group("plain")
        if name in builtins:
            return builtins[name]
        variable = by_name.get(name)
        if variable is None:
            return match.group(0)
        return _format_value(variable, selected.get(name, ()))

    return _VAR_RE.sub(sub, expr)


def _legend(template: str, labels: Mapping[str, str]) -> str:
    if template and template != "__auto":
        return _LEGEND_RE.sub(lambda m: labels.get(m.group(1), ""), template)
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _time_ms(ns: Any) -> float | None:
    try:
        return int(ns) / 1e6
    except (TypeError, ValueError):
        return None


def _iso(ns: Any) -> str | None:
    ms = _time_ms(ns)
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _safe_link(url: Any) -> str | None:
    """``url`` if it is an absolute http(s) URL, else None (no javascript: links)."""
    if not isinstance(url, str) or not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _record(obj: Any) -> dict[str, Any]:
    """A store record (a dataclass, a mapping or an object) as a dict."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return dict(obj)
    return dict(vars(obj))


def _jsonable(value: Any) -> Any:
    """``value`` with everything orjson cannot encode turned into text."""
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def _is_error_status(code: Any) -> bool:
    if isinstance(code, int):
        return code == 2
    return str(code).upper() in ("ERROR", "STATUS_CODE_ERROR", "2")


def _span_tree(spans: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Spans in waterfall order (parents before children, siblings by start) with depth."""
    ids = {s.get("span_id") for s in spans}
    children: dict[Any, list[dict[str, Any]]] = {}
    roots: list[dict[str, Any]] = []
    for span in spans:
        parent = span.get("parent_span_id")
        if parent and parent in ids and parent != span.get("span_id"):
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)

    def start(span: dict[str, Any]) -> int:
        try:
            return int(span.get("start_ns") or 0)
        except (TypeError, ValueError):
            return 0

    out: list[tuple[dict[str, Any], int]] = []
    seen: set[int] = set()
    stack = [(s, 0) for s in sorted(roots, key=start, reverse=True)]
    while stack:
        span, depth = stack.pop()
        if id(span) in seen:
            continue
        seen.add(id(span))
        out.append((span, depth))
        kids = sorted(children.get(span.get("span_id"), ()), key=start, reverse=True)
        stack.extend((kid, depth + 1) for kid in kids)
    return out


def default_assets_dir() -> Path:
    """Where uPlot's ``dist`` is: ``$GLASSBOX_CONSOLE_ASSETS``, else the checkout's cache.

    The checkout is the one this module lives in (``src/glassbox/console`` under it),
    then the working directory; the first that holds the files wins.
    """
    env = os.environ.get("GLASSBOX_CONSOLE_ASSETS")
    if env:
        return Path(env)
    rel = Path(".cache/console/node_modules/uplot/dist")
    candidates = [Path(__file__).resolve().parents[3] / rel, Path.cwd() / rel]
    for candidate in candidates:
        if (candidate / "uPlot.iife.min.js").is_file():
            return candidate
    return candidates[0]


class _Upstream(Exception):
    """Prometheus or Alertmanager did not answer as expected."""


class _ORJSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS)


def _min_duration(value: str | None) -> float | None:
    """``min_duration_ms`` as given by the Traces form (empty: none); ValueError if odd."""
    if not value:
        return None
    number = float(value)
    if not 0 <= number <= MAX_DURATION_MS:  # also refuses nan
        raise ValueError(f"min_duration_ms must be between 0 and {MAX_DURATION_MS}")
    return number


def _flag(name: str, value: str | None) -> bool:
    """A checkbox parameter: 1/true/on/yes, or 0/false/off/no/empty; ValueError otherwise."""
    text = (value or "").lower()
    if text in TRUE_FLAGS:
        return True
    if text in FALSE_FLAGS:
        return False
    raise ValueError(f"{name} must be one of {', '.join(TRUE_FLAGS + FALSE_FLAGS[1:])}")


def _error(status: int, message: str) -> Response:
    return _ORJSON({"error": message}, status_code=status)


# -- security middleware ------------------------------------------------------------------


class _Guard:
    """Security headers on every response; loopback Host names and GET/HEAD only."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}

    @staticmethod
    def _hostname(value: str) -> str:
        value = value.strip().lower()
        if value.startswith("["):
            return value.split("]", 1)[0] + "]"
        return value.rsplit(":", 1)[0] if value.count(":") == 1 else value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", [])
                    if k.lower() not in {h for h, _ in _SECURITY_HEADERS}
                ]  # fmt: skip
                headers.extend(_SECURITY_HEADERS)
                if str(scope.get("path", "")).startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        host = ""
        for key, value in scope.get("headers", []):
            if key == b"host":
                host = value.decode("latin-1")
                break
        if self.allowed and "*" not in self.allowed and self._hostname(host) not in self.allowed:
            response: Response = PlainTextResponse(
                "unexpected Host header: the console answers on loopback names only\n",
                status_code=400,
            )
            await response(scope, receive, send_with_headers)
            return
        if scope.get("method") not in ("GET", "HEAD"):
            response = PlainTextResponse(
                "the console is read-only: only GET\n",
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


# -- the console ------------------------------------------------------------------------------


_NAV = (
    ("overview", "/", "Overview"),
    ("dashboards", "/dashboards", "Dashboards"),
    ("alerts", "/alerts", "Alerts"),
    ("inbox", "/inbox", "Inbox"),
    ("logs", "/logs", "Logs"),
    ("traces", "/traces", "Traces"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Board:
    uid: str
    title: str
    tags: tuple[str, ...]
    path: Path
    data: dict[str, Any]


class _Console:
    def __init__(
        self,
        *,
        prometheus_url: str,
        alertmanager_url: str,
        inbox: Any | None,
        store: Any | None,
        dashboards_dir: Path,
        config: StackConfig | None,
        assets_dir: Path | None,
        timeout: float,
    ) -> None:
        self.prometheus_url = prometheus_url.rstrip("/")
        self.alertmanager_url = alertmanager_url.rstrip("/")
        self.inbox = inbox
        self.store = store
        self.dashboards_dir = Path(dashboards_dir)
        self.config = config
        self.assets_dir = assets_dir
        self.timeout = timeout
        self.client: httpx.AsyncClient | None = None
        self._boards: dict[tuple[str, int, int], _Board | None] = {}
        self.scrape_seconds = (
            duration_seconds(config.prometheus.scrape_interval)
            if config is not None
            else _DEFAULT_SCRAPE
        )

    # -- upstream calls (fixed endpoints only)

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.client = self._new_client()
        try:
            yield
        finally:
            client, self.client = self.client, None
            await client.aclose()

    async def _get(self, base: str, what: str, path: str, params: Any = None) -> Any:
        client = self.client
        owned = client is None
        if client is None:
            client = self._new_client()
        try:
            response = await client.get(base + path, params=params)
        except httpx.HTTPError as exc:
            raise _Upstream(f"{what} at {base} did not answer: {exc!r}") from None
        finally:
            if owned:
                await client.aclose()
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if response.status_code != 200:
            detail = body.get("error") if isinstance(body, dict) else response.text[:300]
            raise _Upstream(f"{what} answered {response.status_code} to {path}: {detail}")
        return body

    async def prometheus(self, path: str, params: Any = None) -> Any:
        body = await self._get(self.prometheus_url, "Prometheus", path, params)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise _Upstream(f"Prometheus answered {path} with {str(body)[:300]}")
        return body.get("data")

    async def alertmanager(self, path: str) -> Any:
        return await self._get(self.alertmanager_url, "Alertmanager", path)

    async def instant(self, expr: str) -> list[dict[str, Any]]:
        data = await self.prometheus("/api/v1/query", {"query": expr})
        return [r for r in _as_list(_as_dict(data).get("result")) if isinstance(r, dict)]

    # -- pages

    def uplot_present(self) -> bool:
        directory = self.assets_dir or default_assets_dir()
        return all((directory / name).is_file() for name in UPLOT_FILES)

    def page(self, page: str, title: str, **data: str) -> Response:
        uplot = page == "dashboard" and self.uplot_present()
        head = [
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)} · glassbox console</title>",
            '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">',
        ]
        if uplot:
            head.append('<link rel="stylesheet" href="/assets/uplot/uPlot.min.css">')
            head.append('<script src="/assets/uplot/uPlot.iife.min.js" defer></script>')
        head.append('<link rel="stylesheet" href="/static/console.css">')
        head.append('<script src="/static/console.js" defer></script>')
        attrs = {"page": page, **data}
        if page == "dashboard":
            attrs["uplot"] = "present" if uplot else "missing"
        body_attrs = " ".join(
            f'data-{html.escape(k.replace("_", "-"))}="{html.escape(v, quote=True)}"'
            for k, v in attrs.items()
        )
        active = "dashboards" if page == "dashboard" else "traces" if page == "trace" else page
        current = ' aria-current="page"'
        nav = "".join(
            f'<a href="{href}"{current if key == active else ""}>{label}</a>'
            for key, href, label in _NAV
        )
        text = (
            '<!doctype html>\n<html lang="en">\n<head>\n'
            + "\n".join(head)
            + f"\n</head>\n<body {body_attrs}>\n"
            + f'<header><a class="brand" href="/">glassbox</a><nav>{nav}</nav></header>\n'
            + f'<main><h1 id="title">{html.escape(title)}</h1>\n'
            + '<div id="content" class="content"><p class="muted">Loading…</p></div></main>\n'
            + "<noscript>The console needs JavaScript.</noscript>\n</body>\n</html>\n"
        )
        return HTMLResponse(text, headers={"Cache-Control": "no-store"})

    async def overview_page(self, request: Request) -> Response:
        return self.page("overview", "Overview")

    async def dashboards_page(self, request: Request) -> Response:
        return self.page("dashboards", "Dashboards")

    async def dashboard_page(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        board = self.board(uid)
        if board is None:
            return HTMLResponse(
                f"<!doctype html><title>Not found</title><p>No dashboard {html.escape(uid)}."
                ' <a href="/dashboards">All dashboards</a></p>',
                status_code=404,
            )
        return self.page("dashboard", board.title, uid=board.uid)

    async def alerts_page(self, request: Request) -> Response:
        return self.page("alerts", "Alerts")

    async def inbox_page(self, request: Request) -> Response:
        return self.page("inbox", "Inbox")

    async def logs_page(self, request: Request) -> Response:
        return self.page("logs", "Logs")

    async def traces_page(self, request: Request) -> Response:
        return self.page("traces", "Traces")

    async def trace_page(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        return self.page("trace", "Trace", trace_id=trace_id)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in WEB_FILES:
            return PlainTextResponse("not found\n", status_code=404)
        return FileResponse(
            WEB_DIR / name, media_type=WEB_FILES[name], headers={"Cache-Control": "no-cache"}
        )

    async def uplot_asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        directory = self.assets_dir or default_assets_dir()
        if name not in UPLOT_FILES or not (directory / name).is_file():
            return PlainTextResponse(
                "uPlot is not installed: run scripts/console-assets.sh\n", status_code=404
            )
        return FileResponse(
            directory / name,
            media_type=UPLOT_FILES[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    # -- dashboards

    def boards(self) -> list[_Board]:
        out: list[_Board] = []
        try:
            paths = sorted(self.dashboards_dir.glob("*.json"))
        except OSError:
            return out
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if key not in self._boards:
                self._boards[key] = self._load(path)
            board = self._boards[key]
            if board is not None:
                out.append(board)
        return out

    @staticmethod
    def _load(path: Path) -> _Board | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("console: skipping dashboard %s: %s", path, exc)
            return None
        if not isinstance(data, dict):
            return None
        raw_uid = data.get("uid")
        uid = raw_uid if isinstance(raw_uid, str) else path.stem
        if not _UID_RE.match(uid):
            uid = path.stem
        return _Board(
            uid=uid,
            title=str(data.get("title") or uid),
            tags=tuple(str(t) for t in _as_list(data.get("tags"))),
            path=path,
            data=data,
        )

    def board(self, uid: str) -> _Board | None:
        for board in self.boards():
            if board.uid == uid:
                return board
        return None

    async def api_dashboards(self, request: Request) -> Response:
        boards = await run_in_threadpool(self.boards)
        return _ORJSON(
            {
                "dashboards": [
                    {"uid": b.uid, "title": b.title, "tags": list(b.tags), "file": b.path.name}
                    for b in sorted(boards, key=lambda b: b.title.lower())
                ],
                "directory": str(self.dashboards_dir),
                "uplot": self.uplot_present(),
            }
        )

    async def api_dashboard(self, request: Request) -> Response:
        board = await run_in_threadpool(self.board, request.path_params["uid"])
        if board is None:
            return _error(404, f"no dashboard {request.path_params['uid']!r}")
        body = normalise_dashboard(board.data, uid=board.uid)
        body["uplot"] = self.uplot_present()
        body["ranges"] = list(RANGES)
        return _ORJSON(body)

    @staticmethod
    def _selected(request: Request) -> dict[str, list[str]]:
        selected: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            if key.startswith("var-") and len(value) <= 1000:
                selected.setdefault(key[4:], []).append(value)
        return {k: v[:100] for k, v in selected.items()}

    def _timing(self, range_seconds: float, width: int) -> tuple[float, float, float, float]:
        """(start, end, step, interval) for a range drawn ``width`` pixels wide."""
        interval = round_interval(max(range_seconds / max(width, 1), self.scrape_seconds))
        step = max(interval, math.ceil(range_seconds / _MAX_POINTS))
        now = time.time()
        end = math.ceil(now / step) * step
        start = math.floor((now - range_seconds) / step) * step
        return start, end, step, interval

    async def api_variable(self, request: Request) -> Response:
        board = await run_in_threadpool(self.board, request.path_params["uid"])
        if board is None:
            return _error(404, f"no dashboard {request.path_params['uid']!r}")
        variables = _variables(board.data)
        variable = next((v for v in variables if v.name == request.path_params["name"]), None)
        if variable is None:
            return _error(404, f"the dashboard has no variable {request.path_params['name']!r}")
        if variable.kind != "query":
            return _ORJSON({"name": variable.name, "values": list(variable.options)})
        try:
            range_seconds = parse_range(request.query_params.get("range"))
        except ValueError as exc:
            return _error(400, str(exc))
        match = _LABEL_VALUES_RE.match(variable.query)
        if match is None:
            return _error(422, f"variable {variable.name}: unsupported query {variable.query!r}")
        label = match.group("label")
        if not _LABEL_RE.match(label):
            return _error(422, f"variable {variable.name}: {label!r} is not a label name")
        earlier = variables[: variables.index(variable)]
        start, end, _, _ = self._timing(range_seconds, 1000)
        params: dict[str, Any] = {"start": start, "end": end}
        if match.group("sel"):
            builtins = {"__interval": "1m", "__rate_interval": "5m", "__range": "1h"}
            params["match[]"] = expand_query(
                match.group("sel"), earlier, self._selected(request), builtins
            )
        try:
            values = await self.prometheus(f"/api/v1/label/{label}/values", params)
        except _Upstream as exc:
            return _error(502, str(exc))
        values = sorted((str(v) for v in _as_list(values)), key=lambda v: (v.lower(), v))
        return _ORJSON({"name": variable.name, "label": label, "values": values})

    async def api_panel(self, request: Request) -> Response:
        board = await run_in_threadpool(self.board, request.path_params["uid"])
        if board is None:
            return _error(404, f"no dashboard {request.path_params['uid']!r}")
        wanted = request.path_params["panel"]
        normalised = normalise_dashboard(board.data, uid=board.uid)
        panel = next(
            (p for row in normalised["rows"] for p in row["panels"] if str(p.get("id")) == wanted),
            None,
        )
        if panel is None:
            return _error(404, f"the dashboard has no panel {wanted!r}")
        try:
            range_seconds = parse_range(request.query_params.get("range"), normalised["range"])
            width = int(request.query_params.get("width") or 1000)
        except ValueError as exc:
            return _error(400, str(exc))
        width = min(max(width, 100), 4000)
        start, end, step, interval = self._timing(range_seconds, width)
        rate = max(interval + self.scrape_seconds, 4 * self.scrape_seconds)
        builtins = {
            "__interval": format_duration(interval),
            "__interval_ms": str(int(interval * 1000)),
            "__rate_interval": format_duration(rate),
            "__range": format_duration(range_seconds),
            "__range_s": str(int(range_seconds)),
        }
        variables = _variables(board.data)
        selected = self._selected(request)
        queries = [
            {**t, "expr": expand_query(t["expr"], variables, selected, builtins)}
            for t in panel["targets"]
        ]

        async def run(query: dict[str, Any]) -> Any:
            return await self.prometheus(
                "/api/v1/query_range",
                {"query": query["expr"], "start": start, "end": end, "step": step},
            )

        answers = await asyncio.gather(*(run(q) for q in queries), return_exceptions=True)
        count = round((end - start) / step) + 1
        timestamps = [start + i * step for i in range(count)]
        series: list[dict[str, Any]] = []
        truncated = False
        for query, answer in zip(queries, answers, strict=True):
            if isinstance(answer, BaseException):
                query["error"] = str(answer)
                continue
            for result in _as_list(_as_dict(answer).get("result")):
                if len(series) >= _MAX_SERIES:
                    truncated = True
                    break
                labels = {str(k): str(v) for k, v in _as_dict(result.get("metric")).items()}
                values: list[float | None] = [None] * count
                for point in _as_list(result.get("values")):
                    index = round((float(point[0]) - start) / step)
                    if 0 <= index < count:
                        values[index] = _number(point[1])
                series.append(
                    {
                        "ref_id": query["ref_id"],
                        "name": _legend(query["legend"], labels),
                        "labels": labels,
                        "values": values,
                    }
                )
        return _ORJSON(
            {
                "panel": panel["id"],
                "start": start,
                "end": end,
                "step": step,
                "interval": builtins["__interval"],
                "rate_interval": builtins["__rate_interval"],
                "timestamps": timestamps,
                "series": series,
                "truncated": truncated,
                "queries": [
                    {k: q[k] for k in ("ref_id", "expr", "error") if k in q} for q in queries
                ],
            }
        )

    # -- alerts

    def _alert_key(self, labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        external = set(self.config.prometheus.external_labels) if self.config else set()
        return tuple(sorted((k, v) for k, v in labels.items() if k not in external))

    @staticmethod
    def _alert(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
        labels = {str(k): str(v) for k, v in _as_dict(raw.get("labels")).items()}
        annotations = {str(k): str(v) for k, v in _as_dict(raw.get("annotations")).items()}
        if source == "alertmanager":
            status = _as_dict(raw.get("status"))
            state = str(status.get("state") or "active")
            state = "firing" if state in ("active", "unprocessed") else state
            fingerprint = str(raw.get("fingerprint") or "")
            since = raw.get("startsAt")
            extra = {
                "silenced_by": [str(s) for s in _as_list(status.get("silencedBy"))],
                "inhibited_by": [str(s) for s in _as_list(status.get("inhibitedBy"))],
                "receivers": [str(_as_dict(r).get("name")) for r in _as_list(raw.get("receivers"))],
                "ends_at": raw.get("endsAt"),
                "updated_at": raw.get("updatedAt"),
            }
        else:
            state = str(raw.get("state") or "firing")
            fingerprint = ""
            since = raw.get("activeAt")
            extra = {"value": raw.get("value")}
        if not fingerprint:
            digest = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()
            fingerprint = digest[:16]
        return {
            "id": fingerprint,
            "source": source,
            "state": state,
            "name": labels.get("alertname", ""),
            "severity": labels.get("severity"),
            "labels": labels,
            "annotations": annotations,
            "summary": annotations.get("summary") or annotations.get("description") or "",
            "since": since,
            "runbook_url": _safe_link(annotations.get("runbook_url")),
            "generator_url": _safe_link(raw.get("generatorURL")),
            **extra,
        }

    async def alerts(self) -> tuple[list[dict[str, Any]], list[str]]:
        am: Any
        prom: Any
        am, prom = await asyncio.gather(
            self.alertmanager("/api/v2/alerts"),
            self.prometheus("/api/v1/alerts"),
            return_exceptions=True,
        )
        errors: list[str] = []
        merged: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        if isinstance(am, BaseException):
            errors.append(str(am))
        else:
            for raw in _as_list(am):
                alert = self._alert(_as_dict(raw), "alertmanager")
                merged[self._alert_key(alert["labels"])] = alert
        if isinstance(prom, BaseException):
            errors.append(str(prom))
        else:
            for raw in _as_list(_as_dict(prom).get("alerts")):
                alert = self._alert(_as_dict(raw), "prometheus")
                key = self._alert_key(alert["labels"])
                if key in merged:
                    merged[key].setdefault("value", alert.get("value"))
                    if not merged[key].get("generator_url"):
                        merged[key]["generator_url"] = alert["generator_url"]
                    continue
                merged[key] = alert
        order = {"firing": 0, "pending": 1, "suppressed": 2}
        severity = {"critical": 0, "warning": 1, "info": 2}
        alerts = sorted(
            merged.values(),
            key=lambda a: (
                order.get(a["state"], 3),
                severity.get(a.get("severity") or "", 3),
                a["name"],
                str(a.get("since") or ""),
            ),
        )
        return alerts, errors

    async def api_alerts(self, request: Request) -> Response:
        alerts, errors = await self.alerts()
        counts: dict[str, int] = {}
        for alert in alerts:
            counts[alert["state"]] = counts.get(alert["state"], 0) + 1
        return _ORJSON({"alerts": alerts, "counts": counts, "errors": errors})

    async def api_silences(self, request: Request) -> Response:
        try:
            raw = await self.alertmanager("/api/v2/silences")
        except _Upstream as exc:
            return _error(502, str(exc))
        order = {"active": 0, "pending": 1, "expired": 2}
        silences: list[dict[str, Any]] = [
            {
                "id": str(s.get("id")),
                "state": str(_as_dict(s.get("status")).get("state") or ""),
                "matchers": [
                    {
                        "name": str(m.get("name")),
                        "value": str(m.get("value")),
                        "is_regex": bool(m.get("isRegex")),
                        "is_equal": m.get("isEqual", True) is not False,
                    }
                    for m in _as_list(s.get("matchers"))
                    if isinstance(m, dict)
                ],
                "created_by": str(s.get("createdBy") or ""),
                "comment": str(s.get("comment") or ""),
                "starts_at": s.get("startsAt"),
                "ends_at": s.get("endsAt"),
            }
            for s in _as_list(raw)
            if isinstance(s, dict)
        ]
        silences.sort(key=lambda s: (order.get(s["state"], 3), str(s["ends_at"] or "")))
        return _ORJSON({"silences": silences})

    # -- overview

    async def api_overview(self, request: Request) -> Response:
        health_expr = (
            'min by (service, check) ({__name__=~"health_check_status|.+_health_check_status"})'
        )
        targets, budgets, objectives, health, alerts = await asyncio.gather(
            self.prometheus("/api/v1/targets", {"state": "active"}),
            self.instant("slo:error_budget_remaining:ratio"),
            self.instant("slo:objective:ratio"),
            self.instant(health_expr),
            self.alerts(),
            return_exceptions=True,
        )
        errors: list[str] = []

        def ok(value: Any) -> Any:
            if isinstance(value, BaseException):
                errors.append(str(value))
                return None
            return value

        groups: dict[tuple[str, str], dict[str, Any]] = {}
        if self.config is not None:
            for service in self.config.services:
                groups[("service", service.name)] = {
                    "name": service.name, "kind": "service", "targets": [],
                    "configured": list(service.targets),
                }  # fmt: skip
            for dep in self.config.dependencies:
                groups[("dependency", dep.name)] = {
                    "name": dep.name, "kind": "dependency", "type": dep.kind, "targets": [],
                    "configured": list(dep.targets),
                }  # fmt: skip
        for target in _as_list(_as_dict(ok(targets)).get("activeTargets")):
            labels = _as_dict(_as_dict(target).get("labels"))
            if labels.get("service"):
                key = ("service", str(labels["service"]))
            elif labels.get("dependency"):
                key = ("dependency", str(labels["dependency"]))
            else:
                key = ("monitoring", str(labels.get("job") or "?"))
            group = groups.setdefault(
                key, {"name": key[1], "kind": key[0], "targets": [], "configured": []}
            )
            group["targets"].append(
                {
                    "instance": str(labels.get("instance") or ""),
                    "job": str(labels.get("job") or ""),
                    "health": str(target.get("health") or "unknown"),
                    "last_error": str(target.get("lastError") or ""),
                    "last_scrape": target.get("lastScrape"),
                    "scrape_url": str(target.get("scrapeUrl") or ""),
                }
            )
        kinds = {"service": 0, "dependency": 1, "monitoring": 2}
        services = sorted(groups.values(), key=lambda g: (kinds.get(g["kind"], 3), g["name"]))
        for group in services:
            group["up"] = sum(t["health"] == "up" for t in group["targets"])
            group["total"] = len(group["targets"])

        objective_by = {
            (r["metric"].get("service"), r["metric"].get("slo")): _number(r["value"][1])
            for r in ok(objectives) or []
        }
        slos = sorted(
            (
                {
                    "service": str(r["metric"].get("service", "")),
                    "slo": str(r["metric"].get("slo", "")),
                    "remaining": _number(r["value"][1]),
                    "objective": objective_by.get(
                        (r["metric"].get("service"), r["metric"].get("slo"))
                    ),
                }
                for r in ok(budgets) or []
            ),
            key=lambda s: (s["service"], s["slo"]),
        )
        checks = sorted(
            (
                {
                    "service": str(r["metric"].get("service", "")),
                    "check": str(r["metric"].get("check", "")),
                    "status": _number(r["value"][1]),
                }
                for r in ok(health) or []
            ),
            key=lambda c: (c["service"], c["check"]),
        )
        alert_list: list[dict[str, Any]] = []
        if isinstance(alerts, BaseException):
            errors.append(str(alerts))
        else:
            alert_list, alert_errors = alerts
            errors.extend(alert_errors)
        return _ORJSON(
            {
                "services": services,
                "slos": slos,
                "health": checks,
                "alerts": {
                    "firing": sum(a["state"] == "firing" for a in alert_list),
                    "pending": sum(a["state"] == "pending" for a in alert_list),
                    "suppressed": sum(a["state"] == "suppressed" for a in alert_list),
                    "top": alert_list[:10],
                },
                "errors": list(dict.fromkeys(errors)),
            }
        )

    # -- inbox

    async def api_inbox(self, request: Request) -> Response:
        configured = [r.name for r in self.config.receivers] if self.config else []
        if self.inbox is None:
            return _ORJSON(
                {"available": False, "receivers": [{"name": n, "count": 0} for n in configured],
                 "deliveries": []}
            )  # fmt: skip
        receiver = request.query_params.get("receiver") or None
        try:
            limit = min(max(int(request.query_params.get("limit") or 200), 1), 1000)
        except ValueError:
            return _error(400, "limit must be a number")

        inbox = self.inbox

        def read() -> tuple[list[Any], list[Any]]:
            recent = inbox.deliveries(limit=2000)
            shown = recent if receiver is None else inbox.deliveries(receiver, limit=limit)
            return recent, shown[:limit]

        try:
            recent, shown = await run_in_threadpool(read)
        except Exception as exc:  # the inbox store is SQLite: report, do not crash
            log.exception("console: reading the inbox failed")
            return _error(500, f"reading the inbox failed: {exc}")
        counts: dict[str, dict[str, Any]] = {n: {"name": n, "count": 0} for n in configured}
        for delivery in recent:
            entry = counts.setdefault(delivery.receiver, {"name": delivery.receiver, "count": 0})
            entry["count"] += 1
            entry.setdefault("last", delivery.time.isoformat().replace("+00:00", "Z"))
        return _ORJSON(
            {
                "available": True,
                "receivers": sorted(counts.values(), key=lambda r: r["name"]),
                "deliveries": [_jsonable(d.to_json()) for d in shown],
            }
        )

    # -- logs and traces

    @staticmethod
    def _since_ns(value: str | None) -> int | None:
        if not value or value == "all":
            return None
        return int((time.time() - parse_range(value)) * 1e9)

    async def api_openapi(self, request: Request) -> Response:
        boards = await run_in_threadpool(self.boards)
        return _ORJSON(console_document(b.uid for b in boards))

    async def api_services(self, request: Request) -> Response:
        names = {s.name for s in self.config.services} if self.config else set()
        if self.store is not None:
            with contextlib.suppress(Exception):
                names.update(str(s) for s in await run_in_threadpool(self.store.services))
        return _ORJSON({"services": sorted(names), "store": self.store is not None})

    async def api_logs(self, request: Request) -> Response:
        if self.store is None:
            return _ORJSON({"available": False, "logs": []})
        q = request.query_params
        try:
            limit = min(max(int(q.get("limit") or 200), 1), 2000)
            since_ns = self._since_ns(q.get("since"))
        except ValueError as exc:
            return _error(400, str(exc))
        span_id = q.get("span_id") or None
        level = q.get("level") or None
        if level is not None and level not in LEVELS:
            return _error(400, f"level must be one of {', '.join(LEVELS)}")
        kwargs = {
            "level": level,
            "text": q.get("text") or None,
            "trace_id": q.get("trace_id") or None,
            "service": q.get("service") or None,
            "since_ns": since_ns,
            "limit": limit if span_id is None else max(limit, 2000),
        }
        store = self.store
        try:
            records = await run_in_threadpool(lambda: store.search_logs(**kwargs))
        except ValueError as exc:
            return _error(400, str(exc))
        except Exception as exc:
            log.exception("console: the log search failed")
            return _error(500, f"the log search failed: {exc}")
        logs = []
        for record in records:
            row = _record(record)
            if span_id is not None and row.get("span_id") != span_id:
                continue
            row["time_ns"] = str(row.get("time_ns"))
            row["time_ms"] = _time_ms(row["time_ns"])
            row["time"] = _iso(row["time_ns"])
            logs.append(_jsonable(row))
        return _ORJSON({"available": True, "logs": logs[:limit]})

    async def api_traces(self, request: Request) -> Response:
        if self.store is None:
            return _ORJSON({"available": False, "traces": []})
        q = request.query_params
        try:
            limit = min(max(int(q.get("limit") or 50), 1), 1000)
            since_ns = self._since_ns(q.get("since"))
            min_duration = _min_duration(q.get("min_duration_ms"))
            errors_only = _flag("errors_only", q.get("errors_only"))
        except ValueError as exc:
            return _error(400, str(exc))
        kwargs = {
            "service": q.get("service") or None,
            "since_ns": since_ns,
            "min_duration_ms": min_duration,
            "errors_only": errors_only,
            "limit": limit,
        }
        store = self.store
        try:
            found = await run_in_threadpool(lambda: store.traces(**kwargs))
        except ValueError as exc:
            return _error(400, str(exc))
        except Exception as exc:
            log.exception("console: the trace search failed")
            return _error(500, f"the trace search failed: {exc}")
        traces = []
        for summary in found:
            row = _record(summary)
            row.setdefault("name", row.get("root_name"))
            row["start_ns"] = str(row.get("start_ns"))
            row["start_ms"] = _time_ms(row["start_ns"])
            row["start"] = _iso(row["start_ns"])
            traces.append(_jsonable(row))
        return _ORJSON({"available": True, "traces": traces})

    async def api_trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        if self.store is None:
            return _error(404, "no telemetry store: traces are not collected")
        try:
            found = await run_in_threadpool(self.store.trace, trace_id)
        except Exception as exc:
            log.exception("console: reading the trace failed")
            return _error(500, f"reading the trace failed: {exc}")
        spans = [_record(s) for s in found]
        if not spans:
            return _error(404, f"no trace {trace_id!r}")

        def ns(value: Any) -> int:
            try:
                return int(value)
            except (TypeError, ValueError):
                return 0

        t0 = min(ns(s.get("start_ns")) for s in spans)
        t1 = max(max(ns(s.get("end_ns")), ns(s.get("start_ns"))) for s in spans)
        out = []
        for span, depth in _span_tree(spans):
            start = ns(span.get("start_ns"))
            end = max(ns(span.get("end_ns")), start)
            duration = span.get("duration_ms")
            events = []
            for event in _as_list(span.get("events")):
                item = _record(event) if not isinstance(event, dict) else dict(event)
                for key in ("time_ns", "time_unix_nano", "timestamp_ns"):
                    if key in item:
                        item["offset_ms"] = (ns(item[key]) - t0) / 1e6
                        item[key] = str(item[key])
                        break
                events.append(item)
            out.append(
                _jsonable(
                    {
                        **span,
                        "start_ns": str(start),
                        "end_ns": str(end),
                        "offset_ms": (start - t0) / 1e6,
                        "duration_ms": duration if duration is not None else (end - start) / 1e6,
                        "depth": depth,
                        "error": _is_error_status(span.get("status_code")),
                        "events": events,
                    }
                )
            )
        root = out[0]
        return _ORJSON(
            {
                "trace_id": trace_id,
                "name": root.get("name"),
                "service": root.get("service"),
                "start_ms": t0 / 1e6,
                "start": _iso(t0),
                "duration_ms": (t1 - t0) / 1e6,
                "services": sorted({str(s.get("service")) for s in out}),
                "error": any(s["error"] for s in out),
                "spans": out,
            }
        )

    # -- wrapping

    @staticmethod
    def upstream_safe(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except _Upstream as exc:
                return _error(502, str(exc))

        return wrapped


def create_console(
    *,
    prometheus_url: str,
    alertmanager_url: str,
    inbox: Any | None,
    store: Any | None,
    dashboards_dir: Path,
    config: StackConfig | None = None,
    assets_dir: Path | None = None,
    allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
    timeout: float = 15.0,
) -> Starlette:
    """The console's ASGI app; serve it on 127.0.0.1 (:class:`ConsoleServer` does).

    ``inbox`` is a :class:`glassbox.local.inbox.Inbox` (or None: the Inbox page says so);
    ``store`` a telemetry store with ``search_logs``/``traces``/``trace``/``services``
    (or None); ``dashboards_dir`` the Grafana JSON files (``monitoring/grafana/
    dashboards``); ``config`` gives the services, receivers and scrape interval.
    ``assets_dir`` holds uPlot's ``dist`` files (default: :func:`default_assets_dir`).
    ``allowed_hosts`` are the Host header names answered (``"*"`` for any).
    """
    console = _Console(
        prometheus_url=prometheus_url,
        alertmanager_url=alertmanager_url,
        inbox=inbox,
        store=store,
        dashboards_dir=dashboards_dir,
        config=config,
        assets_dir=assets_dir,
        timeout=timeout,
    )
    safe = _Console.upstream_safe
    get = ["GET"]
    routes = [
        Route("/", console.overview_page, methods=get),
        Route("/dashboards", console.dashboards_page, methods=get),
        Route("/dashboards/{uid}", console.dashboard_page, methods=get),
        Route("/alerts", console.alerts_page, methods=get),
        Route("/inbox", console.inbox_page, methods=get),
        Route("/logs", console.logs_page, methods=get),
        Route("/traces", console.traces_page, methods=get),
        Route("/traces/{trace_id}", console.trace_page, methods=get),
        Route("/static/{name}", console.static, methods=get),
        Route("/assets/uplot/{name}", console.uplot_asset, methods=get),
        Route("/api/overview", safe(console.api_overview), methods=get),
        Route("/api/alerts", safe(console.api_alerts), methods=get),
        Route("/api/silences", safe(console.api_silences), methods=get),
        Route("/api/dashboards", console.api_dashboards, methods=get),
        Route("/api/dashboards/{uid}", console.api_dashboard, methods=get),
        Route("/api/dashboards/{uid}/variables/{name}", safe(console.api_variable), methods=get),
        Route("/api/dashboards/{uid}/panels/{panel}", safe(console.api_panel), methods=get),
        Route("/api/inbox", console.api_inbox, methods=get),
        Route("/api/logs", console.api_logs, methods=get),
        Route("/api/traces", console.api_traces, methods=get),
        Route("/api/traces/{trace_id}", console.api_trace, methods=get),
        Route("/api/services", console.api_services, methods=get),
        Route("/api/openapi.json", console.api_openapi, methods=get),
    ]
    app = Starlette(routes=routes, lifespan=console.lifespan)
    app.add_middleware(_Guard, allowed_hosts=allowed_hosts)
    app.state.console = console
    return app


def set_console_config(app: Starlette, config: StackConfig) -> None:
    """Point a running console at a reloaded ``glassbox.toml`` (services, receivers, scrape
    interval). Dashboards need nothing: their files are re-read when they change."""
    console: _Console = app.state.console
    console.config = config
    console.scrape_seconds = duration_seconds(config.prometheus.scrape_interval)


class ConsoleServer:
    """Serves an ASGI app (the console) with uvicorn from a background thread.

    ``ConsoleServer(app).start()`` binds 127.0.0.1 (port 0 picks a free one) and returns
    once it accepts; ``url`` is its address; ``stop()`` shuts it down. Also a context
    manager.
    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ConsoleServer:
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=5,
            limit_concurrency=256,
        )
        self._server = uvicorn.Server(config)

        def run() -> None:
            try:
                asyncio.run(self._server.serve(sockets=[sock]))
            except BaseException as exc:
                self._failure = exc
                log.exception("console: the server stopped with an error")

        self._thread = threading.Thread(target=run, name="glassbox-console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                failure = self._failure
                self.stop()
                raise RuntimeError(f"the console did not start: {failure or 'timed out'}")
            time.sleep(0.01)
        log.info("console: serving on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread. Idempotent."""
        thread, self._thread = self._thread, None
        if self._server is not None:
            self._server.should_exit = True
        if thread is not None:
            thread.join(timeout)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
