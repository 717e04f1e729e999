"""Health checks that tell the truth and never hurt the service."""

from glassbox.health import checks
from glassbox.health.endpoints import HealthEndpoints, HealthMiddleware, WSGIHealthMiddleware
from glassbox.health.result import CheckResult, Status
from glassbox.health.runner import HealthRunner

__all__ = [
    "CheckResult",
    "HealthEndpoints",
    "HealthMiddleware",
    "HealthRunner",
    "Status",
    "WSGIHealthMiddleware",
    "checks",
]
