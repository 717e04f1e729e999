"""KATO end to end: three instances of its service, real Redis with its exporter,
node_exporter, the MongoDB and Qdrant stand-ins, and the stack from
examples/kato/glassbox.toml.

The guide's checks and alerts, proven: the health endpoints, every dashboard query and
recording rule answering, the processor_id cap and its alert, 5xx and latency alerts,
MongoDB, Qdrant and Redis outages and a dead exporter paging, one instance down warning
without paging, and all three down paging once with the error and latency alerts muted.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from glassbox.stack.render.grafana import dashboard_queries
from tests.conftest import free_port, wait_for
from tests.examples.harness import ExampleRun, needs_exporters, rehearse, running
from tests.local.conftest import needs_stack
from tests.standins.mongo import MongoStandIn
from tests.standins.qdrant import QdrantStandIn

pytestmark = [needs_stack, needs_exporters, pytest.mark.slow]

INSTANCES = ("kato-1", "kato-2", "kato-3")
# every instance exposes the count (at 0 until it folds a value): their sum
OVERFLOW = (
    "sum(glassbox_label_overflow_total"
    "{metric=\"kato_observations_total\",label=\"processor_id\"})"
)


@dataclass
class Kato:
    run: ExampleRun
    bases: dict[str, str]  # instance name -> base URL
    mongo: MongoStandIn
    qdrant: QdrantStandIn
    redis: Any  # tests.servers.RedisServer

    def target(self, name: str) -> str:
        return self.bases[name].removeprefix("http://")


@pytest.fixture
def kato(tmp_path: Any, redis_server: Any) -> Iterator[Kato]:
    mongo = MongoStandIn(free_port())
    qdrant = QdrantStandIn(free_port())
    mongo.start()
    qdrant.start()
    env = {
        "KATO_MONGO_URL": f"mongodb://127.0.0.1:{mongo.port}/?directConnection=true",
        "KATO_QDRANT_URL": qdrant.url,
        "KATO_REDIS_URL": redis_server.url,
    }
    try:
        with running("kato", tmp_path) as run:
            bases = {name: run.service(name, "kato", env) for name in INSTANCES}
            config = rehearse(
                "kato",
                services={"kato": [b.removeprefix("http://") for b in bases.values()]},
                # mongodb is left out: there is no mongodb_exporter here (the stand-in
                # speaks the wire protocol for the service's ping, not serverStatus), so
                # its panels and MongodbDown are not generated rather than left empty.
                dependencies={
                    "redis": [run.redis_exporter(redis_server.url)],
                    "qdrant": [qdrant.url.removeprefix("http://")],  # Qdrant serves /metrics
                    "node": [run.node_exporter()],
                },
                output=tmp_path / "monitoring",
            )
            run.start_stack(config)
            yield Kato(run, bases, mongo, qdrant, redis_server)
    finally:
        qdrant.stop()
        mongo.close()


def _muted_by_service_down(run: ExampleRun) -> set[str]:
    """Names of kato's alerts that Alertmanager holds back because ServiceDown fires."""
    found = httpx.get(f"{run.live.alertmanager_url}/api/v2/alerts", timeout=5).json()
    kato = [a for a in found if a["labels"].get("service") == "kato"]
    down = {a["fingerprint"] for a in kato if a["labels"]["alertname"] == "ServiceDown"}
    return {
        a["labels"]["alertname"]
        for a in kato
        if a["status"]["state"] == "suppressed" and down & set(a["status"]["inhibitedBy"])
    }


def _panel(run: ExampleRun, title: str) -> str:
    """The query of the processor_id="alpha" line of a panel of kato's business dashboard."""
    assert run.live.config is not None
    board = run.live.output_dir(run.live.config) / "grafana/dashboards/glassbox-kato-business.json"
    (expr,) = [e for t, e in dashboard_queries(board.read_text()) if t == title]
    return expr.replace('instance=~"$instance"', 'processor_id="alpha"')


def _readiness_fails(client: httpx.Client) -> Callable[[], bool]:
    return lambda: client.get("/health/ready").status_code == 503


def test_kato_health_dashboards_cap_and_alerts(kato: Kato) -> None:
    run = kato.run
    clients = {name: httpx.Client(base_url=base, timeout=10) for name, base in kato.bases.items()}
    one = clients["kato-1"]
    # the guide's /health: MongoDB, Qdrant and Redis checked, 200 while all answer
    health = one.get("/health")
    assert health.status_code == 200, health.text
    assert {"mongodb:responseTime", "qdrant:responseTime", "redis:responseTime"} <= set(
        health.json()["checks"]
    )
    assert one.get("/health/ready").status_code == 200
    assert one.get("/health/live").status_code == 200

    sessions = {}
    for name, client in clients.items():
        made = client.post("/sessions", json={"processor_id": "alpha"})
        assert made.status_code == 201, made.text
        sessions[name] = made.json()["session_id"]

    def calls(session_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        base = f"/sessions/{session_id}"
        return [
            ("POST", "/sessions", {"processor_id": "beta"}),
            ("POST", f"{base}/observe", {"strings": ["hello", "world"]}),
            ("POST", f"{base}/observe", {"strings": ["foo"]}),
            ("GET", f"{base}/stm", None),
            ("GET", f"{base}/predictions", None),
            ("POST", f"{base}/learn", None),
            ("GET", "/processors/alpha/patterns", None),
            ("GET", "/health/ready", None),  # the orchestrator's readiness probe
        ]

    traffic = [
        run.drive(kato.bases[name], calls(sessions[name]), rate=20 if name == "kato-1" else 2)
        for name in INSTANCES
    ]

    # every query of every generated dashboard returns data; a few unhandled exceptions
    # feed the exception panels
    one.put("/admin/faults", json={"route": "/sessions/{session_id}/stm", "raise_ratio": 0.2})
    try:
        wait_for(lambda: not run.empty_panels(), 120, "every dashboard panel to have data")
    except AssertionError:
        raise AssertionError("\n".join(run.empty_panels())) from None
    assert all(t.sent > 0 for t in traffic)
    one.delete("/admin/faults")
    # the guide's observation and prediction rates, recorded per processor
    for recorded in ("processor:kato_observations:rate5m", "processor:kato_predictions:rate5m"):
        assert run.query(f'{recorded}{{service="kato", processor_id="alpha"}} > 0'), recorded
    # every instance reports the one count Qdrant holds: the panel shows that count once
    # per processor (aggregate = "max"), never the sum of the three instances
    panel = _panel(run, "Patterns stored in LTM")
    assert panel.startswith("max by (processor_id)"), panel
    count = one.get("/processors/alpha/patterns").json()["count"]
    shown = [float(s["value"][1]) for s in run.query(panel)]
    assert len(shown) == 1, shown
    assert 0 < shown[0] <= count, (shown, count)

    # 150 processors on kato-1: the series stop at the cap (100 + __overflow__) and the
    # overflow counter rises
    overflowed = []
    for i in range(150):
        made = one.post("/sessions", json={"processor_id": f"p-{i:03d}"})
        session_id = made.json()["session_id"]
        one.post(f"/sessions/{session_id}/observe", json={"strings": ["x"]})
        overflowed.append(session_id)
    instance = kato.target("kato-1")
    series = f'count(kato_observations_total{{service="kato", instance="{instance}"}})'

    def value(expr: str) -> float:
        found = run.query(expr)
        return float(found[0]["value"][1]) if found else 0.0

    # alpha and 99 of the 150 take the 100 places; the other 51 fold into __overflow__
    wait_for(lambda: value(OVERFLOW) >= 51, 30, "the overflow counter in Prometheus")
    assert value(series) == 101
    assert run.query('kato_observations_total{processor_id="__overflow__"}')
    before = value(OVERFLOW)
    for session_id in overflowed[-5:]:
        one.post(f"/sessions/{session_id}/observe", json={"strings": ["y"]})
    wait_for(lambda: value(OVERFLOW) > before, 30, "the overflow to rise")
    assert value(series) == 101
    # BusinessLabelOverflow matches at once; its 15m hold is fixed, so it stays pending here
    folding = (
        'ALERTS{alertname="BusinessLabelOverflow", alertstate="pending", service="kato",'
        ' metric="kato_observations_total", label="processor_id"}'
    )
    wait_for(lambda: bool(run.query(folding)), 30, "BusinessLabelOverflow to match")

    # at once: half of kato-1's observations fail, its predictions take 1.5 s, and kato-2
    # stops (a warning to Slack, not a page)
    observe = {"route": "/sessions/{session_id}/observe", "error_ratio": 0.5}
    assert one.put("/admin/faults", json=observe).status_code == 200
    slow = {"route": "/sessions/{session_id}/predictions", "latency": 1.5}
    assert one.put("/admin/faults", json=slow).status_code == 200
    run.stop("kato-2")
    run.wait_notified("ServiceHighErrorRatio", {"pagerduty"}, service="kato", severity="critical")
    run.wait_notified("ServiceLatencyP95High", {"slack"}, service="kato", severity="warning")
    run.wait_notified("ServiceInstanceDown", {"slack"}, service="kato",
                      instance=kato.target("kato-2"))  # fmt: skip
    assert "pagerduty" not in run.delivered_to("ServiceInstanceDown")
    assert not run.query('ALERTS{alertname="ServiceDown"}')
    # the SLO's fast burn matches too; its 2m hold is fixed, so it stays pending here
    burn = 'ALERTS{alertname="SLOErrorBudgetBurnFast", slo="availability"}'
    wait_for(lambda: bool(run.query(burn)), 30, "the fast burn to match")

    # MongoDB, Qdrant and Redis go away and node_exporter dies: readiness fails (liveness
    # does not); the service's checks, Qdrant's and Redis' own alerts and the dead
    # exporter each page
    kato.mongo.stop()
    kato.qdrant.stop()
    kato.redis.stop()
    run.stop("node-exporter")
    for name in ("kato-1", "kato-3"):
        wait_for(_readiness_fails(clients[name]), 10, f"{name} readiness to fail")
        assert clients[name].get("/health/live").status_code == 200
    assert one.get("/health").status_code == 503
    for check in ("mongodb", "qdrant", "redis"):
        run.wait_notified("DependencyUnhealthy", {"pagerduty"}, service="kato", check=check)
    run.wait_notified("QdrantDown", {"pagerduty"}, dependency="qdrant")
    run.wait_notified("RedisDown", {"pagerduty"}, dependency="redis")
    run.wait_notified("DependencyTargetDown", {"pagerduty"}, dependency="node")

    # every instance stops: one page, ServiceDown; the error, latency and instance alerts
    # still firing in Prometheus are muted in Alertmanager while it lasts
    for name in ("kato-1", "kato-3"):
        os.killpg(run.procs[name].pid, signal.SIGTERM)
    muted: set[str] = set()
    expected = {"ServiceHighErrorRatio", "ServiceLatencyP95High", "ServiceInstanceDown"}

    def all_muted() -> bool:  # each is muted until its own window empties: note when seen
        muted.update(_muted_by_service_down(run) & expected)
        return muted == expected

    wait_for(all_muted, 30, f"{sorted(expected)} inhibited by ServiceDown", interval=0.25)
    run.wait_notified("ServiceDown", {"pagerduty"}, service="kato", severity="critical")
    for name in ("kato-1", "kato-3"):
        run.stop(name)
