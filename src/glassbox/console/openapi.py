"""The OpenAPI 3.1 document of the console's read-only JSON API (``/api/*``).

Served by the console at ``/api/openapi.json``. ``console_document(dashboards=...)``
lists the dashboard uids the console has, so a fuzzer reaches real dashboards,
variables and panels instead of 404s alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from glassbox._version import __version__
from glassbox.console.store import LEVELS
from glassbox.openapi import OPENAPI_VERSION

__all__ = [
    "FALSE_FLAGS",
    "MAX_DURATION_MS",
    "MAX_RANGE_SECONDS",
    "TRUE_FLAGS",
    "console_document",
    "range_pattern",
]

_JSON: Final = "application/json"
_STR: Final = {"type": "string"}
_STRS: Final = {"type": "array", "items": _STR}
_STR_MAP: Final = {"type": "object", "additionalProperties": _STR}
_NUM_OR_NULL: Final = {"type": ["number", "null"]}

#: The longest range a dashboard, log or trace query may cover.
MAX_RANGE_SECONDS: Final = 90 * 86400
#: The longest trace duration a search may ask for (a year, in milliseconds).
MAX_DURATION_MS: Final = 365 * 86400 * 1000
#: A checkbox parameter's spellings of on and off (off: also absent or empty).
TRUE_FLAGS: Final = ("1", "true", "on", "yes")
FALSE_FLAGS: Final = ("", "0", "false", "off", "no")
_UNIT_SECONDS: Final = (
    ("ms", 0.001),
    ("s", 1),
    ("m", 60),
    ("h", 3600),
    ("d", 86400),
    ("w", 7 * 86400),
    ("y", 365 * 86400),
)


def _upto(limit: int) -> str:
    """A regular expression for the decimal integers 1..``limit`` (no leading zeros)."""
    digits = str(limit)
    width = len(digits)
    options = [r"[1-9][0-9]{0,%d}" % (width - 2)] if width > 1 else []  # noqa: UP031
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            rest = width - i - 1
            tail = r"[0-9]{%d}" % rest if rest else ""  # noqa: UP031
            options.append(f"{digits[:i]}[{low}-{int(digit) - 1}]{tail}")
    options.append(digits)
    return "(" + "|".join(options) + ")"


def range_pattern(max_seconds: int = MAX_RANGE_SECONDS) -> str:
    """The ranges the console takes: ``<n><unit>`` (or ``now-`` before it) longer than 0 and
    at most ``max_seconds``, no leading zeros; exactly what ``parse_range`` accepts."""
    units = []
    for unit, seconds in _UNIT_SECONDS:
        most = round(max_seconds / seconds) if seconds < 1 else int(max_seconds // seconds)
        if most >= 1:
            units.append(f"{_upto(most)}{unit}")
    return "(now-)?(" + "|".join(units) + ")"


_RANGE_PATTERN: Final = range_pattern()
_RANGE: Final = {
    "name": "range",
    "in": "query",
    "required": False,
    "description": "A duration such as 15m, 1h, 6h or 7d (now- allowed), at most 90d.",
    "schema": {"type": "string", "pattern": f"^({_RANGE_PATTERN})?$"},
}
_SINCE: Final = {
    **_RANGE,
    "name": "since",
    "description": "A duration, or 'all'.",
    "schema": {"type": "string", "pattern": f"^(all|{_RANGE_PATTERN})?$"},
}
_SERVICE: Final = {"name": "service", "in": "query", "required": False, "schema": _STR}


def _limit(maximum: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"At most this many (values outside 1..{maximum} are clamped;"
        " empty: the default).",
        "schema": {"anyOf": [{"type": "integer"}, {"const": ""}]},
    }


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _ok({"$ref": "#/components/schemas/Error"}, description)


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


_ALERT: Final = _object(
    {
        "id": _STR,
        "source": {"enum": ["alertmanager", "prometheus"]},
        "state": _STR,
        "name": _STR,
        "severity": {"type": ["string", "null"]},
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
        "summary": _STR,
        "runbook_url": {"type": ["string", "null"]},
        "generator_url": {"type": ["string", "null"]},
    },
    {"receivers": _STRS, "silenced_by": _STRS, "inhibited_by": _STRS},
)
_TARGET: Final = _object(
    {"instance": _STR, "job": _STR, "health": _STR, "last_error": _STR, "scrape_url": _STR}
)
_GROUP: Final = _object(
    {
        "name": _STR,
        "kind": {"enum": ["service", "dependency", "monitoring"]},
        "targets": {"type": "array", "items": _TARGET},
        "configured": _STRS,
        "up": {"type": "integer", "minimum": 0},
        "total": {"type": "integer", "minimum": 0},
    }
)
_DELIVERY: Final = _object(
    {
        "id": {"type": "integer"},
        "time": {"type": "string", "format": "date-time"},
        "receiver": _STR,
        "kind": _STR,
        "status": _STR,
        "alertnames": _STRS,
        "title": _STR,
    }
)
_DASHBOARD: Final = _object(
    {
        "uid": _STR,
        "title": _STR,
        "tags": _STRS,
        "range": _STR,
        "variables": {"type": "array", "items": {"type": "object"}},
        "rows": {
            "type": "array",
            "items": _object(
                {
                    "title": _STR,
                    "collapsed": {"type": "boolean"},
                    "panels": {"type": "array", "items": {"type": "object"}},
                }
            ),
        },
        "ranges": _STRS,
        "uplot": {"type": "boolean"},
    }
)
_PANEL: Final = _object(
    {
        "start": {"type": "number"},
        "end": {"type": "number"},
        "step": {"type": "number", "exclusiveMinimum": 0},
        "timestamps": {"type": "array", "items": {"type": "number"}},
        "series": {
            "type": "array",
            "items": _object(
                {
                    "ref_id": _STR,
                    "name": _STR,
                    "labels": _STR_MAP,
                    "values": {"type": "array", "items": _NUM_OR_NULL},
                }
            ),
        },
        "truncated": {"type": "boolean"},
        "queries": {"type": "array", "items": _object({"ref_id": _STR, "expr": _STR})},
    }
)


def _get(
    operation_id: str,
    summary: str,
    ok: dict[str, Any],
    *,
    parameters: Iterable[dict[str, Any]] = (),
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _ok(ok)}
    for code, description in (errors or {}).items():
        responses[code] = _error(description)
    operation = {
        "operationId": operation_id,
        "summary": summary,
        "parameters": list(parameters),
        "responses": responses,
    }
    return {"get": operation}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def console_document(dashboards: Iterable[str] = ()) -> dict[str, Any]:
    """The console API's OpenAPI document; ``dashboards`` are the uids it serves."""
    uids = sorted(set(dashboards))
    uid = _path_param("uid", {"type": "string", **({"examples": uids} if uids else {})})
    upstream = "Prometheus or Alertmanager did not answer."
    no_board = "No such dashboard (or variable, or panel)."
    bad_query = "A query parameter is malformed (the message names it)."
    paths: dict[str, Any] = {
        "/api/overview": _get(
            "overview",
            "Targets by service and dependency, SLO budgets, health checks, alert counts.",
            _object(
                {
                    "services": {"type": "array", "items": _GROUP},
                    "slos": {"type": "array", "items": {"type": "object"}},
                    "health": {"type": "array", "items": {"type": "object"}},
                    "alerts": _object(
                        {
                            "firing": {"type": "integer"},
                            "pending": {"type": "integer"},
                            "suppressed": {"type": "integer"},
                            "top": {"type": "array", "items": _ALERT},
                        }
                    ),
                    "errors": _STRS,
                }
            ),
        ),
        "/api/alerts": _get(
            "alerts",
            "Alertmanager's and Prometheus' alerts, merged.",
            _object(
                {
                    "alerts": {"type": "array", "items": _ALERT},
                    "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "errors": _STRS,
                }
            ),
        ),
        "/api/silences": _get(
            "silences",
            "Alertmanager's silences.",
            _object({"silences": {"type": "array", "items": {"type": "object"}}}),
            errors={"502": upstream},
        ),
        "/api/dashboards": _get(
            "dashboards",
            "The dashboards from the Grafana JSON files.",
            _object(
                {
                    "dashboards": {
                        "type": "array",
                        "items": _object({"uid": _STR, "title": _STR, "tags": _STRS, "file": _STR}),
                    },
                    "uplot": {"type": "boolean"},
                }
            ),
        ),
        "/api/dashboards/{uid}": _get(
            "dashboard",
            "One dashboard: its variables, rows and panels.",
            _DASHBOARD,
            parameters=[uid],
            errors={"404": no_board},
        ),
        "/api/dashboards/{uid}/variables/{name}": _get(
            "variable",
            "The values a dashboard variable may take.",
            _object({"name": _STR, "values": _STRS}),
            parameters=[uid, _path_param("name", _STR), _RANGE],
            errors={
                "400": bad_query,
                "404": no_board,
                "422": "The variable's query is not label_values(...).",
                "502": upstream,
            },
        ),
        "/api/dashboards/{uid}/panels/{panel}": _get(
            "panel",
            "One panel's series over a range.",
            _PANEL,
            parameters=[
                uid,
                _path_param("panel", _STR),
                _RANGE,
                {
                    "name": "width",
                    "in": "query",
                    "required": False,
                    "description": "Pixels drawn (clamped to 100..4000).",
                    "schema": {"type": "integer"},
                },
            ],
            errors={"400": bad_query, "404": no_board, "502": upstream},
        ),
        "/api/inbox": _get(
            "inbox",
            "Notifications the inbox received, and the count per receiver.",
            _object(
                {
                    "available": {"type": "boolean"},
                    "receivers": {
                        "type": "array",
                        "items": _object({"name": _STR, "count": {"type": "integer"}}),
                    },
                    "deliveries": {"type": "array", "items": _DELIVERY},
                }
            ),
            parameters=[
                {"name": "receiver", "in": "query", "required": False, "schema": _STR},
                _limit(1000),
            ],
            errors={"400": bad_query},
        ),
        "/api/services": _get(
            "services",
            "Services configured or seen in the telemetry store.",
            _object({"services": _STRS, "store": {"type": "boolean"}}),
        ),
        "/api/logs": _get(
            "logs",
            "Log records from the telemetry store, newest first.",
            _object(
                {
                    "available": {"type": "boolean"},
                    "logs": {
                        "type": "array",
                        "items": _object(
                            {"time": _STR, "time_ns": _STR, "time_ms": {"type": "number"}}
                        ),
                    },
                }
            ),
            parameters=[
                {
                    "name": "level",
                    "in": "query",
                    "required": False,
                    "description": "The lowest level shown (empty: any).",
                    "schema": {"enum": ["", *LEVELS]},
                },
                *(
                    {"name": name, "in": "query", "required": False, "schema": _STR}
                    for name in ("text", "trace_id", "span_id")
                ),
                _SERVICE,
                _SINCE,
                _limit(2000),
            ],
            errors={"400": bad_query},
        ),
        "/api/traces": _get(
            "traces",
            "Trace summaries from the telemetry store, newest first.",
            _object(
                {
                    "available": {"type": "boolean"},
                    "traces": {
                        "type": "array",
                        "items": _object({"trace_id": _STR, "start": _STR, "start_ns": _STR}),
                    },
                }
            ),
            parameters=[
                _SERVICE,
                _SINCE,
                _limit(1000),
                {
                    "name": "min_duration_ms",
                    "in": "query",
                    "required": False,
                    "description": "Only traces at least this long (empty: any).",
                    "schema": {
                        "anyOf": [
                            {"type": "number", "minimum": 0, "maximum": MAX_DURATION_MS},
                            {"const": ""},
                        ]
                    },
                },
                {
                    "name": "errors_only",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": [*TRUE_FLAGS, *FALSE_FLAGS]},
                },
            ],
            errors={"400": bad_query},
        ),
        "/api/traces/{trace_id}": _get(
            "trace",
            "One trace: its spans as a tree, with offsets and events.",
            _object(
                {
                    "trace_id": _STR,
                    "duration_ms": {"type": "number", "minimum": 0},
                    "services": _STRS,
                    "error": {"type": "boolean"},
                    "spans": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                }
            ),
            parameters=[_path_param("trace_id", _STR)],
            errors={"404": "No such trace, or no telemetry store."},
        ),
        "/api/openapi.json": _get("openapi", "This document.", {"type": "object"}),
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "glassbox console API",
            "version": __version__,
            "description": "Read-only: every operation is a GET (HEAD too); other methods"
            " answer 405. Only loopback Host names are answered (others: 400). The"
            " variables and panels operations also take dashboard variable values as"
            " var-<name>=<value> (repeat for several).",
        },
        "paths": paths,
        "components": {"schemas": {"Error": _object({"error": _STR})}},
    }
