"""Turning results into ``application/health+json`` bodies and HTTP answers."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any, Final

from glassbox.health.checks.base import Check
from glassbox.health.result import CheckResult, Status, worst

__all__ = ["CONTENT_TYPE", "ProcessInfo", "build_body", "overall"]

CONTENT_TYPE: Final = "application/health+json"


def overall(checks: tuple[Check, ...], results: dict[str, CheckResult]) -> Status:
    """Critical failures fail; a failing non-critical check only degrades to warn."""
    statuses = []
    for check in checks:
        status = results[check.name].status
        if status is Status.FAIL and not check.critical:
            status = Status.WARN
        statuses.append(status)
    return worst(statuses)


class ProcessInfo:
    """Uptime, memory and CPU of this process, read without blocking."""

    def __init__(self) -> None:
        self.started = time.time()
        import psutil

        self._proc = psutil.Process(os.getpid())
        self._proc.cpu_percent(None)  # primes the non-blocking CPU reading

    def as_json(self) -> dict[str, Any]:
        if self._proc.pid != os.getpid():  # forked worker
            import psutil

            self._proc = psutil.Process(os.getpid())
            self._proc.cpu_percent(None)
        memory = self._proc.memory_info()
        return {
            "pid": self._proc.pid,
            "uptimeSeconds": round(time.time() - self.started, 3),
            "memoryRssBytes": memory.rss,
            "cpuPercent": self._proc.cpu_percent(None),
        }


def build_body(
    *,
    status: Status,
    checks: tuple[Check, ...],
    results: dict[str, CheckResult],
    service: str,
    version: str,
    detailed: bool,
    show_output: bool,
    process: ProcessInfo | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "status": status.value,
        "version": version,
        "releaseId": version,
        "serviceId": service,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if checks:
        body["checks"] = {
            check.key: [
                {
                    "componentId": check.name,
                    **results[check.name].as_json(
                        component_type=check.component_type,
                        detailed=detailed,
                        show_output=show_output,
                    ),
                    **({} if check.critical else {"critical": False}),
                }
            ]
            for check in checks
        }
    if detailed and process is not None:
        body["process"] = process.as_json()
    return json.dumps(body, separators=(",", ":")).encode()
