"""OpenAPI 3.1 documents of what glassbox serves inside a service.

``service_document(settings)`` describes the health endpoints and ``/metrics`` as one
instrumented app answers them: its prefix and metrics path, and its protection (a
security requirement appears only where a token or basic auth is set). Feed it to an
API fuzzer (``glassbox openapi service > glassbox-openapi.json``; ``schemathesis run
glassbox-openapi.json --url http://127.0.0.1:8000``), merge it into the app's own
document, or publish it next to it. The console's API has its own document
(:func:`glassbox.console.openapi.console_document`, served at ``/api/openapi.json``).
"""

from __future__ import annotations

from typing import Any, Final

from glassbox._settings import Settings
from glassbox._version import __version__
from glassbox.health.report import CONTENT_TYPE as HEALTH_CONTENT_TYPE
from glassbox.metrics.exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE

__all__ = ["OPENAPI_VERSION", "service_document"]

OPENAPI_VERSION: Final = "3.1.0"

_STATUS: Final = {"type": "string", "enum": ["pass", "warn", "fail"]}

#: One entry of the ``checks`` map (``component:measurement`` -> list of these).
_CHECK: Final = {
    "type": "object",
    "required": ["componentId", "componentType", "status"],
    "properties": {
        "componentId": {"type": "string"},
        "componentType": {"type": "string"},
        "status": _STATUS,
        "output": {
            "type": "string",
            "description": "Why it is not passing (hidden from"
            " anonymous callers when a health token is set).",
        },
        "critical": {"const": False, "description": "Present only on non-critical checks."},
        "observedValue": {"type": ["number", "string"]},
        "observedUnit": {"type": "string"},
        "durationMs": {"type": "number", "minimum": 0},
        "time": {"type": "string", "format": "date-time"},
    },
}

_PROCESS: Final = {
    "type": "object",
    "required": ["pid", "uptimeSeconds", "memoryRssBytes", "cpuPercent"],
    "properties": {
        "pid": {"type": "integer", "minimum": 1},
        "uptimeSeconds": {"type": "number", "minimum": 0},
        "memoryRssBytes": {"type": "integer", "minimum": 0},
        "cpuPercent": {"type": "number", "minimum": 0},
    },
}

_SCHEMAS: Final = {
    "Health": {
        "type": "object",
        "description": "application/health+json (draft-inadarei-api-health-check).",
        "required": ["status", "version", "releaseId", "serviceId", "time"],
        "properties": {
            "status": _STATUS,
            "version": {"type": "string"},
            "releaseId": {"type": "string"},
            "serviceId": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "checks": {
                "type": "object",
                "additionalProperties": {"type": "array", "minItems": 1, "items": _CHECK},
            },
            "process": _PROCESS,
        },
    },
    "AuthenticationRequired": {
        "type": "object",
        "required": ["status", "output"],
        "properties": {"status": {"const": "fail"}, "output": {"type": "string"}},
    },
}


def _no_store() -> dict[str, Any]:
    return {"Cache-Control": {"schema": {"const": "no-store"}}}


def _health_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _no_store(),
        "content": {HEALTH_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Health"}}},
    }


def _allowed() -> dict[str, Any]:
    return {
        "description": "Only GET and HEAD are answered.",
        "headers": {"Allow": {"schema": {"const": "GET, HEAD"}}},
    }


def _operations(operation: dict[str, Any]) -> dict[str, Any]:
    """The same operation for GET and HEAD (HEAD answers the headers alone)."""
    head = {
        **operation,
        "operationId": operation["operationId"] + "Head",
        "summary": operation["summary"] + " (headers only)",
        "responses": {
            code: {k: v for k, v in answer.items() if k != "content"}
            for code, answer in operation["responses"].items()
        },
    }
    return {"get": operation, "head": head}


def _health_paths(prefix: str, protected: bool) -> dict[str, Any]:
    base = prefix.rstrip("/")
    unavailable = "A critical check fails."
    paths: dict[str, Any] = {
        base + "/live": _operations(
            {
                "operationId": "healthLive",
                "summary": "Liveness: the process alone, never a dependency.",
                "tags": ["health"],
                "responses": {
                    "200": _health_response("The process answers."),
                    "405": _allowed(),
                },
            }
        ),
        base + "/ready": _operations(
            {
                "operationId": "healthReady",
                "summary": "Readiness: the readiness checks.",
                "tags": ["health"],
                "responses": {
                    "200": _health_response("Ready (a failing non-critical check: warn)."),
                    "405": _allowed(),
                    "503": _health_response(unavailable),
                },
            }
        ),
        base: _operations(
            {
                "operationId": "health",
                "summary": "Every check with its status.",
                "tags": ["health"],
                "responses": {
                    "200": _health_response("Pass or warn."),
                    "405": _allowed(),
                    "503": _health_response(unavailable),
                },
            }
        ),
    }
    detailed: dict[str, Any] = {
        "operationId": "healthDetailed",
        "summary": "Every check with latency and observed values, and the process.",
        "tags": ["health"],
        "responses": {
            "200": _health_response("Pass or warn."),
            "405": _allowed(),
            "503": _health_response(unavailable),
        },
    }
    if protected:
        detailed["security"] = [{"healthToken": []}]
        detailed["responses"]["401"] = {
            "description": "No or wrong bearer token.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}, **_no_store()},
            "content": {
                HEALTH_CONTENT_TYPE: {
                    "schema": {"$ref": "#/components/schemas/AuthenticationRequired"}
                }
            },
        }
    paths[base + "/detailed"] = _operations(detailed)
    return paths


def _metrics_path(path: str, schemes: list[str]) -> dict[str, Any]:
    text = {"schema": {"type": "string", "description": "Prometheus text format 0.0.4."}}
    openmetrics = {"schema": {"type": "string", "description": "OpenMetrics 1.0.0."}}
    operation: dict[str, Any] = {
        "operationId": "metrics",
        "summary": "Metrics in the Prometheus text format, or OpenMetrics when accepted.",
        "tags": ["metrics"],
        "parameters": [
            {
                "name": "Accept",
                "in": "header",
                "required": False,
                "description": "application/openmetrics-text selects OpenMetrics (with exemplars).",
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "200": {
                "description": "The exposition (gzip when accepted and over 1 KiB).",
                "headers": {**_no_store(), "Vary": {"schema": {"type": "string"}}},
                "content": {TEXT_CONTENT_TYPE: text, OPENMETRICS_CONTENT_TYPE: openmetrics},
            },
            "405": _allowed(),
        },
    }
    if schemes:
        operation["security"] = [{scheme: []} for scheme in schemes]
        operation["responses"]["401"] = {
            "description": "No or wrong credentials.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            "content": {"text/plain; charset=utf-8": {"schema": {"type": "string"}}},
        }
    return {path: _operations(operation)}


def service_document(settings: Settings | None = None, **options: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the endpoints glassbox adds to one service.

    ``settings`` (or ``options``, as for :func:`glassbox.instrument`) decide the paths
    and which security schemes appear. ``/metrics`` is left out when it is served on a
    port of its own (``metrics_port``). Secrets are never part of the document.
    """
    if settings is None:
        from glassbox._settings import load_settings

        settings = load_settings(**options)
    metrics = settings.metrics_protection()
    health_protected = settings.health_protection().enabled
    wanted = (
        ("metricsToken", "bearer", "GLASSBOX_METRICS_TOKEN", metrics.token is not None),
        ("metricsBasic", "basic", "GLASSBOX_METRICS_BASIC_AUTH", metrics.basic is not None),
        ("healthToken", "bearer", "GLASSBOX_HEALTH_TOKEN", health_protected),
    )
    schemes: dict[str, Any] = {
        name: {"type": "http", "scheme": scheme, "description": variable}
        for name, scheme, variable, enabled in wanted
        if enabled
    }
    metric_schemes = [name for name in schemes if name.startswith("metrics")]
    paths = _health_paths(settings.health_prefix, health_protected)
    if settings.metrics_port is None:
        paths.update(_metrics_path(settings.metrics_path, metric_schemes))
    components: dict[str, Any] = {"schemas": _SCHEMAS}
    if schemes:
        components["securitySchemes"] = schemes
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"{settings.service}: health and metrics",
            "version": settings.version,
            "description": f"The endpoints glassbox {__version__} adds to the service.",
        },
        "tags": [
            {"name": "health", "description": "Probes and the health report."},
            {"name": "metrics", "description": "The Prometheus scrape endpoint."},
        ],
        "paths": paths,
        "components": components,
    }
