"""AI Assistant System end to end: its service, real PostgreSQL and Redis with their
exporters, node_exporter, a language-model API stand-in, and the stack from
examples/ai-assistant/glassbox.toml.

Proven: the health endpoints (a failing LLM API degrades, it does not unready), the
traffic guards on the 5xx ratio and on ToolExecutionFailure, every dashboard query
answering, the tool-name label cap, a tool failing every call paging per tool_name with
the receivers' own titles, unhandled exceptions counted as 500 and paging, Redis,
PostgreSQL and exporter outages paging, critical alerts muting the service's warnings,
and a stopped service paging once with its symptoms muted. Every alert goes to email and
Slack.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.examples.harness import ExampleRun, needs_exporters, rehearse, running
from tests.examples.llm import LlmStandIn
from tests.local.conftest import needs_stack

pytestmark = [needs_stack, needs_exporters, pytest.mark.slow]

SERVICE = "ai-assistant"
BOTH = {"email", "slack"}
TOOL_LABEL_CAP = 50  # ai_assistant.TOOL_LABEL_CAP
# The service's rate window here. At rehearse()'s 10 s a single call is 0.1/s; at 2 m it
# is 0.008/s, below both traffic guards (min_request_rate 0.1 req/s and the tool rule's
# min_rate 0.01/s), as a single call is in the real 5 m window.
WINDOW = "2m"
RATIO = f'service:http_request_error_ratio:rate{WINDOW}{{service="{SERVICE}"}}'
REQUESTS = f'service:http_requests:rate{WINDOW}{{service="{SERVICE}"}}'
TOOL_ERRORS = f"service_tool_name:tool_executions_status_error:rate{WINDOW}"
TOOL_RUNS = f"service_tool_name:tool_executions:rate{WINDOW}"


@pytest.fixture
def assistant(
    tmp_path: Path, redis_server: Any, postgres_server: Any
) -> Iterator[tuple[ExampleRun, str, LlmStandIn]]:
    llm = LlmStandIn()
    try:
        with running("ai-assistant", tmp_path) as run:
            base = run.service(
                SERVICE,
                "ai_assistant",
                {
                    "AI_ASSISTANT_DATABASE_URL": postgres_server.dsn,
                    "AI_ASSISTANT_REDIS_URL": redis_server.url,
                    "AI_ASSISTANT_LLM_URL": llm.url,
                },
            )
            # cAdvisor needs a container runtime, absent here: its dependency is left out
            config = rehearse(
                "ai-assistant",
                services={SERVICE: [base.removeprefix("http://")]},
                dependencies={
                    "redis": [run.redis_exporter(redis_server.url)],
                    "postgres": [run.postgres_exporter(postgres_server.dsn)],
                    "node": [run.node_exporter()],
                },
                output=tmp_path / "monitoring",
            )
            config["services"][0]["alerts"]["window"] = WINDOW
            run.start_stack(config)
            yield run, base, llm
    finally:
        llm.close()


def _value(run: ExampleRun, expr: str) -> float:
    found = run.query(expr)
    return float(found[0]["value"][1]) if found else float("nan")


def _holds(condition: Callable[[], tuple[bool, object]], seconds: float, what: str) -> None:
    """Assert ``condition`` (true or false, and what it saw) at every poll for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ok, seen = condition()
        assert ok, f"{what}: {seen}"
        time.sleep(0.5)


def _muted(run: ExampleRun, name: str, **labels: str) -> bool:
    """``name`` of this service is active in Alertmanager and inhibited."""
    found = httpx.get(f"{run.live.alertmanager_url}/api/v2/alerts", timeout=5).json()
    return any(
        a["labels"].get("alertname") == name
        and all(a["labels"].get(k) == v for k, v in {"service": SERVICE, **labels}.items())
        and a["status"]["state"] == "suppressed"
        and a["status"]["inhibitedBy"]
        for a in found
    )


def _titles(run: ExampleRun, name: str) -> dict[str, set[str]]:
    """The titles (Slack) and subjects (email) of the firing notifications of ``name``."""
    out: dict[str, set[str]] = {}
    for d in run.live.inbox.deliveries():
        if name in d.alertnames and d.status == "firing":
            out.setdefault(d.receiver, set()).add(d.title)
    return out


def test_ai_assistant_health_dashboards_and_alerts(
    assistant: tuple[ExampleRun, str, LlmStandIn], redis_server: Any, postgres_server: Any
) -> None:
    run, base, llm = assistant
    client = httpx.Client(base_url=base, timeout=10)

    def check(name: str) -> str:
        return str(client.get("/health").json()["checks"][f"{name}:responseTime"][0]["status"])

    def execute(tool: str, **parameters: Any) -> int:
        path = f"/api/tools/{tool}/execute"
        return client.post(path, json={"parameters": parameters}).status_code

    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.headers["content-type"].startswith("application/health+json")
    assert check("llm-api") == "pass"

    # At a trickle, one unhandled exception is a 100 % 5xx ratio and one failed run of a
    # prompt tool a 100 % failure ratio: neither pages.
    def one_unhandled_exception() -> None:
        client.put("/admin/faults", json={"route": "/api/tools", "raise_ratio": 1.0})
        # its own connection: uvicorn closes the connection after an unhandled exception
        assert httpx.get(f"{base}/api/tools", timeout=10).status_code == 500
        client.delete("/admin/faults")

    made = client.post("/api/tools", json={"name": "signature", "template": "Regards, $who"})
    assert made.status_code == 201, made.text
    assert execute("signature", who="Ada") == 200  # its success and error series appear
    one_unhandled_exception()  # the 500 series appears; a rate needs it to exist before
    guard_tool = 'tool_executions_total{tool_name="signature", status="error"}'
    wait_for(
        lambda: bool(run.query('http_requests_total{status="500"}') and run.query(guard_tool)),
        30,
        "a 500 and the prompt tool's error series scraped",
    )
    # rate() extrapolates a young series' increase: let the series age 30 s, so that one
    # failure reads as one failure per window
    aged = f"count_over_time({guard_tool}[1m]) >= 15"
    wait_for(lambda: bool(run.query(aged)), 60, "the prompt tool's series 30 s old")
    one_unhandled_exception()
    assert execute("signature") == 422  # no $who: the tool fails
    tool_ratio = f'{TOOL_ERRORS}{{tool_name="signature"}} / {TOOL_RUNS}{{tool_name="signature"}}'
    tool_rate = f'{TOOL_RUNS}{{tool_name="signature"}}'
    wait_for(
        lambda: _value(run, RATIO) == 1.0 and _value(run, tool_ratio) == 1.0,
        15,
        "the 5xx ratio and the prompt tool's failure ratio recorded at 100 %",
    )
    paging = (
        f'ALERTS{{service="{SERVICE}", alertname=~"ServiceHighErrorRatio|SLO.+|ToolExecution.+"}}'
    )

    def guarded() -> tuple[bool, object]:
        seen = [_value(run, q) for q in (RATIO, REQUESTS, tool_ratio, tool_rate)]
        alerts = [a["metric"] for a in run.query(paging)]
        ratio, requests, failures, runs = seen
        high = ratio > 0.1 and failures > 0.1
        return high and requests < 0.1 and runs < 0.01 and not alerts, (seen, alerts)

    _holds(
        guarded,
        8,  # four times the rehearsed hold: unguarded, the alerts would be firing
        "the ratios stay high, traffic below both guards and no alert, not even pending",
    )

    # Built-in tools first, then prompt tools past the tool_name cap
    conversation = client.post("/api/chat", json={"message": "hello"}).json()["conversation_id"]
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/api/chat", {"message": "hello"}),
        ("POST", f"/api/conversations/{conversation}/messages", {"message": "and tomorrow?"}),
        ("GET", f"/api/conversations/{conversation}", None),
        ("GET", "/api/tools", None),
        ("POST", "/api/tools/search/execute", {"parameters": {"query": "hello"}}),
        ("POST", "/api/tools/current_time/execute", {"parameters": {"timezone": "Asia/Tokyo"}}),
    ]
    summarize = ("POST", "/api/tools/summarize/execute",
                 {"parameters": {"conversation_id": conversation}})  # fmt: skip
    for method, path, body in [*calls, summarize]:
        assert client.request(method, path, json=body).status_code == 200, path
    assert execute("current_time", timezone="Mars/Base") == 422
    plugins = TOOL_LABEL_CAP + 5
    for i in range(plugins):
        name = f"greeting_{i:02d}"
        made = client.post("/api/tools", json={"name": name, "template": "Hello $who"})
        assert made.status_code == 201, made.text
        done = client.post(f"/api/tools/{name}/execute", json={"parameters": {"who": "Ada"}})
        assert done.json()["output"] == "Hello Ada"
    folded = 4 + plugins - TOOL_LABEL_CAP  # current_time, search, summarize, signature first
    overflow = 'glassbox_label_overflow_total{metric="tool_execution_duration_seconds"}'
    wait_for(lambda: _value(run, overflow) == folded, 15, f"{folded} tool runs folded")
    # a folded tool in use keeps folding
    last = f"greeting_{plugins - 1:02d}"
    traffic = run.drive(
        base, [*calls, ("POST", f"/api/tools/{last}/execute", {"parameters": {"who": "Ada"}})]
    )
    # summaries are slow and few: about 2 % of requests
    summaries = run.drive(base, [summarize], rate=0.5)

    try:
        wait_for(lambda: not run.empty_panels(), 120, "every dashboard panel to have data")
    except AssertionError:
        raise AssertionError("\n".join(run.empty_panels())) from None
    assert traffic.sent > 0
    assert summaries.sent > 0
    # route templates, never raw paths, as labels
    assert run.query('http_requests_total{route="/api/conversations/{conversation_id}"}')
    assert not run.query(f'http_requests_total{{route=~".*{conversation}.*"}}')
    # one JSON log line per tool run, joined to its request and trace
    log = (run.workdir / f"{SERVICE}.log").read_text().splitlines()
    runs = [e for e in map(json.loads, log) if e.get("event") == "tool executed"]
    assert {e["tool_name"] for e in runs} >= {"search", "current_time", "summarize"}
    assert all(e["status"] in ("success", "error") and e["trace_id"] for e in runs)
    # the tool_name cap: 50 names, the rest folded, and BusinessLabelOverflow pending (its
    # 15 m hold is fixed: a rehearsal cannot shorten it)
    names = {r["metric"]["tool_name"] for r in run.query("tool_executions_total")}
    assert len(names) == TOOL_LABEL_CAP + 1
    assert {"search", "current_time", "summarize", "signature", "__overflow__"} <= names
    overflow_alert = (
        'ALERTS{alertname="BusinessLabelOverflow", alertstate="pending",'
        ' metric="tool_executions_total", label="tool_name"}'
    )
    wait_for(lambda: bool(run.query(overflow_alert)), 15, "BusinessLabelOverflow pending")

    # Warnings at once: the LLM API fails. Its check degrades the service (still ready);
    # summarize fails every call and pages for its tool_name alone; cached replies still
    # answer chat.
    llm.health_status = llm.completion_status = 503
    wait_for(lambda: check("llm-api") == "fail", 10, "the LLM API check to fail")
    health = client.get("/health")
    assert (health.status_code, health.json()["status"]) == (200, "warn"), health.text
    assert client.get("/health/ready").status_code == 200
    assert client.post("/api/chat", json={"message": "hello"}).status_code == 200
    assert client.post("/api/chat", json={"message": "a new question"}).status_code == 502
    run.wait_notified("DependencyDegraded", BOTH, service=SERVICE, check="llm-api",
                      severity="warning")  # fmt: skip
    assert not run.query('ALERTS{alertname="DependencyUnhealthy", check="llm-api"}')
    run.wait_notified("ToolExecutionFailure", BOTH, service=SERVICE, tool_name="summarize",
                      severity="warning")  # fmt: skip
    failing = {
        a["metric"]["tool_name"] for a in run.query('ALERTS{alertname="ToolExecutionFailure"}')
    }
    assert failing == {"summarize"}
    assert run.query('http_client_requests_total{peer="llm-api", status="503"}')
    assert not run.query(f'ALERTS{{service="{SERVICE}", severity="critical"}}')
    # the receivers' own messages from glassbox.toml
    assert _titles(run, "ToolExecutionFailure") == {
        "slack": {"AI Assistant Alert: ToolExecutionFailure (firing)"},
        "email": {"[AI Assistant Alert] ToolExecutionFailure (firing)"},
    }
    email = next(d for d in run.live.inbox.deliveries("email")
                 if "ToolExecutionFailure" in d.alertnames)  # fmt: skip
    mail = str(email.payload["text"])
    assert "Alert: High tool failure rate\nDescription: ai-assistant (tool_name=summarize)" in mail

    # Criticals at once: every 3rd request raises, Redis dies, node_exporter stops
    client.put("/admin/faults", json={"route": "*", "raise_ratio": 0.34})
    redis_server.kill()
    run.stop("node-exporter")
    wait_for(lambda: client.get("/health/ready").status_code == 503, 10, "readiness to fail")
    assert client.get("/health/live").status_code == 200
    run.wait_notified("DependencyUnhealthy", BOTH, service=SERVICE, check="redis",
                      severity="critical")  # fmt: skip
    run.wait_notified("RedisDown", BOTH, dependency="redis", severity="critical")
    run.wait_notified("DependencyTargetDown", BOTH, dependency="node", severity="critical")
    run.wait_notified("ServiceHighErrorRatio", BOTH, service=SERVICE, severity="critical")
    raised = run.query('http_exceptions_total{exception_type="InjectedFaultError"}')
    assert sum(float(r["value"][1]) for r in raised) > 2
    assert run.query('http_requests_total{route="/api/chat", status="500"}')
    assert run.query('cache_requests_total{result="error"}')  # the outage costs cache hits
    # while the service has a critical alert, its warnings wait (the config's inhibit rule)
    wait_for(
        lambda: (
            _muted(run, "ToolExecutionFailure", tool_name="summarize")
            and _muted(run, "DependencyDegraded", check="llm-api")
        ),
        20,
        "the service's critical alerts to inhibit its warnings",
    )

    # The service stops and PostgreSQL dies: one ServiceDown page, its symptoms inhibited
    traffic.stop()
    summaries.stop()
    run.stop(SERVICE)
    postgres_server.kill()
    run.wait_notified("ServiceDown", BOTH, service=SERVICE, severity="critical")
    run.wait_notified("PostgresDown", BOTH, dependency="postgres", severity="critical")
    wait_for(
        lambda: _muted(run, "ServiceHighErrorRatio") and _muted(run, "ServiceInstanceDown"),
        20,
        "ServiceDown to inhibit ServiceHighErrorRatio and ServiceInstanceDown",
    )
    assert not run.delivered_to("ServiceInstanceDown")
