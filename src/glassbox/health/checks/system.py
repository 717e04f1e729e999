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


def cgroup_memory_limit(
    root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")
) -> int | None:
    """The memory limit of this process's cgroup in bytes (v2, then v1); None if unlimited.

    The effective limit is the smallest one set on the process's own cgroup or any of its
    parents: a container's cgroup is the mount's root, a systemd unit's (``MemoryMax=``)
    a path below it.
    """
    v2, v1 = "/", "/"
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if not controllers:
            v2 = path or "/"
        elif "memory" in controllers.split(","):
            v1 = path or "/"
    limits = [
        *_limits_up(root, v2, "memory.max"),
        *_limits_up(root / "memory", v1, "memory.limit_in_bytes"),
    ]
    return min(limits, default=None)


def _limits_up(mount: Path, cgroup: str, filename: str) -> list[int]:
    """The limits in ``filename`` from ``cgroup`` up to the mount's root ("max" skipped)."""
    parts = [p for p in cgroup.split("/") if p and p not in (".", "..")]
    found = []
    for depth in range(len(parts), -1, -1):
        try:
            raw = (mount.joinpath(*parts[:depth]) / filename).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:  # v1 writes "unlimited" as a huge number
            found.append(int(raw))
    return found


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
