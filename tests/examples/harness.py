"""Run one example system for real: its service, its datastores and exporters, and the
local stack (Prometheus, Alertmanager, the inbox) built from the example's own
``glassbox.toml``.

The config is rehearsed, not rewritten: :func:`rehearse` keeps every alert, route,
receiver and threshold, points targets at the loopback processes the test started,
and shortens only time (1 s service scrapes and evaluations, 2 s exporter scrapes,
10 s rate windows, 2 s holds, defaults included) so a fault fires its alert within
seconds. Dependencies the test does not run are left out, so nothing fires for a target
that was never there.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from pydantic import BaseModel

from glassbox.local.stack import LocalPorts, LocalStack
from glassbox.stack.config import ALERT_SETTINGS, ServiceAlerts
from glassbox.stack.render.grafana import dashboard_queries
from glassbox.stack.verify import substitute_variables
from tests.conftest import free_port, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
HOLD = "2s"
WINDOW = "10s"

EXPORTERS = (
    "prometheus-redis-exporter",
    "prometheus-postgres-exporter",
    "prometheus-node-exporter",
)
needs_exporters = pytest.mark.skipif(
    any(shutil.which(b) is None for b in EXPORTERS),
    reason="the exporters come from ./scripts/setup.sh dev",
)

Call = tuple[str, str, Mapping[str, Any] | None]  # method, path, JSON body


def _shorten(node: Any) -> Any:
    """Every hold time (``for``, ``*_for``) of a config table, recursively, set to HOLD."""
    if isinstance(node, dict):
        return {
            k: HOLD if (k == "for" or k.endswith("_for")) and isinstance(v, str) else _shorten(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_shorten(v) for v in node]
    return node


def _holds(model: type[BaseModel]) -> dict[str, str]:
    """Every hold-time setting of an alert-settings model (defaults included), at HOLD."""
    names = (field.alias or name for name, field in model.model_fields.items())
    return {n: HOLD for n in names if n == "for" or n.endswith("_for")}


def rehearse(
    example: str,
    *,
    services: Mapping[str, Sequence[str]],
    dependencies: Mapping[str, Sequence[str]],
    output: Path,
) -> dict[str, Any]:
    """The example's config with loopback targets and short windows (see the module doc)."""
    config: dict[str, Any] = tomllib.loads((EXAMPLES / example / "glassbox.toml").read_text())
    config["output"] = str(output)
    prometheus = config.setdefault("prometheus", {})
    # exporters every 2 s, services every second: postgres_exporter takes about 1 s to
    # answer while PostgreSQL is down, and at a 1 s interval (so timeout) the scrape
    # would fail and pg_up vanish instead of reading 0
    prometheus.update(scrape_interval="2s", evaluation_interval="1s")
    prometheus.pop("remote_write", None)
    for service in config["services"]:
        service["targets"] = list(services[service["name"]])
        service["scrape_interval"] = "1s"
        alerts = service.setdefault("alerts", {})
        alerts["window"] = WINDOW
        alerts.update(_holds(ServiceAlerts))
    config["dependencies"] = [
        {
            # the test runs the exporters itself: none is deployed
            **{k: v for k, v in d.items() if k not in ("deploy", "dsn", "address", "uri")},
            "targets": list(dependencies[d["name"]]),
            "alerts": {**d.get("alerts", {}), **_holds(ALERT_SETTINGS[d["kind"]])},
        }
        for d in config.get("dependencies", [])
        if d["name"] in dependencies
    ]
    routing = config.setdefault("routing", {})
    routing.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return dict(_shorten(config))


class Traffic:
    """Background requests to a service: each round makes every call once, in random order."""

    def __init__(self, base: str, calls: Sequence[Call], rate: float = 40.0) -> None:
        self.base = base
        self.calls = list(calls)
        self.pause = 1.0 / rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self._stop.is_set():
                for method, path, body in random.sample(self.calls, len(self.calls)):
                    if self._stop.is_set():
                        return
                    with contextlib.suppress(httpx.HTTPError):
                        client.request(method, path, json=body)
                        self.sent += 1
                    self._stop.wait(self.pause)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


class ExampleRun:
    """The processes of one example system; everything is stopped by PID at the end."""

    def __init__(self, example: str, workdir: Path) -> None:
        self.example = example
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.traffic: list[Traffic] = []
        self.stack: LocalStack | None = None

    # -- processes ------------------------------------------------------------------------

    def spawn(
        self, name: str, argv: list[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        stop_process(self.procs[name])

    def service(self, name: str, module: str, env: Mapping[str, str]) -> str:
        """The example's service under uvicorn on a free port; its base URL once it answers."""
        port = free_port()
        self.spawn(
            name,
            [sys.executable, "-m", "uvicorn", "--factory", "--app-dir",
             str(EXAMPLES / self.example), f"{module}:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"],
            {"GLASSBOX_EXAMPLE_FAULTS": "1", "GLASSBOX_LOG_FORMAT": "json", **env},
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/health/live"), 30, f"{name} to answer")
        return base

    def redis_exporter(self, redis_url: str) -> str:
        port = free_port()
        self.spawn(
            "redis-exporter",
            ["prometheus-redis-exporter", f"-redis.addr={redis_url}",
             f"-web.listen-address=127.0.0.1:{port}"],
        )  # fmt: skip
        return self._exporter(port)

    def postgres_exporter(self, dsn: str) -> str:
        port = free_port()
        self.spawn(
            "postgres-exporter",
            ["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"],
            {"DATA_SOURCE_NAME": f"{dsn}?sslmode=disable"},
        )
        return self._exporter(port)

    def node_exporter(self) -> str:
        port = free_port()
        self.spawn(
            "node-exporter",
            ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}"],
        )
        return self._exporter(port)

    def _exporter(self, port: int) -> str:
        target = f"127.0.0.1:{port}"
        wait_for(lambda: _answers(f"http://{target}/metrics"), 30, f"exporter on {target}")
        return target

    def start_stack(self, config: Mapping[str, Any]) -> LocalStack:
        path = self.workdir / "glassbox.toml"
        path.write_text(tomli_w.dumps(dict(config)))
        self.stack = LocalStack(path, ports=LocalPorts(0, 0, 0, 0, 0))
        self.stack.start(watch=False)
        return self.stack

    def drive(self, base: str, calls: Sequence[Call], rate: float = 40.0) -> Traffic:
        traffic = Traffic(base, calls, rate).start()
        self.traffic.append(traffic)
        return traffic

    def close(self) -> None:
        for traffic in self.traffic:
            traffic.stop()
        if self.stack is not None:
            self.stack.stop()
        for proc in reversed(self.procs.values()):
            stop_process(proc)

    # -- what the stack sees --------------------------------------------------------------

    @property
    def live(self) -> LocalStack:
        assert self.stack is not None, "start_stack() first"
        return self.stack

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.get(
            f"{self.live.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10
        ).json()
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def alerts(self, name: str, **labels: str) -> list[dict[str, Any]]:
        """Alertmanager's active (not inhibited, not silenced) alerts called ``name``."""
        found = httpx.get(
            f"{self.live.alertmanager_url}/api/v2/alerts",
            params={"active": "true", "inhibited": "false", "silenced": "false"},
            timeout=5,
        ).json()
        return [
            a
            for a in found
            if a["labels"].get("alertname") == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def delivered_to(self, name: str) -> set[str]:
        """The receivers the inbox got a firing notification of ``name`` for."""
        return {
            d.receiver
            for d in self.live.inbox.deliveries()
            if name in d.alertnames and d.status == "firing"
        }

    def wait_notified(
        self, name: str, receivers: set[str], timeout: float = 60, **labels: str
    ) -> dict[str, Any]:
        """Wait until ``name`` (with ``labels``) is active and delivered to ``receivers``."""

        def done() -> bool:
            return bool(self.alerts(name, **labels)) and receivers <= self.delivered_to(name)

        try:
            wait_for(done, timeout, f"{name}{labels or ''} at {sorted(receivers)}", interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.explain(name)}") from None
        alert = self.alerts(name, **labels)[0]
        routed = {r["name"] for r in alert["receivers"]}
        assert routed == receivers, f"{name} routed to {routed}, expected {receivers}"
        return alert

    def explain(self, name: str) -> str:
        firing = self.query(f'ALERTS{{alertname="{name}"}}')
        return (
            f"in Prometheus: {[a['metric'] for a in firing]}; "
            f"delivered: {sorted(self.delivered_to(name))}; "
            f"all deliveries: {[(d.receiver, d.alertnames) for d in self.live.inbox.deliveries()]}"
        )

    def empty_panels(self, skip: Callable[[str], bool] = lambda expr: False) -> list[str]:
        """Dashboard queries (variables substituted) that return no data."""
        out = self.live.output_dir(self.live.config) if self.live.config else None
        assert out is not None
        empty = []
        for path in sorted((out / "grafana" / "dashboards").glob("*.json")):
            for title, expr in dashboard_queries(path.read_text()):
                if skip(expr):
                    continue
                query = substitute_variables(expr, rate_interval="1m")
                if not self.query(query):
                    empty.append(f"{path.name} {title!r}: {query}")
        return empty


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running(example: str, workdir: Path) -> Iterator[ExampleRun]:
    run = ExampleRun(example, workdir)
    try:
        yield run
    finally:
        run.close()
