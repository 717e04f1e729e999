"""The console's pages and JSON API against a real Prometheus, Alertmanager and inbox.

A live stack (``LocalStack``: real Prometheus and Alertmanager on loopback, the local
inbox) scrapes the demo shop (under uvicorn) and a tiny "lab" service whose labels
carry planted HTML (``<script>``, ``<img onerror>``); the telemetry store is seeded
with a trace and its logs. The API must return real data, and planted markup only
ever as data.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from glassbox.console.app import (
    CONTENT_SECURITY_POLICY,
    ConsoleServer,
    create_console,
    expand_query,
    normalise_dashboard,
    round_interval,
)
from glassbox.local.stack import LocalPorts, LocalStack
from tests.conftest import free_port, stop_process, wait_for

HAVE_STACK = (
    shutil.which("prometheus") is not None
    and (shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")) is not None
)
needs_stack = pytest.mark.skipif(
    not HAVE_STACK, reason="Prometheus and Alertmanager come from ./scripts/setup.sh"
)
GOLDEN = Path(__file__).parents[1] / "stack" / "golden" / "grafana" / "dashboards"
WEB = Path(__file__).parents[2] / "src" / "glassbox" / "console" / "web"

# Planted markup: any of these running would set window.__pwned.
PLANTED_ROUTE = "/<script>window.__pwned=1</script>"
PLANTED_CHECK = "<img src=x onerror=window.__pwned=2>"
PLANTED_LOG = "<script>window.__pwned=3</script> payment failed"
PLANTED_LABEL = "<script>window.__pwned=4</script>"
PLANTED_SUMMARY = "<img src=x onerror=window.__pwned=5>"
PLANTED_ATTRIBUTE = "<img src=x onerror=window.__pwned=7>"

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"

CONFIG = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "shop"
targets = ["127.0.0.1:{shop}"]

[services.alerts]
window = "10s"

[[services.slos]]
name = "availability"
kind = "availability"
objective = 99.0

[[services]]
name = "lab"
targets = ["127.0.0.1:{lab}"]

[services.alerts]
window = "10s"
dependency_for = "2s"

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[routing]
group_wait = "1s"
group_interval = "1s"
"""


# -- the lab service: a /metrics with planted label values ---------------------------------


class _Lab(BaseHTTPRequestHandler):
    scrapes = 0

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        _Lab.scrapes += 1
        n = _Lab.scrapes
        route = PLANTED_ROUTE.replace("\\", "\\\\").replace('"', '\\"')
        text = (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{method="GET",route="{route}",status="200"}} {n * 3}\n'
            f'http_requests_total{{method="GET",route="/fine",status="200"}} {n}\n'
            "# TYPE health_check_status gauge\n"
            f'health_check_status{{check="{PLANTED_CHECK}"}} 0\n'
            'health_check_status{check="disk"} 1\n'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args: Any) -> None:
        pass


# -- the telemetry store ----------------------------------------------------------------


def make_store() -> Any:
    """A store seeded with two traces and their logs (times: the last minute)."""
    from glassbox.console.store import LogRecord, Span, SpanEvent, TelemetryStore

    store = TelemetryStore(":memory:")
    log_cls, span_cls, event_cls = LogRecord, Span, SpanEvent
    t0 = time.time_ns() - 30 * 10**9
    ms = 10**6
    spans = [
        span_cls(trace_id=TRACE_ID, span_id="a000000000000001", name="POST /api/orders",
                 kind="server", service="shop", start_ns=t0, end_ns=t0 + 120 * ms,
                 status_code="error", status_message="payment failed",
                 attributes={"http.route": "/api/orders", "note": PLANTED_ATTRIBUTE}),
        span_cls(trace_id=TRACE_ID, span_id="a000000000000002",
                 parent_span_id="a000000000000001", name="SELECT orders", kind="client",
                 service="shop", start_ns=t0 + 5 * ms, end_ns=t0 + 25 * ms,
                 attributes={"db.system": "postgresql"}),
        span_cls(trace_id=TRACE_ID, span_id="a000000000000003",
                 parent_span_id="a000000000000001", name="charge", service="shop",
                 start_ns=t0 + 30 * ms, end_ns=t0 + 110 * ms, status_code="error",
                 events=[event_cls(name="exception", time_ns=t0 + 100 * ms,
                                   attributes={"exception.type": "RuntimeError"})]),
        span_cls(trace_id=TRACE_ID, span_id="a000000000000004",
                 parent_span_id="a000000000000003", name="POST /v1/charges", kind="server",
                 service="payments", start_ns=t0 + 40 * ms, end_ns=t0 + 95 * ms),
        span_cls(trace_id=OTHER_TRACE, span_id="b000000000000001", name="GET /api/items/{id}",
                 kind="server", service="shop", start_ns=t0 + 1000 * ms,
                 end_ns=t0 + 1004 * ms),
    ]  # fmt: skip
    logs = [
        log_cls(time_ns=t0 + 6 * ms, service="shop", level="info", logger="shop.orders",
                message="loading the cart", trace_id=TRACE_ID, span_id="a000000000000002"),
        log_cls(time_ns=t0 + 101 * ms, service="shop", level="error", logger="shop.pay",
                message=PLANTED_LOG, trace_id=TRACE_ID, span_id="a000000000000003",
                attributes={"html": PLANTED_ATTRIBUTE}),
        log_cls(time_ns=t0 + 50 * ms, service="payments", level="warning", logger="pay",
                message="card declined, retrying", trace_id=TRACE_ID,
                span_id="a000000000000004"),
        log_cls(time_ns=t0 + 1001 * ms, service="shop", level="debug", logger="shop.items",
                message="cache hit", trace_id=OTHER_TRACE, span_id="b000000000000001"),
        log_cls(time_ns=t0 + 2000 * ms, service="shop", level="info", logger="shop",
                message="started without a trace"),
    ]  # fmt: skip
    store.add_spans(spans)
    store.add_logs(logs)
    return store


# -- the live stack ---------------------------------------------------------------------------


@dataclass
class Live:
    stack: LocalStack
    url: str
    shop: str
    store: Any
    dashboards: Path
    app: Any

    @property
    def prometheus(self) -> str:
        return self.stack.prometheus_url

    @property
    def alertmanager(self) -> str:
        return self.stack.alertmanager_url

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=15)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _traffic(shop: str, stop: threading.Event) -> None:
    with httpx.Client(timeout=5) as client:
        i = 0
        while not stop.wait(0.1):
            i += 1
            with contextlib.suppress(httpx.HTTPError):
                client.get(f"{shop}/api/items/{i % 50}")
                if i % 3 == 0:
                    client.post(f"{shop}/api/orders", params={"items": i % 5 + 1})
                if i % 20 == 0:
                    client.get(f"{shop}/api/items/5000")  # a 404
                if i % 10 == 0:  # a 500: the payment provider fails
                    client.post(f"{shop}/api/orders", params={"payment": "broken"})


@contextlib.contextmanager
def live_console(directory: Path) -> Iterator[Live]:
    """The whole live setup; every process and thread is stopped on exit."""
    ports = {"shop": free_port(), "lab": free_port()}
    lab = ThreadingHTTPServer(("127.0.0.1", ports["lab"]), _Lab)
    lab_thread = threading.Thread(target=lab.serve_forever, daemon=True)
    lab_thread.start()
    shop = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "glassbox.demo.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(ports["shop"]), "--no-access-log"],
        stdout=(directory / "shop.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    config = directory / "glassbox.toml"
    config.write_text(CONFIG.format(**ports))
    stack = LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0), real_receivers=False)
    stop = threading.Event()
    traffic: threading.Thread | None = None
    server: ConsoleServer | None = None
    store = make_store()
    try:
        shop_url = f"http://127.0.0.1:{ports['shop']}"
        wait_for(lambda: _answers(f"{shop_url}/metrics"), 30, "the demo shop")
        stack.start(watch=False)
        assert stack.config is not None
        traffic = threading.Thread(target=_traffic, args=(shop_url, stop), daemon=True)
        traffic.start()
        dashboards = stack.output_dir(stack.config) / "grafana" / "dashboards"
        app = create_console(
            prometheus_url=stack.prometheus_url,
            alertmanager_url=stack.alertmanager_url,
            inbox=stack.inbox,
            store=store,
            dashboards_dir=dashboards,
            config=stack.config,
        )
        server = ConsoleServer(app).start()
        yield Live(stack, server.url, shop_url, store, dashboards, app)
    finally:
        stop.set()
        if traffic is not None:
            traffic.join(5)
        if server is not None:
            server.stop()
        stack.stop()
        stop_process(shop)
        lab.shutdown()
        lab.server_close()
        with contextlib.suppress(Exception):
            store.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if not HAVE_STACK:
        pytest.skip("Prometheus and Alertmanager come from ./scripts/setup.sh")
    with live_console(tmp_path_factory.mktemp("console")) as running:
        yield running


def post_alert(live: Live, labels: dict[str, str], annotations: dict[str, str]) -> None:
    now = datetime.now(UTC)
    body = [
        {
            "labels": labels,
            "annotations": annotations,
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "generatorURL": f"{live.prometheus}/graph",
        }
    ]
    response = httpx.post(f"{live.alertmanager}/api/v2/alerts", json=body, timeout=5)
    assert response.status_code == 200, response.text


PLANTED_ALERT = {
    "alertname": "ConsolePlanted",
    "severity": "warning",
    "service": "lab",
    "note": PLANTED_LABEL,
}


def panel_data(live: Live, uid: str, title: str, **params: Any) -> dict[str, Any]:
    board = live.get(f"/api/dashboards/{uid}")
    panel = next(p for row in board["rows"] for p in row["panels"] if p["title"] == title)
    return live.get(f"/api/dashboards/{uid}/panels/{panel['id']}", **params)  # type: ignore[no-any-return]


def has_points(data: dict[str, Any]) -> bool:
    return any(v is not None for s in data["series"] for v in s["values"])


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, httpx.HTTPError, KeyError, StopIteration) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


# -- without a stack: pure functions and the app's guard rails ----------------------------


def test_expand_query_substitutes_builtins_and_escapes_values() -> None:
    board = json.loads((GOLDEN / "glassbox-shop-routes.json").read_text())
    from glassbox.console.app import _variables

    variables = _variables(board)
    builtins = {"__rate_interval": "1m", "__interval": "15s"}
    expr = (
        'sum(rate(x{instance=~"$instance", route=~"${route}"}[$__rate_interval]))'
        " [[instance]] $__interval $unknown"
    )
    out = expand_query(expr, variables, {}, builtins)
    assert out == 'sum(rate(x{instance=~".*", route=~".*"}[1m])) .* 15s $unknown'
    # one value: a regex matching only itself; quotes cannot end the PromQL string
    out = expand_query(
        'x{route=~"$route"}', variables, {"route": ['/a.b"} or vector(1) #']}, builtins
    )
    assert out == 'x{route=~"/a\\\\.b\\"\\\\} or vector\\\\(1\\\\) #"}'
    out = expand_query('x{route=~"$route"}', variables, {"route": ["/a", "/b"]}, builtins)
    assert out == 'x{route=~"(/a|/b)"}'


def test_round_interval_follows_grafana() -> None:
    assert round_interval(21.6) == 20
    assert round_interval(86400 / 1000) == 60
    assert round_interval(144) == 120
    assert round_interval(3) == 2


def test_normalise_dashboard_keeps_rows_panels_units_and_variables() -> None:
    board = json.loads((GOLDEN / "glassbox-shop-overview.json").read_text())
    out = normalise_dashboard(board, uid="glassbox-shop-overview")
    assert [r["title"] for r in out["rows"]] == ["Traffic and errors", "Latency and saturation"]
    panels = [p for r in out["rows"] for p in r["panels"]]
    assert {p["unit"] for p in panels} >= {"reqps", "percentunit", "s", "short"}
    latency = next(p for p in panels if p["title"].startswith("Latency"))
    assert [t["legend"] for t in latency["targets"]] == ["p50", "p95", "p99"]
    assert out["variables"][0]["name"] == "instance"
    assert out["variables"][0]["label_name"] == "instance"
    assert out["range"] == "6h"


def offline_app(**kw: Any) -> Any:
    return create_console(
        prometheus_url=f"http://127.0.0.1:{free_port()}",
        alertmanager_url=f"http://127.0.0.1:{free_port()}",
        inbox=None,
        store=None,
        dashboards_dir=GOLDEN,
        **kw,
    )


def test_guard_rails_csp_no_cors_get_only_and_loopback_hosts() -> None:
    with TestClient(offline_app(), base_url="http://127.0.0.1:8000") as client:
        for path in ("/", "/dashboards", "/alerts", "/inbox", "/logs", "/traces",
                     "/dashboards/glassbox-slo", "/traces/abc", "/api/dashboards"):  # fmt: skip
            response = client.get(path, headers={"Origin": "http://evil.example"})
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert "access-control-allow-origin" not in response.headers
            assert response.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert client.request(method, "/api/alerts").status_code == 405
        assert client.options("/api/alerts").status_code == 405
        evil = client.get("/api/dashboards", headers={"Host": "evil.example:8000"})
        assert evil.status_code == 400
        assert client.get("/", headers={"Host": "localhost:8000"}).status_code == 200
        # no inline script in any page: every <script> has a src on this origin
        page = client.get("/dashboards/glassbox-slo").text
        scripts = re.findall(r"<script[^>]*>", page)
        assert scripts
        assert all(re.search(r'src="/(static|assets)/', s) for s in scripts)
        assert "<script>" not in page


def test_unreachable_prometheus_is_reported_as_data() -> None:
    with TestClient(offline_app(), base_url="http://127.0.0.1:8000") as client:
        overview = client.get("/api/overview")
        assert overview.status_code == 200
        assert any("did not answer" in e for e in overview.json()["errors"])
        assert client.get("/api/silences").status_code == 502
        data = client.get("/api/dashboards/glassbox-shop-overview/panels/2").json()
        assert data["series"] == []
        assert "did not answer" in data["queries"][0]["error"]
        assert client.get("/api/dashboards/nope").status_code == 404
        assert client.get("/api/dashboards/glassbox-slo/panels/999").status_code == 404
        bad = client.get("/api/dashboards/glassbox-slo/panels/2", params={"range": "1y; rm"})
        assert bad.status_code == 400
        assert client.get("/api/logs").json() == {"available": False, "logs": []}
        assert client.get("/api/inbox").json()["available"] is False


def test_a_reloaded_config_reaches_the_console() -> None:
    from glassbox.console.app import set_console_config
    from glassbox.stack.config import parse_config

    app = offline_app()
    config = parse_config(
        {
            "prometheus": {"scrape_interval": "5s"},
            "services": [{"name": "cart", "targets": ["127.0.0.1:9"]}],
            "receivers": [{"name": "pager", "kind": "webhook", "url": "http://127.0.0.1:9/"}],
        }
    )
    set_console_config(app, config)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/services").json()["services"] == ["cart"]
        assert client.get("/api/inbox").json()["receivers"] == [{"name": "pager", "count": 0}]
        data = client.get("/api/dashboards/glassbox-slo/panels/5", params={"range": "15m"})
        assert data.json()["rate_interval"] == "20s"  # 4 scrape intervals of 5 s


def test_missing_uplot_asset_still_serves_a_dashboard_that_says_so(tmp_path: Path) -> None:
    with TestClient(offline_app(assets_dir=tmp_path), base_url="http://127.0.0.1") as client:
        page = client.get("/dashboards/glassbox-slo")
        assert page.status_code == 200
        assert 'data-uplot="missing"' in page.text
        assert "uPlot.iife.min.js" not in page.text
        asset = client.get("/assets/uplot/uPlot.iife.min.js")
        assert asset.status_code == 404
        assert "scripts/console-assets.sh" in asset.text
        assert client.get("/api/dashboards").json()["uplot"] is False
        assert client.get("/assets/uplot/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert client.get("/static/..%2Fapp.py").status_code == 404


def test_page_script_never_writes_markup() -> None:
    script = re.sub(r"^\s*//.*$", "", (WEB / "console.js").read_text(), flags=re.MULTILINE)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"on"):  # fmt: skip
        assert sink not in script, sink


# -- against the live stack ------------------------------------------------------------------


@needs_stack
def test_pages_are_shells_without_data(live: Live) -> None:
    for path in ("/", "/dashboards", "/dashboards/glassbox-shop-overview", "/alerts",
                 "/inbox", "/logs", "/traces", f"/traces/{TRACE_ID}"):  # fmt: skip
        response = httpx.get(live.url + path, timeout=10)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "window.__pwned" not in response.text
    js = httpx.get(live.url + "/static/console.js", timeout=10)
    assert js.headers["content-type"].startswith("text/javascript")
    missing = httpx.get(live.url + "/dashboards/no-such-board", timeout=10)
    assert missing.status_code == 404


@needs_stack
def test_overview_shows_targets_alerts_slo_budget_and_health(live: Live) -> None:
    def ready() -> dict[str, Any] | None:
        data: dict[str, Any] = live.get("/api/overview")
        by_name = {s["name"]: s for s in data["services"]}
        if not (by_name["shop"]["up"] == 1 and by_name["lab"]["up"] == 1):
            return None
        if not any(s["remaining"] is not None for s in data["slos"]):
            return None
        if not data["health"] or not data["alerts"]["firing"]:
            return None
        return data

    data = eventually(ready, 60, "targets up, an SLO budget, health checks, a firing alert")
    by_name = {s["name"]: s for s in data["services"]}
    assert by_name["shop"]["kind"] == "service"
    assert by_name["shop"]["targets"][0]["health"] == "up"
    assert {"prometheus", "alertmanager"} <= set(by_name)
    slo = next(s for s in data["slos"] if s["service"] == "shop")
    assert slo["slo"] == "availability"
    assert slo["objective"] == pytest.approx(0.99)
    assert slo["remaining"] <= 1.0
    checks = {(c["service"], c["check"]): c["status"] for c in data["health"]}
    # planted markup comes back verbatim, as data
    assert checks[("lab", PLANTED_CHECK)] == 0
    assert checks[("lab", "disk")] == 1
    assert data["errors"] == []


@needs_stack
def test_dashboards_are_the_generated_files(live: Live) -> None:
    data = live.get("/api/dashboards")
    files = sorted(p.name for p in live.dashboards.glob("*.json"))
    assert sorted(d["file"] for d in data["dashboards"]) == files
    uids = {d["uid"] for d in data["dashboards"]}
    assert {"glassbox-shop-overview", "glassbox-shop-routes", "glassbox-slo"} <= uids
    board = live.get("/api/dashboards/glassbox-shop-overview")
    on_disk = json.loads((live.dashboards / "glassbox-shop-overview.json").read_text())
    expected = normalise_dashboard(on_disk, uid="glassbox-shop-overview")
    expected.update(uplot=board["uplot"], ranges=["15m", "1h", "6h", "24h", "7d"])
    assert board == expected


@needs_stack
def test_panel_queries_return_points_from_prometheus(live: Live) -> None:
    data = eventually(
        lambda: (
            (d := panel_data(live, "glassbox-shop-overview", "Request rate", range="15m"))
            and has_points(d)
            and d
        ),
        60,
        "request-rate points",
    )
    # 15m over 1000 px: 0.9 s, so the 1 s scrape interval; rate window 4 scrape intervals
    assert data["interval"] == "1s"
    assert data["rate_interval"] == "4s"
    expr = data["queries"][0]["expr"]
    assert "[4s]" in expr
    assert 'instance=~".*"' in expr
    assert "$" not in expr
    assert len(data["timestamps"]) == len(data["series"][0]["values"])
    assert {s["name"] for s in data["series"]} >= {"200"}
    # a chosen instance: the value is escaped as a regex, points are still there
    instance = live.shop.removeprefix("http://")
    data = panel_data(
        live, "glassbox-shop-overview", "Request rate", range="15m", **{"var-instance": instance}
    )
    assert instance.replace(".", "\\\\.") in data["queries"][0]["expr"]
    assert has_points(data)
    # width drives $__interval as in Grafana: 24h over 600 px is 144 s, rounded to 2m
    wide = panel_data(live, "glassbox-shop-overview", "Request rate", range="24h", width=600)
    assert wide["interval"] == "2m"
    assert wide["step"] == 120
    assert wide["rate_interval"] == "121s"
    # a stat panel with several queries, and the multi-query latency panel
    latency = eventually(
        lambda: (
            (
                d := panel_data(
                    live, "glassbox-shop-overview", "Latency p50 / p95 / p99", range="15m"
                )
            )
            and has_points(d)
            and d
        ),
        30,
        "latency points",
    )
    assert {s["name"] for s in latency["series"]} == {"p50", "p95", "p99"}


@needs_stack
def test_variables_come_from_label_values_and_planted_markup_is_data(live: Live) -> None:
    routes = eventually(
        lambda: (v := live.get("/api/dashboards/glassbox-shop-routes/variables/route",
                               range="15m")["values"]) and "/api/items/{item_id}" in v and v,
        30,
        "the shop's routes",
    )  # fmt: skip
    assert "/api/orders" in routes
    lab = eventually(
        lambda: (v := live.get("/api/dashboards/glassbox-lab-routes/variables/route",
                               range="15m")["values"]) and PLANTED_ROUTE in v and v,
        30,
        "the lab's planted route",
    )  # fmt: skip
    assert "/fine" in lab
    data = eventually(
        lambda: (d := panel_data(live, "glassbox-lab-routes", "Request rate by route",
                                 range="15m")) and has_points(d) and d,
        30,
        "lab route points",
    )  # fmt: skip
    assert PLANTED_ROUTE in {s["name"] for s in data["series"]}
    # selecting the planted value itself: escaped into the query, still matches
    data = panel_data(
        live, "glassbox-lab-routes", "Request rate by route", range="15m",
        **{"var-route": PLANTED_ROUTE},
    )  # fmt: skip
    assert [s["name"] for s in data["series"]] == [PLANTED_ROUTE]


@needs_stack
def test_alerts_merge_alertmanager_and_prometheus_with_details(live: Live) -> None:
    post_alert(
        live,
        PLANTED_ALERT,
        {
            "summary": PLANTED_SUMMARY,
            "description": "planted",
            "runbook_url": "javascript:alert(1)",
        },
    )
    post_alert(
        live,
        {"alertname": "ConsoleRunbook", "severity": "critical", "service": "shop"},
        {"summary": "has a runbook", "runbook_url": "https://runbooks.example.com/X.md"},
    )

    def found() -> dict[str, Any] | None:
        data = live.get("/api/alerts")
        names = {a["name"]: a for a in data["alerts"]}
        wanted = ("ConsolePlanted", "ConsoleRunbook", "DependencyUnhealthy")
        return data if all(n in names for n in wanted) else None

    data = eventually(found, 60, "the posted alerts and DependencyUnhealthy")
    names = {a["name"]: a for a in data["alerts"]}
    planted = names["ConsolePlanted"]
    assert planted["source"] == "alertmanager"
    assert planted["state"] == "firing"
    assert planted["labels"]["note"] == PLANTED_LABEL
    assert planted["annotations"]["summary"] == PLANTED_SUMMARY
    assert planted["runbook_url"] is None  # javascript: links are dropped
    assert names["ConsoleRunbook"]["runbook_url"] == "https://runbooks.example.com/X.md"
    unhealthy = names["DependencyUnhealthy"]
    assert unhealthy["labels"]["check"] == PLANTED_CHECK
    assert unhealthy["state"] in ("pending", "firing")
    assert unhealthy["runbook_url"].endswith("/DependencyUnhealthy.md")
    assert data["errors"] == []
    assert data["counts"]["firing"] >= 2


@needs_stack
def test_silences_are_listed(live: Live) -> None:
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": "alertname", "value": "ConsoleSilenced", "isRegex": False}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "tests",
        "comment": PLANTED_LABEL,
    }
    response = httpx.post(f"{live.alertmanager}/api/v2/silences", json=body, timeout=5)
    assert response.status_code == 200, response.text
    silence_id = response.json()["silenceID"]
    post_alert(live, {"alertname": "ConsoleSilenced", "severity": "info"}, {"summary": "quiet"})
    silences = live.get("/api/silences")["silences"]
    mine = next(s for s in silences if s["id"] == silence_id)
    assert mine["state"] == "active"
    assert mine["comment"] == PLANTED_LABEL
    assert mine["matchers"] == [
        {"name": "alertname", "value": "ConsoleSilenced", "is_regex": False, "is_equal": True}
    ]
    silenced = eventually(
        lambda: next(
            (a for a in live.get("/api/alerts")["alerts"]
             if a["name"] == "ConsoleSilenced" and a["state"] == "suppressed"), None),
        20,
        "the silenced alert",
    )  # fmt: skip
    assert silenced["silenced_by"] == [silence_id]


@needs_stack
def test_inbox_shows_deliveries_per_receiver(live: Live) -> None:
    post_alert(live, PLANTED_ALERT, {"summary": PLANTED_SUMMARY})
    data = eventually(
        lambda: (d := live.get("/api/inbox")) and d["deliveries"] and d,
        60,
        "a delivery in the inbox",
    )
    assert data["available"] is True
    hook = next(r for r in data["receivers"] if r["name"] == "hook")
    assert hook["count"] >= 1
    delivery = data["deliveries"][0]
    assert delivery["receiver"] == "hook"
    assert delivery["kind"] == "webhook"
    assert isinstance(delivery["payload"], dict)
    assert delivery["payload"]["alerts"]
    only = live.get("/api/inbox", receiver="hook")
    assert only["deliveries"]
    assert {d["receiver"] for d in only["deliveries"]} == {"hook"}
    assert live.get("/api/inbox", receiver="nobody")["deliveries"] == []


@needs_stack
def test_logs_search_by_level_text_trace_and_service(live: Live) -> None:
    logs = live.get("/api/logs", since="1h")["logs"]
    assert len(logs) == 5
    assert [r["time_ms"] for r in logs] == sorted((r["time_ms"] for r in logs), reverse=True)
    errors = live.get("/api/logs", level="error")["logs"]
    assert [r["message"] for r in errors] == [PLANTED_LOG]
    assert errors[0]["attributes"] == {"html": PLANTED_ATTRIBUTE}
    assert errors[0]["trace_id"] == TRACE_ID
    assert int(errors[0]["time_ns"]) > 0
    assert isinstance(errors[0]["time_ns"], str)
    assert {r["message"] for r in live.get("/api/logs", text="DECLINED")["logs"]} == {
        "card declined, retrying"
    }
    by_trace = live.get("/api/logs", trace_id=TRACE_ID)["logs"]
    assert len(by_trace) == 3
    assert {r["service"] for r in live.get("/api/logs", service="payments")["logs"]} == {"payments"}
    by_span = live.get("/api/logs", trace_id=TRACE_ID, span_id="a000000000000003")["logs"]
    assert [r["message"] for r in by_span] == [PLANTED_LOG]
    assert httpx.get(f"{live.url}/api/logs", params={"since": "soon"}).status_code == 400


@needs_stack
def test_traces_list_and_waterfall(live: Live) -> None:
    traces = live.get("/api/traces")["traces"]
    assert [t["trace_id"] for t in traces] == [OTHER_TRACE, TRACE_ID]
    mine = traces[1]
    assert mine["name"] == "POST /api/orders"
    assert mine["span_count"] == 4
    assert mine["error"]
    assert [t["trace_id"] for t in live.get("/api/traces", errors_only="1")["traces"]] == [TRACE_ID]
    assert live.get("/api/traces", min_duration_ms="50")["traces"][0]["trace_id"] == TRACE_ID
    trace = live.get(f"/api/traces/{TRACE_ID}")
    assert trace["duration_ms"] == pytest.approx(120)
    assert trace["services"] == ["payments", "shop"]
    order = [(s["name"], s["depth"]) for s in trace["spans"]]
    assert order == [
        ("POST /api/orders", 0),
        ("SELECT orders", 1),
        ("charge", 1),
        ("POST /v1/charges", 2),
    ]
    charge = trace["spans"][2]
    assert charge["offset_ms"] == pytest.approx(30)
    assert charge["duration_ms"] == pytest.approx(80)
    assert charge["error"] is True
    assert charge["events"][0]["name"] == "exception"
    assert charge["events"][0]["offset_ms"] == pytest.approx(100)
    assert trace["spans"][0]["attributes"]["note"] == PLANTED_ATTRIBUTE
    assert httpx.get(f"{live.url}/api/traces/{'f' * 32}", timeout=5).status_code == 404
    assert set(live.get("/api/services")["services"]) >= {"shop", "lab", "payments"}
