"""Health checks that tell the truth and never hurt the service."""

from glassbox.health import checks
from glassbox.health.endpoints import HealthEndpoints, WSGIHealthMiddleware
from glassbox.health.result import CheckResult, Status
from glassbox.health.runner import HealthRunner

__all__ = [
    "CheckResult",
    "HealthEndpoints",
    "HealthRunner",
    "Status",
    "WSGIHealthMiddleware",
    "checks",
]
