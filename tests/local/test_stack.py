"""`glassbox up` with real Prometheus and Alertmanager on loopback ports."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from glassbox.exceptions import ConfigurationError
from glassbox.local.stack import LocalPorts, LocalStack, find_binary
from tests.conftest import wait_for
from tests.local.conftest import needs_stack

pytestmark = needs_stack

CONFIG = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "shop"
targets = ["127.0.0.1:9"]

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"""


def make_stack(directory: Path, **kw: object) -> LocalStack:
    config = directory / "glassbox.toml"
    if not config.exists():
        config.write_text(CONFIG)
    return LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0), real_receivers=True, **kw)  # type: ignore[arg-type]


EVENTS: list[tuple[str, str]] = []


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    EVENTS.clear()
    s = make_stack(tmp_path, on_event=lambda name, message: EVENTS.append((name, message)))
    s.start(watch=True)
    yield s
    s.stop()


def query(stack: LocalStack, expr: str, at: float | None = None) -> list[dict[str, object]]:
    params: dict[str, str | float] = {"query": expr}
    if at is not None:
        params["time"] = at
    body = httpx.get(f"{stack.prometheus_url}/api/v1/query", params=params, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def jobs(stack: LocalStack) -> set[str]:
    body = httpx.get(f"{stack.prometheus_url}/api/v1/targets", timeout=5).json()
    return {t["labels"]["job"] for t in body["data"]["activeTargets"]}


def test_up_runs_both_on_loopback_only_and_stops_cleanly(tmp_path: Path) -> None:
    s = make_stack(tmp_path)
    ready = s.start(watch=False)
    try:
        assert set(ready) == {"prometheus", "alertmanager"}
        for url in (s.prometheus_url, s.alertmanager_url):
            assert httpx.get(f"{url}/-/ready", timeout=5).status_code == 200
        wait_for(lambda: jobs(s) == {"shop", "prometheus", "alertmanager"}, 20, "the jobs")
        assert s.supervisor is not None
        pids = [s.supervisor.pid(n) for n in ("prometheus", "alertmanager")]
        for pid in pids:
            assert pid is not None
            listening = [
                c.laddr
                for c in psutil.Process(pid).net_connections("inet")
                if c.status == psutil.CONN_LISTEN
            ]
            assert listening, pid
            assert all(addr.ip == "127.0.0.1" for addr in listening), listening
        # the console answers, and takes OTLP/HTTP on the same port
        assert httpx.get(f"{s.console_url}/", timeout=5).status_code == 200
        otlp = httpx.post(
            f"{s.console_url}/v1/traces",
            content=b"",
            headers={"content-type": "application/x-protobuf"},
            timeout=5,
        )
        assert otlp.status_code == 200, otlp.text
        # the rules come from monitoring/, the same files production uses
        rules = httpx.get(f"{s.prometheus_url}/api/v1/rules", timeout=5).json()
        names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert "ServiceHighErrorRatio" in names
        assert (tmp_path / "monitoring" / "prometheus" / "rules" / "service-shop.yml").is_file()
    finally:
        s.stop()
    for pid in pids:
        assert pid is not None
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_killed_prometheus_is_restarted_and_scraping_resumes(stack: LocalStack) -> None:
    assert stack.supervisor is not None
    pid = stack.supervisor.pid("prometheus")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    wait_for(lambda: stack.supervisor.restarts("prometheus") >= 1, 20, "a restart")  # type: ignore[union-attr]

    def scraped_after_kill() -> bool:
        try:
            result = query(stack, 'up{job="prometheus"}')
        except (httpx.HTTPError, ValueError, AssertionError):
            # not answering yet, or answering 503 (not JSON) while it replays its WAL
            return False
        return bool(result) and float(result[0]["value"][0]) > killed_at  # type: ignore[index]

    wait_for(scraped_after_kill, 30, "Prometheus scraping again")


def test_data_survives_a_restart(tmp_path: Path) -> None:
    first = make_stack(tmp_path)
    first.start(watch=False)
    try:
        wait_for(lambda: bool(query(first, 'up{job="prometheus"}')), 20, "a first sample")
        seen_at = time.time()
    finally:
        first.stop()
    second = make_stack(tmp_path)
    second.start(watch=False)
    try:
        result = query(second, 'up{job="prometheus"}[30s]', at=seen_at)
        assert result, "samples from before the restart are gone"
        values: list[tuple[float, str]] = result[0]["values"]  # type: ignore[assignment]
        assert all(float(t) <= seen_at for t, _ in values)
    finally:
        second.stop()


def test_config_change_is_built_and_reloaded(stack: LocalStack) -> None:
    wait_for(lambda: "shop" in jobs(stack), 20, "the first job")
    stack.config_path.write_text(
        CONFIG + '\n[[services]]\nname = "billing"\ntargets = ["127.0.0.1:10"]\n'
    )
    wait_for(lambda: "billing" in jobs(stack), 20, "the new service's job")
    assert (stack.config_path.parent / "monitoring/prometheus/rules/service-billing.yml").exists()
    # a broken config is refused with its reason, and the running stack stays as it is
    stack.config_path.write_text(CONFIG.replace('scrape_interval = "1s"', 'scrape_interval = "x"'))
    wait_for(
        lambda: any("not reloaded" in m and "scrape_interval" in m for _, m in EVENTS),
        20,
        "the broken config to be refused",
    )
    assert "billing" in jobs(stack)
    assert httpx.get(f"{stack.prometheus_url}/-/ready", timeout=5).status_code == 200


def test_missing_binaries_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigurationError, match="Debian package 'prometheus-alertmanager'"):
        find_binary("alertmanager")
