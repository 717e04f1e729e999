"""Checks of the machine the service runs on: disk, memory, CPU. None of them blocks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from glassbox.exceptions import ConfigurationError
from glassbox.health.checks.base import Check
from glassbox.health.result import CheckResult

__all__ = ["Cpu", "Disk", "Memory", "cgroup_memory_limit"]


def _thresholds(name: str, warn: float, fail: float) -> None:
    if not (0 < warn <= fail <= 1):
        raise ConfigurationError(
            f"health check {name!r}: need 0 < warn <= fail <= 1 (fractions),"
            f" got warn={warn}, fail={fail}"
        )


def _grade(name: str, used: float, warn: float, fail: float, what: str) -> CheckResult:
    value = round(used * 100, 2)
    if used >= fail:
        return CheckResult.failed(f"{what} {value}% used (fail at {fail * 100:g}%)", value, "%")
    if used >= warn:
        return CheckResult.warned(f"{what} {value}% used (warn at {warn * 100:g}%)", value, "%")
    return CheckResult.passed(value, "%")


class _Utilization(Check):
    """A used fraction graded against warn/fail thresholds; not critical by default."""

    component_type = "system"
    measurement = "utilization"

    def __init__(self, name: str, warn: float, fail: float, **kw: Any) -> None:
        kw.setdefault("critical", False)
        super().__init__(name, **kw)
        _thresholds(name, warn, fail)
        self.warn, self.fail = warn, fail

    def grade(self, used: float, what: str) -> CheckResult:
        return _grade(self.name, used, self.warn, self.fail, what)


class Disk(_Utilization):
    """Used fraction of the filesystem holding ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str] = "/",
        *,
        warn: float = 0.85,
        fail: float = 0.95,
        name: str = "disk",
        **kw: Any,
    ) -> None:
        super().__init__(name, warn, fail, **kw)
        self.path = Path(path)

    def probe(self) -> CheckResult:
        usage = shutil.disk_usage(self.path)
        return self.grade(usage.used / usage.total, f"disk {self.path}")


def cgroup_memory_limit() -> int | None:
    """The cgroup (v2, then v1) memory limit of this process in bytes, if any."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:
            return int(raw)
    return None


class Memory(_Utilization):
    """Resident memory against the cgroup limit (or ``limit_bytes``, or total RAM)."""

    def __init__(
        self,
        *,
        limit_bytes: int | None = None,
        warn: float = 0.85,
        fail: float = 0.95,
        name: str = "memory",
        **kw: Any,
    ) -> None:
        super().__init__(name, warn, fail, **kw)
        if limit_bytes is not None and limit_bytes <= 0:
            raise ConfigurationError(f"health check {name!r}: limit_bytes must be > 0")
        self.limit_bytes = limit_bytes

    def probe(self) -> CheckResult:
        import psutil

        rss = psutil.Process().memory_info().rss
        limit = self.limit_bytes or cgroup_memory_limit() or psutil.virtual_memory().total
        return self.grade(rss / limit, "memory")


class Cpu(_Utilization):
    """System CPU utilisation since the previous probe (never sleeps to measure)."""

    def __init__(
        self, *, warn: float = 0.9, fail: float = 1.0, name: str = "cpu", **kw: Any
    ) -> None:
        super().__init__(name, warn, fail, **kw)
        import psutil

        psutil.cpu_percent(None)  # prime: the next call measures from here

    def probe(self) -> CheckResult:
        import psutil

        used = psutil.cpu_percent(None) / 100
        return self.grade(used, "cpu")
