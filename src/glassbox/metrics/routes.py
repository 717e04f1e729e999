"""Route-template resolution: the ``route`` label is a template, never a raw path.

Starlette (and FastAPI) record the matched route object in ``scope["route"]`` (and
the endpoint in ``scope["endpoint"]``). The route tree is walked once (again only
when an unknown route object shows up) into a map from route object to its full
template, mount prefixes included, so the per-request cost is one dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from glassbox.metrics.catalogue import UNMATCHED_ROUTE

__all__ = ["RouteResolver", "StarletteRoutes"]

RouteResolver = Callable[[MutableMapping[str, Any]], str]
"""Maps an ASGI scope (after the app ran) to a bounded route label."""


def _mount_prefix(route: Any) -> str:
    fmt = getattr(route, "path_format", "")
    return fmt[: -len("/{path}")] if fmt.endswith("/{path}") else fmt.rstrip("/")


class StarletteRoutes:
    """Resolves ``scope["route"]`` of a Starlette/FastAPI app to its full template."""

    def __init__(self, root: Any) -> None:
        self._root = root
        self._by_route: dict[int, tuple[Any, str]] = {}
        self._by_endpoint: dict[int, tuple[Any, str]] = {}
        self._known = -1

    def _walk(self, routes: list[Any], prefix: str, seen: set[int]) -> None:
        for route in routes:
            if id(route) in seen:
                continue
            seen.add(id(route))
            children = getattr(route, "routes", None)
            if children and hasattr(route, "path_format"):  # Mount with a router
                base = prefix + _mount_prefix(route)
                self._by_route[id(route)] = (route, base + "/{path}")
                self._walk(list(children), base, seen)
            elif children:  # Host: the host is not part of the path
                self._walk(list(children), prefix, seen)
            else:
                template = getattr(route, "path_format", None) or getattr(route, "path", None)
                if isinstance(template, str):
                    full = prefix + template
                    self._by_route[id(route)] = (route, full)
                    endpoint = getattr(route, "endpoint", None)
                    if endpoint is not None and id(endpoint) not in self._by_endpoint:
                        self._by_endpoint[id(endpoint)] = (endpoint, full)

    def rebuild(self) -> None:
        """Walk the route tree again (routes may be added after instrumenting)."""
        self._by_route.clear()
        self._by_endpoint.clear()
        routes = getattr(self._root, "routes", None) or []
        self._walk(list(routes), "", set())
        self._known = len(self._by_route)

    def __call__(self, scope: MutableMapping[str, Any]) -> str:
        route = scope.get("route")
        if route is not None:
            hit = self._by_route.get(id(route))
            if hit is not None and hit[0] is route:
                return hit[1]
            self.rebuild()
            hit = self._by_route.get(id(route))
            if hit is not None and hit[0] is route:
                return hit[1]
            template = getattr(route, "path_format", None)
            return template if isinstance(template, str) else UNMATCHED_ROUTE
        endpoint = scope.get("endpoint")  # Starlette releases that do not set "route"
        if endpoint is not None:
            hit = self._by_endpoint.get(id(endpoint))
            if hit is None or hit[0] is not endpoint:
                self.rebuild()
                hit = self._by_endpoint.get(id(endpoint))
            if hit is not None and hit[0] is endpoint:
                return hit[1]
        return UNMATCHED_ROUTE


def unmatched(scope: MutableMapping[str, Any]) -> str:
    """Resolver for apps without a router: one label value for everything."""
    route = scope.get("glassbox.route")
    return route if isinstance(route, str) else UNMATCHED_ROUTE
