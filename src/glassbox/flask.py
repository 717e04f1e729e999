"""Flask adapter: the WSGI middleware plus the matched URL rule as the route label."""

from __future__ import annotations

from typing import Any

from glassbox.metrics.wsgi import ROUTE_KEY

__all__ = ["install_route_hook"]


def install_route_hook(app: Any) -> None:
    """Record ``request.url_rule.rule`` (blueprint prefixes included) for each request."""
    from flask import request

    def _tag_route() -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = rule.rule

    app.before_request_funcs.setdefault(None, []).insert(0, _tag_route)
