"""`glassbox demo`: the whole loop in about a minute, on 127.0.0.1, no Docker.

Starts a real Redis, the instrumented demo shop (a uvicorn subprocess whose readiness
checks Redis), a traffic generator and the local stack (Prometheus, Alertmanager and
the notification inbox) with demo-tuned windows; then injects faults on a timeline:
an error burst, a latency spike, Redis stopped, recovery. It shows what Prometheus
and Alertmanager see and each notification as it arrives, then reports the time from
each fault to its first notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from glassbox.exceptions import ConfigurationError
from glassbox.local.stack import LocalPorts, LocalStack

__all__ = ["DEMO_CONFIG", "Demo", "Fault", "FaultResult", "run_demo"]

DEMO_CONFIG = """\
# glassbox demo: windows in seconds so the loop closes within a minute.
project = "demo"
environment = "demo"
output = "monitoring"

[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"
retention_time = "1d"

[[services]]
name = "shop"
targets = ["127.0.0.1:{port}"]

[services.alerts]
window = "10s"
error_ratio = 0.1
error_for = "3s"
down_for = "3s"
dependency_for = "2s"
min_request_rate = 0.5

[[services.alerts.latency]]
quantile = 0.95
threshold = 0.5
severity = "warning"
for = "3s"

[[services.alerts.latency]]
quantile = 0.99
threshold = 5.0
severity = "critical"
for = "5s"

[[receivers]]
name = "oncall"
kind = "pagerduty"
routing_key = {{ env = "DEMO_PAGERDUTY_KEY" }}

[[receivers]]
name = "team-slack"
kind = "slack"
api_url = {{ env = "DEMO_SLACK_WEBHOOK" }}
channel = "#shop"

[[receivers]]
name = "team-email"
kind = "email"
to = "shop-team@example.com"
from = "alertmanager@example.com"
smarthost = "smtp.example.com:587"

[routing]
default_receiver = "team-email"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "2s"
repeat_interval = "1h"

[[routing.routes]]
severity = "critical"
receivers = ["oncall", "team-slack"]

[[routing.routes]]
severity = "warning"
receivers = ["team-slack"]
"""

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault on the timeline and the alert it should raise."""

    name: str
    start: float
    end: float
    alert: str
    receivers: tuple[str, ...]


TIMELINE = (
    Fault("error burst: half the requests fail", 8, 26, "ServiceHighErrorRatio",
          ("oncall", "team-slack")),
    Fault("latency spike: requests take 0.8 s", 28, 46, "ServiceLatencyP95High", ("team-slack",)),
    Fault("Redis stopped: readiness fails", 48, 62, "DependencyUnhealthy",
          ("oncall", "team-slack")),
)  # fmt: skip


@dataclass(slots=True)
class FaultResult:
    """What happened after one fault."""

    fault: Fault
    notified: dict[str, float] = field(default_factory=dict)  # receiver -> seconds after start
    resolved: dict[str, float] = field(default_factory=dict)

    @property
    def time_to_notify(self) -> float | None:
        return min(self.notified.values()) if self.notified else None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise ConfigurationError(f"demo: {what} did not happen within {timeout:.0f} s")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code < 500
    except httpx.HTTPError:
        return False


class Demo:
    """The demo's processes and timeline; :meth:`run` drives it to the end."""

    def __init__(self, workdir: Path, *, duration: float = 75.0, say: Say = print) -> None:
        self.workdir = workdir
        self.duration = duration
        self.say = say
        self.redis: subprocess.Popen[bytes] | None = None
        self.service: subprocess.Popen[bytes] | None = None
        self.stack: LocalStack | None = None
        self.redis_port = _free_port()
        self.service_port = _free_port()
        # chosen up front: the shop sends its traces and logs to the console's OTLP port
        self.ports = LocalPorts(0, 0, 0, 0, 0).resolved()
        self.started = 0.0
        self.results = [FaultResult(f) for f in TIMELINE if f.start < duration]
        self.readiness: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._traffic: threading.Thread | None = None
        self._last_status = 0.0

    # -- processes ------------------------------------------------------------------------

    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigurationError(
                "redis-server is not installed: install the Debian package 'redis-server'"
                " (./scripts/demo.sh does)"
            )
        log = (self.workdir / "redis.log").open("ab")
        self.redis = subprocess.Popen(
            [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        import socket

        def accepting() -> bool:
            with socket.socket() as sock:
                sock.settimeout(0.2)
                return sock.connect_ex(("127.0.0.1", self.redis_port)) == 0

        _wait(accepting, 10, "Redis accepting connections")

    def start_service(self) -> None:
        env = {
            **os.environ,
            "DEMO_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.ports.console}",
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
            "GLASSBOX_ACCESS_LOG": "false",
        }
        log = (self.workdir / "shop.log").open("ab")
        self.service = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "glassbox.demo.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(self.service_port), "--no-access-log",
             "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        _wait(lambda: _answers(f"{self.base}/health/live"), 20, "the demo shop answering")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.service_port}"

    def start_stack(self) -> None:
        config = self.workdir / "glassbox.toml"
        config.write_text(DEMO_CONFIG.format(port=self.service_port), encoding="utf-8")
        self.stack = LocalStack(
            config,
            ports=self.ports,
            on_event=lambda name, message: self.say(f"  {name}: {message}"),
        )
        self.stack.start(watch=False)

    # -- traffic and faults -----------------------------------------------------------------

    def _traffic_loop(self) -> None:
        async def worker(client: httpx.AsyncClient, n: int) -> None:
            i = 0
            while not self._stop.is_set():
                i += 1
                with contextlib.suppress(httpx.HTTPError):
                    if i % 5 == 0:
                        await client.post(f"{self.base}/api/orders", params={"items": i % 7 + 1})
                    else:
                        await client.get(f"{self.base}/api/items/{(i * 7 + n) % 50}")
                await asyncio.sleep(0.2)

        async def probe(client: httpx.AsyncClient) -> None:
            # what a kubelet would do: probe readiness every second
            while not self._stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{self.base}/health/ready")
                    self.readiness.append((self.elapsed, response.status_code))
                await asyncio.sleep(1.0)

        async def main() -> None:
            async with httpx.AsyncClient(timeout=5) as client:
                await asyncio.gather(probe(client), *(worker(client, n) for n in range(6)))

        asyncio.run(main())

    def set_faults(self, error_ratio: float = 0.0, latency: float = 0.0) -> None:
        httpx.put(
            f"{self.base}/admin/faults",
            json={"error_ratio": error_ratio, "latency": latency},
            timeout=5,
        ).raise_for_status()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _apply(self, index: int, active: bool) -> None:
        if index == 0:
            self.set_faults(error_ratio=0.5 if active else 0.0)
        elif index == 1:
            self.set_faults(latency=0.8 if active else 0.0)
        elif index == 2:
            if active:
                _stop(self.redis)
            else:
                self.start_redis()

    def _collect(self) -> None:
        """Match inbox deliveries to the faults that caused them."""
        assert self.stack is not None
        assert self.stack.inbox is not None
        wall_start = time.time() - self.elapsed
        for delivery in self.stack.inbox.deliveries():
            for result in self.results:
                if result.fault.alert not in delivery.alertnames:
                    continue
                at = delivery.time.timestamp() - wall_start - result.fault.start
                bucket = result.notified if delivery.status == "firing" else result.resolved
                if delivery.receiver not in bucket or at < bucket[delivery.receiver]:
                    bucket[delivery.receiver] = round(at, 2)

    def run(self) -> list[FaultResult]:
        """Start everything, play the timeline, stop everything."""
        try:
            self.say("starting Redis, the demo shop and the local stack ...")
            self.start_redis()
            self.start_service()
            self.start_stack()
            assert self.stack is not None
            self.say(
                f"  shop {self.base}   Prometheus {self.stack.prometheus_url}"
                f"   Alertmanager {self.stack.alertmanager_url}"
                f"   inbox {self.stack.inbox.http_url}"
            )
            if self.stack.console is not None:
                self.say(f"  console {self.stack.console.url} (dashboards, alerts, inbox)")
            self.started = time.monotonic()
            self._traffic = threading.Thread(target=self._traffic_loop, daemon=True)
            self._traffic.start()
            events: list[tuple[float, int, bool]] = []
            for i, result in enumerate(self.results):
                events.append((result.fault.start, i, True))
                events.append((min(result.fault.end, self.duration - 1), i, False))
            events.sort()
            seen: set[tuple[str, str, str]] = set()
            for at, index, active in events:
                while self.elapsed < at:
                    self._report(seen)
                    time.sleep(0.25)
                fault = self.results[index].fault
                self.say(f"[{self.elapsed:5.1f}s] {'FAULT' if active else 'recover'}: {fault.name}")
                self._apply(index, active)
            while self.elapsed < self.duration:
                self._report(seen)
                time.sleep(0.25)
            self._report(seen)
            self._collect()
            return self.results
        finally:
            self.close()

    def _status(self) -> str:
        """One line of what Prometheus and Alertmanager see right now."""
        assert self.stack is not None
        window = "10s"
        queries = {
            "rate": f"service:http_requests:rate{window}",
            "errors": f"service:http_request_error_ratio:rate{window}",
            "p95": f"service:http_request_duration_seconds:p95_{window}",
        }
        values: dict[str, float | None] = {}
        with httpx.Client(timeout=2) as client:
            for key, expr in queries.items():
                try:
                    result = client.get(
                        f"{self.stack.prometheus_url}/api/v1/query", params={"query": expr}
                    ).json()["data"]["result"]
                    values[key] = float(result[0]["value"][1]) if result else None
                except (httpx.HTTPError, KeyError, ValueError, IndexError):
                    values[key] = None
            try:
                alerts = client.get(
                    f"{self.stack.alertmanager_url}/api/v2/alerts",
                    params={"active": "true", "silenced": "false", "inhibited": "false"},
                ).json()
                firing = sorted({a["labels"]["alertname"] for a in alerts})
            except (httpx.HTTPError, KeyError, ValueError):
                firing = []

        def show(value: float | None, fmt: str) -> str:
            return "-" if value is None or math.isnan(value) else fmt.format(value)

        ready = self.readiness[-1][1] if self.readiness else 0
        return (
            f"[{self.elapsed:5.1f}s] {show(values['rate'], '{:.1f}')} req/s"
            f"  5xx {show(values['errors'], '{:.0%}')}  p95 {show(values['p95'], '{:.2f} s')}"
            f"  ready {ready}  firing: {', '.join(firing) or 'none'}"
        )

    def _report(self, seen: set[tuple[str, str, str]]) -> None:
        """Print each new notification as it arrives, and a status line every 5 s."""
        if self.stack is None or self.stack.inbox is None:
            return
        if self.elapsed - self._last_status >= 5:
            self._last_status = self.elapsed
            self.say(self._status())
        for delivery in reversed(self.stack.inbox.deliveries()):
            key = (str(delivery.id), delivery.receiver, delivery.status)
            if key in seen:
                continue
            seen.add(key)
            names = ", ".join(delivery.alertnames)
            self.say(
                f"[{self.elapsed:5.1f}s] notification -> {delivery.receiver} ({delivery.kind}):"
                f" {delivery.status.upper()} {names}"
            )

    def close(self) -> None:
        self._stop.set()
        if self._traffic is not None:
            self._traffic.join(timeout=10)
        if self.stack is not None:
            self.stack.stop()
        _stop(self.service)
        _stop(self.redis)


def run_demo(
    duration: float = 75.0, *, workdir: Path | None = None, say: Say = print
) -> list[FaultResult]:
    """Run the demo; returns each fault's time-to-notify figures."""
    own = workdir is None
    directory = workdir or Path(tempfile.mkdtemp(prefix="glassbox-demo-"))
    try:
        demo = Demo(directory, duration=duration, say=say)
        results = demo.run()
    finally:
        if own:
            shutil.rmtree(directory, ignore_errors=True)
    say("")
    say("time from fault to first notification:")
    for result in results:
        first = result.time_to_notify
        shown = f"{first:5.1f} s" if first is not None else "  none"
        receivers = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(result.notified.items()))
        resolved = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(result.resolved.items()))
        say(
            f"  {result.fault.alert:24} {shown}   firing: {receivers or '-'}"
            f"   resolved: {resolved or '-'}"
        )
    return results
