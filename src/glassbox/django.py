"""Django adapter: a middleware that labels each request with its URL pattern.

Add ``"glassbox.django.RouteMiddleware"`` to ``MIDDLEWARE`` and wrap the WSGI or ASGI
application with :func:`glassbox.instrument`. The route is the full pattern of the
resolved URL (``api/users/<int:pk>/``, includes joined), prefixed with ``/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glassbox.metrics.wsgi import ROUTE_KEY

__all__ = ["MIDDLEWARE_PATH", "RouteMiddleware"]

MIDDLEWARE_PATH = "glassbox.django.RouteMiddleware"


class RouteMiddleware:
    """Puts the resolved URL pattern where the RED middleware reads it."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        if isinstance(route, str):
            template = "/" + route.lstrip("^").rstrip("$")
            environ = getattr(request, "environ", None)
            if isinstance(environ, dict):
                environ[ROUTE_KEY] = template
            scope = getattr(request, "scope", None)
            if isinstance(scope, dict):
                scope[ROUTE_KEY] = template


def middleware_installed() -> bool:
    """True if ``RouteMiddleware`` is in ``settings.MIDDLEWARE``."""
    from django.conf import settings

    return MIDDLEWARE_PATH in list(getattr(settings, "MIDDLEWARE", []) or [])
