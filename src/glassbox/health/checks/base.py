"""The check contract: a named callable, sync or async, with a timeout and criticality."""

from __future__ import annotations

import asyncio
import inspect
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final

from glassbox.exceptions import ConfigurationError
from glassbox.health.result import CheckResult, Status

__all__ = ["DEFAULT_TIMEOUT", "Check", "FunctionCheck", "PerLoop", "as_check", "to_result"]

#: Per-check timeout in seconds: well under Kubernetes' default 1 s probe timeout.
DEFAULT_TIMEOUT: Final = 0.5
_NAME_RE: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,63}\Z")

CheckReturn = CheckResult | Status | bool | None


class PerLoop:
    """One lazily made client per event loop: async clients cannot cross loops.

    Keyed weakly by the loop object, so a new loop never inherits a dead loop's client.
    """

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, factory: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = factory()
        return client


def exactly_one(check: str, **given: object) -> None:
    """Raise unless exactly one of ``given`` (e.g. client= or url=) is set."""
    if sum(value is not None for value in given.values()) != 1:
        names = " or ".join(f"{key}=" for key in given)
        raise ConfigurationError(f"health check {check!r}: pass either {names}, exactly one")


def to_result(value: object) -> CheckResult:
    """Turn what a check returned into a result (None and True pass, False fails)."""
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, Status):
        return CheckResult(value)
    if value is None or value is True:
        return CheckResult(Status.PASS)
    if value is False:
        return CheckResult(Status.FAIL, "check returned False")
    raise TypeError(
        f"a health check must return CheckResult, Status, bool or None, not {type(value).__name__}"
    )


class Check:
    """Base class of health checks: subclass and implement :meth:`probe`.

    ``critical`` checks decide readiness (their failure answers 503); a failing
    non-critical check only degrades the status to ``warn``. ``readiness=False``
    keeps a check out of ``/health/ready`` (shown on ``/health`` only).
    """

    component_type: str = "component"
    measurement: str = "status"

    def __init__(
        self,
        name: str,
        *,
        critical: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        readiness: bool = True,
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigurationError(
                f"health check name {name!r} is invalid: use 1-64 letters, digits, '_', '-'"
                " or '.', starting with a letter (it becomes a metric label value);"
                " for a lambda use FunctionCheck(fn, name='...')"
            )
        if not isinstance(timeout, int | float) or not 0 < timeout <= 60:
            raise ConfigurationError(
                f"health check {name!r}: timeout must be a number of seconds in (0, 60],"
                f" got {timeout!r}"
            )
        self.name = name
        self.critical = critical
        self.timeout = float(timeout)
        self.readiness = readiness

    @property
    def key(self) -> str:
        """The health+json key, ``component:measurement``."""
        return f"{self.name}:{self.measurement}"

    @property
    def runs_in_thread(self) -> bool:
        """True if :meth:`probe` is synchronous (it then runs in a worker thread)."""
        return not inspect.iscoroutinefunction(self.probe)

    def probe(self) -> CheckReturn | Awaitable[CheckReturn]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, critical={self.critical})"


class FunctionCheck(Check):
    """A plain function (sync or async) used as a check."""

    def __init__(self, fn: Callable[[], Any], name: str | None = None, **kw: Any) -> None:
        super().__init__(name or str(getattr(fn, "__name__", "check")), **kw)
        self._fn = fn
        self._async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - a callable object's async __call__
        )

    @property
    def runs_in_thread(self) -> bool:
        return not self._async

    def probe(self) -> Any:
        return self._fn()


def as_check(item: object) -> Check:
    """A :class:`Check` from a check object or a plain callable; else a clear error."""
    if isinstance(item, Check):
        return item
    if callable(item):
        return FunctionCheck(item)
    raise ConfigurationError(
        f"health check {item!r} is neither a glassbox Check nor a callable;"
        " pass e.g. glassbox.health.checks.Redis(...) or a function returning bool"
    )
