"""``glassbox.instrument``: one call gives a service its RED metrics and ``/metrics``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from glassbox._settings import Settings, load_settings
from glassbox.exceptions import ConfigurationError
from glassbox.health.endpoints import HealthEndpoints, WSGIHealthMiddleware
from glassbox.health.runner import HealthRunner
from glassbox.logs import AccessLog, configure_logging
from glassbox.metrics.asgi import MetricsMiddleware
from glassbox.metrics.catalogue import red_catalogue
from glassbox.metrics.exposition import Source, renderer
from glassbox.metrics.registry import REGISTRY, Registry
from glassbox.metrics.routes import StarletteRoutes
from glassbox.metrics.server import MetricsServer, start_metrics_server
from glassbox.metrics.wsgi import WSGIMetricsMiddleware
from glassbox.tracing import ServerSpans, configure_tracing

__all__ = ["Instrumentation", "instrument"]

log = logging.getLogger("glassbox")

AppT = TypeVar("AppT")


class Instrumentation:
    """What :func:`instrument` set up for one app (kept on ``app.state.glassbox``)."""

    def __init__(self, settings: Settings, registry: Registry, source: Source) -> None:
        self.settings = settings
        self.registry = registry
        self.source = source
        self.metrics_server: MetricsServer | None = None
        self.health: HealthRunner | None = None


def _is_starlette(app: Any) -> bool:
    return hasattr(app, "add_middleware") and hasattr(app, "router")


def _is_flask(app: Any) -> bool:
    return hasattr(app, "wsgi_app") and hasattr(app, "before_request_funcs")


def _is_django(app: Any) -> bool:
    return type(app).__module__.startswith("django.core.handlers")


def _is_asgi(app: Any) -> bool:
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    return inspect.iscoroutinefunction(call)


def _add_process_collectors(registry: Registry, *, workers: bool) -> None:
    """``process_*``, ``python_info`` and the memory limit; with ``workers`` the
    ``process_*`` values come from the workers' snapshots instead (multiprocess.py)."""
    if getattr(registry, "_glassbox_process", False):
        return
    from prometheus_client import PlatformCollector, ProcessCollector

    from glassbox.metrics.process import MemoryLimitCollector

    if not workers:
        registry.register_collector(ProcessCollector(registry=None))
    registry.register_collector(PlatformCollector(registry=None))
    registry.register_collector(MemoryLimitCollector())
    registry._glassbox_process = True  # type: ignore[attr-defined]


def _multiprocess_dir(settings: Settings) -> Path | None:
    """The shared directory when several workers serve the app (auto-detected)."""
    if settings.multiprocess is False:
        return None
    if settings.multiprocess_dir is not None:
        return settings.multiprocess_dir
    from glassbox.metrics.multiprocess import auto_directory

    found = auto_directory()
    if found is None and settings.multiprocess:
        raise ConfigurationError(
            "GLASSBOX_MULTIPROCESS=true but no GLASSBOX_MULTIPROCESS_DIR is set and no"
            " gunicorn/uvicorn master was detected; set GLASSBOX_MULTIPROCESS_DIR"
        )
    return found


def _hand_over_fastapi_telemetry(app: Any) -> None:
    """FastAPI >= 0.16x traces, measures and logs requests itself once a global OTel
    provider exists; glassbox does all three, so the app's own copy is switched off
    (one server span per request, not two)."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict) and "tracing" in config:
        config.update(tracing=False, metrics=False, logs=False)
        log.debug("FastAPI's built-in telemetry handed over to glassbox")


def _server_spans(settings: Settings, provider: Any = None) -> ServerSpans | None:
    """Server spans when tracing is on and the OpenTelemetry SDK is installed."""
    if not settings.tracing:
        return None
    if provider is not None:
        return ServerSpans(provider)
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        log.info("tracing off: install glassbox[otel] for OpenTelemetry traces")
        return None
    configured, ratio = configure_tracing(
        service=settings.service,
        version=settings.version,
        env=settings.env,
        sample_ratio=settings.trace_sample_ratio,
    )
    return ServerSpans(configured, ratio)


def instrument(
    app: AppT,
    *,
    service: str | None = None,
    registry: Registry | None = None,
    health: Iterable[object] = (),
    tracer_provider: Any = None,
    **options: Any,
) -> AppT:
    """Give ``app`` RED metrics and a ``/metrics`` endpoint; returns the app to serve.

    Starlette, FastAPI and Flask apps are changed in place (the same object comes
    back). A Django handler or a plain ASGI/WSGI callable is wrapped: serve the
    returned object. ``health`` lists checks (glassbox.health.checks objects or plain
    callables) for ``/health/ready`` and ``/health``. ``tracer_provider`` overrides the
    provider glassbox would configure (the global one by default). ``options`` are
    :class:`glassbox.Settings` fields and win over ``GLASSBOX_*`` environment variables.
    """
    settings = load_settings(service=service, **options)
    reg = registry or REGISTRY
    catalogue = red_catalogue(settings.namespace, settings.buckets)
    protection = settings.metrics_protection()
    reg.set_info(settings.service, settings.version, settings.env)
    reg.red_store(catalogue)  # claim the RED names now, not at the first request
    mp_dir = _multiprocess_dir(settings)
    if settings.process_metrics:
        _add_process_collectors(reg, workers=mp_dir is not None)

    source: Source = reg
    if mp_dir is not None:
        from glassbox.metrics.multiprocess import MultiprocessExposition

        source = MultiprocessExposition(reg, mp_dir, process_metrics=settings.process_metrics)

    if settings.logs:
        configure_logging(
            service=settings.service,
            version=settings.version,
            env=settings.env,
            level=settings.log_level,
            fmt=settings.log_format,
        )
    spans = _server_spans(settings, tracer_provider)
    access_log = AccessLog(sample=settings.access_log_sample) if settings.access_log else None
    own_port = settings.metrics_port is not None
    served_path = None if own_port else settings.metrics_path
    common: dict[str, Any] = {
        "catalogue": catalogue,
        "registry": reg,
        "excluded_paths": settings.all_excluded_paths,
        "metrics_path": served_path,
        "source": source,
        "protection": protection,
        "exemplars": settings.exemplars,
    }
    runner = HealthRunner(
        health,
        pass_ttl=settings.health_pass_ttl,
        fail_ttl=settings.health_fail_ttl,
        deadline=settings.health_deadline,
        registry=reg,
    )
    endpoints = HealthEndpoints(
        runner,
        service=settings.service,
        version=settings.version,
        protection=settings.health_protection(),
    )
    health_kw: dict[str, Any] = {"endpoints": endpoints, "prefix": settings.health_prefix}
    state = Instrumentation(settings, reg, source)
    state.health = runner
    asgi_kw: dict[str, Any] = {
        **common,
        "spans": spans,
        "access_log": access_log,
        "request_id": settings.request_id,
        "health": endpoints,
        "health_prefix": settings.health_prefix,
    }

    wsgi_kw: dict[str, Any] = {
        **common,
        "access_log": access_log,
        "request_id": settings.request_id,
        "spans": spans,
    }

    def wrap(inner: Any) -> Any:
        """A plain ASGI or WSGI callable, wrapped."""
        if _is_asgi(inner):
            return MetricsMiddleware(inner, **asgi_kw)
        return WSGIHealthMiddleware(WSGIMetricsMiddleware(inner, **wsgi_kw), **health_kw)

    result: Any
    if _is_starlette(app):
        target: Any = app
        target.add_middleware(MetricsMiddleware, route_resolver=StarletteRoutes(target), **asgi_kw)
        _hand_over_fastapi_telemetry(target)
        target.state.glassbox = state
        result = app
    elif _is_flask(app):
        from glassbox.flask import install_route_hook

        target = app
        target.wsgi_app = WSGIHealthMiddleware(
            WSGIMetricsMiddleware(target.wsgi_app, **wsgi_kw), **health_kw
        )
        install_route_hook(target)
        target.extensions["glassbox"] = state
        result = app
    elif _is_django(app):
        from glassbox.django import middleware_installed

        if not middleware_installed():
            raise ConfigurationError(
                "Django: add 'glassbox.django.RouteMiddleware' to settings.MIDDLEWARE so"
                " requests are labelled by URL pattern instead of '<unmatched>'"
            )
        result = wrap(app)
    elif callable(app):
        result = wrap(app)
    else:
        raise ConfigurationError(
            f"instrument() needs an ASGI or WSGI application; got {type(app).__name__}"
        )
    if own_port:
        assert settings.metrics_port is not None
        try:
            state.metrics_server = start_metrics_server(
                settings.metrics_host,
                settings.metrics_port,
                renderer(source),
                path=settings.metrics_path,
                protection=protection,
            )
        except OSError as exc:
            if mp_dir is None:
                raise ConfigurationError(
                    f"metrics_port {settings.metrics_port} on {settings.metrics_host}"
                    f" cannot be bound: {exc.strerror}"
                ) from exc
            log.info("metrics port %s already served by another worker", settings.metrics_port)
    if not isinstance(result, type(app)) and hasattr(result, "__dict__"):
        result.glassbox = state
    return result  # type: ignore[no-any-return]
