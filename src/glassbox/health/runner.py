"""Running checks: concurrently, each with its own timeout, cached, single-flight.

- Every check runs at most once at a time: concurrent probes share the run in flight.
- A result is reused for ``pass_ttl`` seconds (``fail_ttl`` when it failed), so a
  thousand probes a second cost the dependency one check per window.
- A check that raises, returns garbage or outlives its timeout becomes ``fail`` with a
  short message; nothing escapes to the endpoint.
- A synchronous check runs in a worker thread; one that hangs there is not started
  again until it returns (threads do not pile up behind a dead dependency).
- A status change is logged once, not on every probe; each run updates
  ``health_check_status{check,critical}`` and ``health_check_duration_seconds{check}``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from glassbox.exceptions import ConfigurationError
from glassbox.health.checks.base import Check, as_check, to_result
from glassbox.health.result import CheckResult, Status
from glassbox.metrics.registry import REGISTRY, Registry

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_FAIL_TTL", "DEFAULT_PASS_TTL", "HealthRunner"]

DEFAULT_PASS_TTL: Final = 2.0
DEFAULT_FAIL_TTL: Final = 0.5
#: Overall deadline of one probe, below Kubernetes' 1 s default probe timeout.
DEFAULT_DEADLINE: Final = 0.8
_DURATION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

log = logging.getLogger("glassbox.health")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return message[:200]


class HealthRunner:
    """Runs a fixed set of checks for the health endpoints."""

    def __init__(
        self,
        checks: Iterable[object] = (),
        *,
        pass_ttl: float = DEFAULT_PASS_TTL,
        fail_ttl: float = DEFAULT_FAIL_TTL,
        deadline: float = DEFAULT_DEADLINE,
        registry: Registry | None = None,
    ) -> None:
        for name, value in (("pass_ttl", pass_ttl), ("fail_ttl", fail_ttl)):
            if not isinstance(value, int | float) or value < 0:
                raise ConfigurationError(f"health {name} must be >= 0 seconds, got {value!r}")
        if not isinstance(deadline, int | float) or deadline <= 0:
            raise ConfigurationError(f"health deadline must be > 0 seconds, got {deadline!r}")
        self.checks: tuple[Check, ...] = tuple(as_check(c) for c in checks)
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigurationError(f"health check names must be unique; repeated: {dupes}")
        self.pass_ttl, self.fail_ttl, self.deadline = (
            float(pass_ttl),
            float(fail_ttl),
            float(deadline),
        )
        self._cache: dict[str, tuple[CheckResult, float]] = {}
        self._inflight: dict[tuple[str, int], asyncio.Future[CheckResult]] = {}
        #: When the current run of each check started (monotonic), for the deadline.
        self._started: dict[str, float] = {}
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self._last: dict[str, Status] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, len(self.checks)), thread_name_prefix="glassbox-health"
        )
        self._bg_loop: asyncio.AbstractEventLoop | None = None
        self._bg_lock = threading.Lock()
        self.runs: dict[str, int] = dict.fromkeys(names, 0)
        reg = registry or REGISTRY
        self._status_gauge = reg.gauge(
            "health_check_status",
            "Health check status: 1 pass, 0.5 warn, 0 fail.",
            ["check", "critical"],
            mode="max",
        )
        self._duration = reg.histogram(
            "health_check_duration_seconds",
            "Health check duration in seconds.",
            ["check"],
            buckets=_DURATION_BUCKETS,
        )

    # -- selection ------------------------------------------------------------------------

    @property
    def readiness_checks(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.readiness)

    # -- running --------------------------------------------------------------------------

    async def run(self, checks: Sequence[Check]) -> dict[str, CheckResult]:
        """Results of ``checks`` keyed by name, within the overall deadline."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        results: dict[str, CheckResult] = {}
        waiting: dict[str, asyncio.Future[CheckResult]] = {}
        for check in checks:
            cached = self._cache.get(check.name)
            if cached is not None and cached[1] > now:
                results[check.name] = cached[0]
                continue
            key = (check.name, id(loop))
            future = self._inflight.get(key)
            if future is None or future.done() or future.get_loop() is not loop:
                self._started.pop(check.name, None)
                future = loop.create_task(self._execute(check))
                self._inflight[key] = future
            waiting[check.name] = future
        if waiting:
            await self._wait(waiting)
            for name, future in waiting.items():
                if future.done() and not future.cancelled():
                    results[name] = future.result()
                else:
                    results[name] = CheckResult.failed(
                        f"no result within the overall deadline of {self.deadline}s"
                    )
        return results

    async def _wait(self, waiting: dict[str, asyncio.Future[CheckResult]]) -> None:
        """Wait for the runs up to the deadline, counted from when each run started.

        On a congested loop a new run may start well after the probe began waiting (behind
        hundreds of other requests); that queueing must not turn a healthy dependency into
        a failure, so a run gets its whole deadline from its own start. A probe that joins
        a run already under way waits no longer than before.
        """
        pending = {asyncio.shield(f) for f in waiting.values()}
        timeout = self.deadline
        while True:
            _, pending = await asyncio.wait(pending, timeout=timeout)
            if not pending:
                return
            now = time.monotonic()
            timeout = max(
                self._started.get(name, now) + self.deadline - now
                for name, future in waiting.items()
                if not future.done()
            )
            if timeout <= 0:
                return

    async def _execute(self, check: Check) -> CheckResult:
        self._started[check.name] = time.monotonic()
        start = time.perf_counter()
        try:
            if check.runs_in_thread:
                value = await self._in_thread(check)
                if inspect.isawaitable(value):  # e.g. lambda: db.ping() over an async client
                    value = await asyncio.wait_for(value, check.timeout)
            else:
                value = await asyncio.wait_for(check.probe(), check.timeout)  # type: ignore[arg-type]
            result = to_result(value)
        except TimeoutError:
            result = CheckResult.failed(f"timed out after {check.timeout}s")
        except Exception as exc:  # a broken check is a failed check, never a 500
            result = CheckResult.failed(_short(exc))
        duration = time.perf_counter() - start
        result = dataclasses.replace(result, duration=duration)
        self._record(check, result)
        return result

    async def _in_thread(self, check: Check) -> Any:
        with self._busy_lock:
            if check.name in self._busy:
                return CheckResult.failed("previous run has not returned yet (hanging)")
            self._busy.add(check.name)

        def call() -> Any:
            try:
                return check.probe()
            finally:
                with self._busy_lock:
                    self._busy.discard(check.name)

        future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        return await asyncio.wait_for(future, check.timeout)

    def _record(self, check: Check, result: CheckResult) -> None:
        ttl = self.pass_ttl if result.status is Status.PASS else self.fail_ttl
        self._cache[check.name] = (result, time.monotonic() + ttl)
        self.runs[check.name] = self.runs.get(check.name, 0) + 1
        self._status_gauge.set(
            result.status.gauge, check.name, "true" if check.critical else "false"
        )
        self._duration.observe(result.duration, check.name)
        before = self._last.get(check.name)
        if before is not result.status:
            self._last[check.name] = result.status
            if before is None and result.status is Status.PASS:
                return
            level = logging.INFO if result.status is Status.PASS else logging.WARNING
            log.log(
                level,
                "health check %s: %s -> %s%s",
                check.name,
                before.value if before else "unknown",
                result.status.value,
                f" ({result.output})" if result.output else "",
            )

    # -- from synchronous code (WSGI) ------------------------------------------------------------

    def run_sync(self, checks: Sequence[Check]) -> dict[str, CheckResult]:
        """:meth:`run` from a thread without an event loop (uses a private loop thread)."""
        with self._bg_lock:
            if self._bg_loop is None or self._bg_loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="glassbox-health-loop", daemon=True
                ).start()
                self._bg_loop = loop
            loop = self._bg_loop
        future = asyncio.run_coroutine_threadsafe(self.run(checks), loop)
        return future.result(timeout=self.deadline + 5)
