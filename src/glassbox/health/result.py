"""Health results in the ``application/health+json`` vocabulary: pass, warn, fail."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["CheckResult", "Status", "worst"]


class Status(enum.StrEnum):
    """A check's or a service's status; ``warn`` is "degraded but serving"."""

    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"

    @property
    def gauge(self) -> float:
        """The value of ``health_check_status``: 1 pass, 0.5 warn, 0 fail."""
        return {Status.PASS: 1.0, Status.WARN: 0.5, Status.FAIL: 0.0}[self]

    @property
    def http_status(self) -> int:
        """fail answers 503; pass and warn answer 200."""
        return 503 if self is Status.FAIL else 200


_ORDER = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(statuses: list[Status]) -> Status:
    """The worst of ``statuses`` (pass when empty)."""
    return max(statuses, key=_ORDER.__getitem__, default=Status.PASS)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one run of one check found."""

    status: Status
    output: str = ""
    observed_value: float | int | str | None = None
    observed_unit: str | None = None
    duration: float = 0.0
    at: float = field(default_factory=time.time)

    @classmethod
    def passed(cls, value: float | int | str | None = None, unit: str | None = None) -> CheckResult:
        return cls(Status.PASS, observed_value=value, observed_unit=unit)

    @classmethod
    def warned(
        cls, output: str, value: float | int | str | None = None, unit: str | None = None
    ) -> CheckResult:
        return cls(Status.WARN, output, value, unit)

    @classmethod
    def failed(
        cls, output: str, value: float | int | str | None = None, unit: str | None = None
    ) -> CheckResult:
        return cls(Status.FAIL, output, value, unit)

    def as_json(self, *, component_type: str, detailed: bool, show_output: bool) -> dict[str, Any]:
        """One entry of the health+json ``checks`` map."""
        out: dict[str, Any] = {"componentType": component_type, "status": self.status.value}
        if self.output and show_output:
            out["output"] = self.output
        if detailed:
            if self.observed_value is not None:
                out["observedValue"] = self.observed_value
                if self.observed_unit:
                    out["observedUnit"] = self.observed_unit
            out["durationMs"] = round(self.duration * 1000, 3)
            out["time"] = datetime.fromtimestamp(self.at, UTC).isoformat().replace("+00:00", "Z")
        return out
