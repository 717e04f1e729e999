"""Built-in health checks. A custom check is any callable, sync or async."""

from glassbox.health.checks.base import DEFAULT_TIMEOUT, Check, FunctionCheck
from glassbox.health.checks.datastores import Postgres, Redis
from glassbox.health.checks.http import Http, Qdrant
from glassbox.health.checks.mongodb import MongoDB
from glassbox.health.checks.system import Cpu, Disk, Memory

__all__ = [
    "DEFAULT_TIMEOUT",
    "Check",
    "Cpu",
    "Disk",
    "FunctionCheck",
    "Http",
    "Memory",
    "MongoDB",
    "Postgres",
    "Qdrant",
    "Redis",
]
