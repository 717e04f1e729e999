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


def _route_path(scope: MutableMapping[str, Any]) -> str:
    """The request path below the app's own root path (mounts may have moved root_path)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("app_root_path", scope.get("root_path", "")) or "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


def _chain_matches(chain: tuple[Any, ...], path: str) -> bool:
    """True if the mounts in ``chain`` and then its leaf route match ``path``."""
    for node in chain:
        regex = getattr(node, "path_regex", None)
        match = regex.match(path) if regex is not None else None
        if match is None:
            return False
        rest = match.groupdict().get("path")
        if node is not chain[-1]:
            path = "/" + (rest or "")
    return True


def _children(route: Any) -> list[Any]:
    """The routes below a Mount, also when its app is wrapped in middleware."""
    routes = getattr(route, "routes", None)
    if routes or not hasattr(route, "path_format"):
        return list(routes or [])
    app = getattr(route, "app", None)
    for _ in range(16):  # follow .app through middleware layers to a router
        if app is None:
            break
        found = getattr(app, "routes", None)
        if found:
            return list(found)
        app = getattr(app, "app", None)
    return []


class StarletteRoutes:
    """Resolves ``scope["route"]`` of a Starlette/FastAPI app to its full template."""

    def __init__(self, root: Any) -> None:
        self._root = root
        self.by_route: dict[int, tuple[Any, str]] = {}
        # endpoint -> every (endpoint, template, chain) serving it, in routing order; the
        # chain (mounts..., leaf) disambiguates an endpoint shared by several routes
        self._by_endpoint: dict[int, list[tuple[Any, str, tuple[Any, ...]]]] = {}
        self._known = -1
        # route objects still unknown after a rebuild: answered without walking again
        self._unknown: dict[int, tuple[Any, str]] = {}

    def _walk(
        self, routes: list[Any], prefix: str, seen: set[int], chain: tuple[Any, ...] = ()
    ) -> None:
        for route in routes:
            if id(route) in seen:
                continue
            seen.add(id(route))
            children = _children(route)
            if children and hasattr(route, "path_format"):  # Mount with a router
                base = prefix + _mount_prefix(route)
                self.by_route[id(route)] = (route, base + "/{path}")
                self._walk(list(children), base, seen, (*chain, route))
            elif children:  # Host: the host is not part of the path
                self._walk(list(children), prefix, seen, chain)
            else:
                template = getattr(route, "path_format", None) or getattr(route, "path", None)
                if isinstance(template, str):
                    full = prefix + template
                    self.by_route[id(route)] = (route, full)
                    endpoint = getattr(route, "endpoint", None)
                    if endpoint is not None:
                        self._by_endpoint.setdefault(id(endpoint), []).append(
                            (endpoint, full, (*chain, route))
                        )

    def rebuild(self) -> None:
        """Walk the route tree again (routes may be added after instrumenting)."""
        self.by_route.clear()
        self._unknown.clear()
        self._by_endpoint.clear()
        routes = getattr(self._root, "routes", None) or []
        self._walk(list(routes), "", set())
        self._known = len(self.by_route)

    def __call__(self, scope: MutableMapping[str, Any]) -> str:
        route = scope.get("route")
        if route is not None:
            hit = self.by_route.get(id(route))
            if hit is not None and hit[0] is route:
                return hit[1]
            hit = self._unknown.get(id(route))
            if hit is not None and hit[0] is route:
                return hit[1]
            self.rebuild()
            hit = self.by_route.get(id(route))
            if hit is not None and hit[0] is route:
                return hit[1]
            template = getattr(route, "path_format", None)
            label = template if isinstance(template, str) else UNMATCHED_ROUTE
            self._unknown[id(route)] = (route, label)
            return label
        endpoint = scope.get("endpoint")  # Starlette < 1.7 does not set "route"
        if endpoint is not None:
            hits = self._by_endpoint.get(id(endpoint))
            if not hits or hits[0][0] is not endpoint:
                self.rebuild()
                hits = self._by_endpoint.get(id(endpoint))
            if hits and hits[0][0] is endpoint:
                if len(hits) == 1:
                    return hits[0][1]
                path = _route_path(scope)
                for _, template, chain in hits:
                    if _chain_matches(chain, path):
                        return template
        return UNMATCHED_ROUTE


def unmatched(scope: MutableMapping[str, Any]) -> str:
    """Resolver for apps without a router: one label value for everything."""
    route = scope.get("glassbox.route")
    return route if isinstance(route, str) else UNMATCHED_ROUTE
