"""Faults injected into a running `glassbox up`, and what each one loses (the goal: nothing).

A real instrumented service (the demo shop under uvicorn on 127.0.0.1) is scraped by
the real stack. Alertmanager is stopped for OUTAGE seconds: 20 here, the two minutes of
the robustness table with ``GLASSBOX_SOAK=1``. The full disk is a tmpfs of its own,
mounted under the test's temporary directory (root or CAP_SYS_ADMIN is needed; those
tests skip otherwise). A hanging dependency is a SIGSTOPped Redis behind the shop;
``tests/health/test_datastores.py`` covers one that accepts and never answers.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from benchmarks.soak import start_service, stop_service

from glassbox.console.store import LogRecord, TelemetryStore
from glassbox.local.inbox import Delivery, Inbox
from glassbox.local.stack import LocalPorts, LocalStack
from tests.conftest import wait_for
from tests.local.conftest import needs_stack

pytestmark = [pytest.mark.slow, needs_stack]

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("GLASSBOX_SOAK", "") not in ("", "0")
OUTAGE = 120.0 if SOAK else 20.0
SCRAPE = 1.0  # the configs' scrape and evaluation interval, seconds
# A (re)started Prometheus scrapes first on its scrape manager's reload tick, at least
# 5 s after start in Prometheus 2.x (scrape/manager.go, reloader()): part of a restart.
RELOAD_TICK = 5.0
DISK_SIZE = "64m"

QUIET = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "ghost"
targets = ["127.0.0.1:9"]

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"""

SHOP = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "shop"
targets = ["127.0.0.1:{port}"]

[services.alerts]
window = "10s"
error_for = "2s"
dependency_for = "2s"

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[routing]
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"
"""

# the shop, and a service nobody runs; every alert goes to both receivers
ALERTING = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "shop"
targets = ["127.0.0.1:{port}"]

[services.alerts]
window = "10s"
error_for = "2s"

[[services]]
name = "ghost"
targets = ["127.0.0.1:9"]

[services.alerts]
down_for = "2s"
instance_down_for = "2s"

[[receivers]]
name = "oncall"
kind = "pagerduty"
routing_key = {{ env = "UNSET_IN_TESTS_PD" }}

[[receivers]]
name = "team-slack"
kind = "slack"
api_url = {{ env = "UNSET_IN_TESTS_SLACK" }}

[routing]
default_receiver = "team-slack"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"

[[routing.routes]]
matchers = ['service=~".+"']
receivers = ["oncall", "team-slack"]
"""
RECEIVERS = {"oncall", "team-slack"}

UP_SHOP = 'up{job="shop"}'
SHOP_COUNTER = (
    'http_requests_total{job="shop",method="GET",route="/api/items/{item_id}",status="200"}'
)


# -- the service, the stack, and what Prometheus and Alertmanager say --------------------


class Shop:
    """The demo shop under uvicorn on 127.0.0.1."""

    def __init__(self, log: Path, **env: str) -> None:
        self.proc, self.url = start_service(log, **env)
        self.port = int(self.url.rsplit(":", 1)[1])

    def faults(self, error_ratio: float = 0.0) -> None:
        response = httpx.put(
            f"{self.url}/admin/faults", json={"error_ratio": error_ratio}, timeout=5
        )
        assert response.status_code == 200, response.text

    def stop(self) -> None:
        stop_service(self.proc)


def answers(url: str, status: int = 200) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == status
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    served = Shop(tmp_path_factory.mktemp("shop") / "shop.log")
    yield served
    served.stop()


@pytest.fixture
def traffic(shop: Shop) -> Iterator[None]:
    """About 20 requests a second to the shop while the test runs."""
    shop.faults()
    done = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=shop.url, timeout=5) as client:
            i = 0
            while not done.wait(0.05):
                i += 1
                with contextlib.suppress(httpx.HTTPError):
                    client.get(f"/api/items/{i % 50}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    done.set()
    thread.join(10)
    shop.faults()


@pytest.fixture
def stacks() -> Iterator[list[LocalStack]]:
    """Stacks started by a test; all stopped at teardown."""
    started: list[LocalStack] = []
    yield started
    for stack in started:
        stack.stop()


def start_stack(
    stacks: list[LocalStack], config: Path, text: str | None = None, **kw: Any
) -> LocalStack:
    if text is not None:
        config.write_text(text)
    stack = LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0), **kw)
    stacks.append(stack)
    stack.start(watch=False)
    return stack


def prom(stack: LocalStack, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, str | float] = {"query": expr}
    if at is not None:
        params["time"] = at
    try:
        body = httpx.get(f"{stack.prometheus_url}/api/v1/query", params=params, timeout=5)
        result: list[dict[str, Any]] = body.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return []  # not answering, or 503 while it replays its WAL
    return result


def samples(
    stack: LocalStack, selector: str, seconds: float, at: float | None = None
) -> list[tuple[float, float]]:
    """The raw samples of one series: (time, value), oldest first.

    Raw, not query_range: a range query fills up to 5 minutes of lookback, so it would
    hide the very gaps looked for here.
    """
    result = prom(stack, f"{selector}[{int(seconds)}s]", at)
    if not result:
        return []
    assert len(result) == 1, result
    return [(float(t), float(v)) for t, v in result[0]["values"]]


def largest_gap(points: list[tuple[float, float]]) -> float:
    return max(b[0] - a[0] for a, b in itertools.pairwise(points))


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of one metric's samples on a /metrics page, matching ``labels``."""
    total = 0.0
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for line in text.splitlines():
        if not line.startswith((f"{name} ", f"{name}{{")):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def firing(stack: LocalStack) -> set[tuple[str, str]]:
    """(alertname, service) of every alert Prometheus holds firing."""
    return {
        (r["metric"]["alertname"], r["metric"].get("service", ""))
        for r in prom(stack, 'ALERTS{alertstate="firing"}')
    }


def alertmanager_alerts(stack: LocalStack) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.alertmanager_url}/api/v2/alerts", timeout=5)
    alerts: list[dict[str, Any]] = response.json()
    return alerts


def firing_deliveries(stack: LocalStack) -> dict[tuple[str, str], int]:
    """How many firing notifications each (receiver, alertname) got."""
    assert stack.inbox is not None
    counts: dict[tuple[str, str], int] = {}
    for delivery in stack.inbox.deliveries():
        if delivery.status == "firing":
            for name in delivery.alertnames:
                key = (delivery.receiver, name)
                counts[key] = counts.get(key, 0) + 1
    return counts


def resent(stack: LocalStack, batches: int) -> None:
    """Wait until Prometheus has sent its firing alerts ``batches`` more times."""
    url = stack.prometheus_url
    start = metric(url, "prometheus_notifications_sent_total")
    alerts = len(firing(stack))
    wait_for(
        lambda: metric(url, "prometheus_notifications_sent_total") >= start + batches * alerts,
        60,
        f"Prometheus to resend its alerts {batches} times",
    )


def assert_each_delivered_once(stack: LocalStack, fired: set[tuple[str, str]]) -> None:
    """Every alert that fired reached each receiver once, or is muted by one that did."""
    active = alertmanager_alerts(stack)
    held = {(a["labels"]["alertname"], a["labels"].get("service", "")) for a in active}
    assert fired <= held, f"lost between Prometheus and Alertmanager: {fired - held}"
    notified = {a["labels"]["alertname"] for a in active if not a["status"]["inhibitedBy"]}
    muted = {a["labels"]["alertname"] for a in active if a["status"]["inhibitedBy"]}
    assert {n for n, _ in fired} <= notified | muted
    delivered = firing_deliveries(stack)
    # each notified alert exactly once per receiver; a muted one at most once (it may
    # have gone out before the alert that mutes it reached Alertmanager), never twice
    assert {k: v for k, v in delivered.items() if k[1] in notified} == {
        (receiver, name): 1 for receiver in RECEIVERS for name in notified
    }
    others = {k: v for k, v in delivered.items() if k[1] not in notified}
    assert all(k[1] in muted and v == 1 for k, v in others.items()), others


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own: filling it fills nothing else."""
    where = tmp_path / "disk"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk refuses even 64 bytes; its path."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 64):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return ballast


def webhook(name: str) -> dict[str, object]:
    return {
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": name, "severity": "critical"}}],
    }


def test_the_inbox_on_a_full_disk_refuses_clearly_and_keeps_its_store(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused with a 5xx (so Alertmanager retries), one clear line, store intact."""
    store = small_disk / "inbox.sqlite"
    with Inbox(store) as inbox, httpx.Client(base_url=inbox.http_url, timeout=10) as http:
        assert http.post("/webhook/hooks", json=webhook("Before")).status_code == 200
        ballast = fill(small_disk)
        with caplog.at_level(logging.ERROR, logger="glassbox.inbox"):
            assert http.post("/webhook/hooks", json=webhook("Lost")).status_code == 500
            slack = http.post("/slack/chat", json={"text": "[FIRING:1] Lost"})
            assert (slack.status_code, slack.text) == (500, "rollup_error")
            with (
                smtplib.SMTP(*inbox.smtp_address, timeout=10) as smtp,
                pytest.raises(smtplib.SMTPDataError) as refused,
            ):
                smtp.sendmail("a@example.org", ["mail@inbox"], b"Subject: x\r\n\r\nx\r\n")
            assert refused.value.smtp_code == 451
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name == "glassbox.inbox" and r.levelno >= logging.ERROR
        ]
        assert len(lines) == 3, lines
        for line in lines:
            assert "no space left on device" in line, line
            assert str(store) in line, line
        assert all(r.exc_info is None for r in caplog.records), "a traceback for a full disk"
        ballast.unlink()
        assert http.post("/webhook/hooks", json=webhook("After")).status_code == 200
        assert [d.alertnames for d in inbox.deliveries()] == [("After",), ("Before",)]
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (2,)


def test_up_on_a_full_disk_names_it_and_writes_nothing(small_disk: Path) -> None:
    config = small_disk / "glassbox.toml"
    config.write_text(QUIET)
    fill(small_disk)
    ports = [f"--{name}-port=0" for name in ("prometheus", "alertmanager", "inbox", "smtp")]
    up = subprocess.run(
        [sys.executable, "-m", "glassbox", "up", "-c", str(config), *ports, "--console-port=0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=False,
    )
    assert up.returncode == 2, up.stderr
    assert f"no space left on the disk of {small_disk / '.glassbox'}" in up.stderr, up.stderr
    assert "Traceback" not in up.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast", "glassbox.toml"]


def test_the_telemetry_store_on_a_full_disk_keeps_what_it_had(small_disk: Path) -> None:
    """Exports refused while full do not count: no log is pruned early afterwards."""
    store = TelemetryStore(small_disk / "telemetry.sqlite", max_logs=100)
    try:

        def logs(n: int, message: str) -> list[LogRecord]:
            return [LogRecord(time_ns=time.time_ns(), service="s", message=message)] * n

        store.add_logs(logs(50, "before"))
        ballast = fill(small_disk)
        for _ in range(10):
            with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
                store.add_logs(logs(10, "refused"))
        ballast.unlink()
        store.add_logs(logs(40, "after"))
        found = store.search_logs(limit=1000)
        assert len(found) == 90
        assert sum(r.message == "before" for r in found) == 50
    finally:
        store.close()


# -- Prometheus killed --------------------------------------------------------------------


def test_a_killed_prometheus_is_back_with_no_gap_beyond_its_restart(
    tmp_path: Path, shop: Shop, traffic: None, stacks: list[LocalStack]
) -> None:
    """SIGKILL: restarted; the samples' gap is the restart (to ready, then Prometheus' first
    reload tick) plus 2 scrapes."""
    stack = start_stack(stacks, tmp_path / "glassbox.toml", SHOP.format(port=shop.port))
    supervisor = stack.supervisor
    assert supervisor is not None
    wait_for(lambda: len(samples(stack, SHOP_COUNTER, 60)) >= 5, 30, "five scrapes of the shop")
    pid = supervisor.pid("prometheus")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.time()
    wait_for(
        lambda: (
            supervisor.restarts("prometheus") >= 1 and answers(f"{stack.prometheus_url}/-/ready")
        ),
        30,
        "Prometheus restarted and ready",
    )
    restart = time.time() - killed
    wait_for(
        lambda: sum(t > killed + restart for t, _ in samples(stack, UP_SHOP, 120)) >= 3,
        30,
        "three scrapes after the restart",
    )
    for selector in (UP_SHOP, SHOP_COUNTER):
        points = samples(stack, selector, 120)
        assert points[0][0] < killed < points[-1][0], (selector, points)
        assert largest_gap(points) <= restart + RELOAD_TICK + 2 * SCRAPE, (selector, restart)
    counter = [v for _, v in samples(stack, SHOP_COUNTER, 120)]
    assert counter == sorted(counter), "the counter went back across the restart"


# -- Alertmanager stopped -------------------------------------------------------------------


def test_alerts_raised_while_alertmanager_is_stopped_are_delivered_once_each(
    tmp_path: Path, shop: Shop, traffic: None, stacks: list[LocalStack]
) -> None:
    """SIGSTOP for OUTAGE seconds while alerts start firing; after SIGCONT each arrives once."""
    stack = start_stack(stacks, tmp_path / "glassbox.toml", ALERTING.format(port=shop.port))
    assert stack.supervisor is not None
    assert stack.inbox is not None
    pid = stack.supervisor.pid("alertmanager")
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        shop.faults(error_ratio=1.0)
        wanted = {("ServiceDown", "ghost"), ("ServiceHighErrorRatio", "shop")}
        wait_for(lambda: wanted <= firing(stack), 60, f"{wanted} firing in Prometheus")
        # the outage itself: Alertmanager stays stopped this long
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        fired = firing(stack)
        assert stack.inbox.deliveries() == []
        assert metric(stack.prometheus_url, "prometheus_notifications_errors_total") > 0
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(
        lambda: {(r, n) for r in RECEIVERS for n, _ in wanted} <= set(firing_deliveries(stack)),
        60,
        "the notifications after Alertmanager came back",
    )
    resent(stack, 3)
    assert firing(stack) == fired  # nothing resolved or newly fired meanwhile
    assert_each_delivered_once(stack, fired)


# -- the inbox restarted --------------------------------------------------------------------


def test_notifications_refused_while_the_inbox_is_down_arrive_once_it_is_back(
    tmp_path: Path, shop: Shop, stacks: list[LocalStack]
) -> None:
    stack = start_stack(stacks, tmp_path / "glassbox.toml", ALERTING.format(port=shop.port))
    inbox = stack.inbox
    assert inbox is not None
    url = inbox.http_url
    stack.stop_inbox()
    assert not answers(f"{url}/api/health")
    wait_for(lambda: ("ServiceDown", "ghost") in firing(stack), 60, "ServiceDown firing")
    for integration in ("pagerduty", "slack"):
        wait_for(
            lambda i=integration: (
                metric(  # type: ignore[misc]
                    stack.alertmanager_url, "alertmanager_notifications_failed_total", integration=i
                )
                > 0
            ),
            30,
            f"Alertmanager failing to reach the {integration} inbox",
        )
    assert inbox.deliveries() == []
    stack.start_inbox()
    assert stack.inbox is inbox
    assert inbox.http_url == url
    wait_for(
        lambda: {(r, "ServiceDown") for r in RECEIVERS} <= set(firing_deliveries(stack)),
        60,
        "the retried notifications",
    )
    resent(stack, 3)
    assert_each_delivered_once(stack, firing(stack))
    before = inbox.deliveries()
    stack.restart_inbox()
    assert answers(f"{url}/api/health")
    assert inbox.deliveries() == before
    shown = httpx.get(f"{stack.console_url}/api/inbox", timeout=5).json()
    assert "ServiceDown" in str(shown)


# -- the data disk full ---------------------------------------------------------------------


def said(events: list[tuple[str, str]], name: str, text: str) -> bool:
    return any(n == name and text in m for n, m in events)


def post_alert(stack: LocalStack, name: str) -> None:
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": name, "severity": "critical", "service": "shop"},
        "annotations": {"summary": name},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }
    response = httpx.post(f"{stack.alertmanager_url}/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text


def named(name: str) -> Callable[[Delivery], bool]:
    def has(delivery: Delivery) -> bool:
        return name in delivery.alertnames

    return has


def test_a_full_data_disk_is_named_and_loses_only_what_came_meanwhile(
    tmp_path: Path, small_disk: Path, shop: Shop, traffic: None, stacks: list[LocalStack]
) -> None:
    """While full: events name the disk, notifications wait. After: all of it kept."""
    events: list[tuple[str, str]] = []
    config = tmp_path / "glassbox.toml"
    state = small_disk / "state"
    stack = start_stack(
        stacks,
        config,
        SHOP.format(port=shop.port),
        state_dir=state,
        on_event=lambda name, message: events.append((name, message)),
    )
    assert stack.supervisor is not None
    assert stack.inbox is not None
    wait_for(lambda: len(samples(stack, UP_SHOP, 60)) >= 3, 30, "the first scrapes")
    full_at = time.time()
    ballast = fill(small_disk)
    wait_for(
        lambda: said(events, "data", f"no space left on the disk of {stack.data_dir}"),
        10,
        "the full disk named",
    )
    post_alert(stack, "WhileFull")
    # long enough for Prometheus to fail many WAL writes (one may be left torn)
    wait_for(
        lambda: (
            metric(stack.prometheus_url, "prometheus_tsdb_wal_writes_failed_total") >= 40
            and metric(stack.alertmanager_url, "alertmanager_notifications_failed_total") > 0
        ),
        60,
        "failed WAL writes and a refused notification",
    )
    assert stack.inbox.deliveries() == []
    ballast.unlink()
    back_at = time.time()
    wait_for(lambda: said(events, "data", "space is back"), 10, "space noticed")
    wait_for(
        lambda: (
            said(events, "prometheus", "repairs its WAL")
            and stack.supervisor.restarts("prometheus") == 1  # type: ignore[union-attr]
            and answers(f"{stack.prometheus_url}/-/ready")
        ),
        30,
        "Prometheus restarted",
    )
    restarted_at = time.time()
    stack.inbox.wait_for(named("WhileFull"), 30)
    wait_for(
        lambda: sum(t > restarted_at for t, _ in samples(stack, UP_SHOP, 120)) >= 3,
        30,
        "scrapes after the restart",
    )
    stopped_at = time.time()
    kept = samples(stack, UP_SHOP, 300, at=stopped_at)
    stack.stop()

    again = start_stack(stacks, config, state_dir=state)
    assert again.inbox is not None
    answered = samples(again, UP_SHOP, 300, at=stopped_at)
    assert set(kept) <= set(answered), sorted(set(kept) - set(answered))
    assert answered[0][0] < full_at
    assert largest_gap(answered) <= restarted_at - full_at + RELOAD_TICK + 2 * SCRAPE
    assert metric(again.prometheus_url, "prometheus_tsdb_wal_corruptions_total") == 0
    assert len(again.inbox.deliveries()) == 1
    with sqlite3.connect(state / "data" / "inbox.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert answers(f"{again.alertmanager_url}/-/ready")
    assert restarted_at - back_at < 10  # lost after space is back: seconds, not all since


# -- a dependency that hangs ----------------------------------------------------------------


def test_a_hanging_dependency_costs_readiness_its_timeout_and_never_the_scrape(
    tmp_path: Path, redis_server: Any, stacks: list[LocalStack]
) -> None:
    """Redis frozen (SIGSTOP) behind the shop: /health/ready in timeout + 100 ms, scrapes go on."""
    served = Shop(tmp_path / "shop.log", DEMO_REDIS_URL=redis_server.url)
    try:
        stack = start_stack(stacks, tmp_path / "glassbox.toml", SHOP.format(port=served.port))
        wait_for(lambda: answers(f"{served.url}/health/ready"), 30, "the shop ready")
        wait_for(lambda: len(samples(stack, UP_SHOP, 60)) >= 3, 30, "the first scrapes")
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        frozen = time.time()
        try:
            for _ in range(3):
                started = time.perf_counter()
                ready = httpx.get(f"{served.url}/health/ready", timeout=5)
                assert time.perf_counter() - started < 0.5 + 0.1  # the demo's Redis timeout
                assert ready.status_code == 503
            wait_for(
                lambda: ("DependencyUnhealthy", "shop") in firing(stack),
                30,
                "DependencyUnhealthy firing",
            )
            points = samples(stack, UP_SHOP, 120)
            assert [v for t, v in points if t > frozen]
            assert all(v == 1 for _, v in points)
            assert largest_gap(points) <= 2 * SCRAPE
            durations = prom(stack, 'max_over_time(scrape_duration_seconds{job="shop"}[30s])')
            assert float(durations[0]["value"][1]) < 0.5
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        wait_for(lambda: answers(f"{served.url}/health/ready"), 30, "ready again")
    finally:
        served.stop()
