"""The console in a real browser: Debian's chromium, driven by Playwright (no download).

Same live setup as test_app (real Prometheus, Alertmanager, inbox, the demo shop, a lab
service with planted markup, a seeded telemetry store). Every page loads without a
console error; dashboards draw uPlot charts from live data; an alert opens its
details; a trace opens as a waterfall and links to its logs; planted ``<script>`` and
``onerror`` never run. Screenshots go to tests/console/artifacts/.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glassbox.console.app import UPLOT_FILES, ConsoleServer, create_console, default_assets_dir
from tests.console.test_app import (
    HAVE_STACK,
    OTHER_TRACE,
    PLANTED_ALERT,
    PLANTED_ATTRIBUTE,
    PLANTED_CHECK,
    PLANTED_LABEL,
    PLANTED_LOG,
    PLANTED_ROUTE,
    PLANTED_SUMMARY,
    TRACE_ID,
    Live,
    eventually,
    has_points,
    live_console,
    panel_data,
    post_alert,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return "Debian's chromium is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright)"
    if not all((default_assets_dir() / name).is_file() for name in UPLOT_FILES):
        return "uPlot is not installed: run scripts/console-assets.sh"
    if not HAVE_STACK:
        return "Prometheus and Alertmanager come from ./scripts/setup.sh"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_console(tmp_path_factory.mktemp("console-browser")) as running:
        # the dashboards have something to draw before any browser opens them
        eventually(
            lambda: has_points(
                panel_data(running, "glassbox-shop-overview", "Request rate", range="15m")
            ),
            60,
            "request-rate points",
        )
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield instance
        finally:
            instance.close()


class Page:
    """A page that records console errors, uncaught exceptions and failed requests."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        page.on("dialog", self._dialog)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text}")

    def _dialog(self, dialog: Any) -> None:  # alert() from planted markup
        self.errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def open(self, url: str, *, ready: str = "body[data-ready]") -> None:
        self.page.goto(url)
        self.page.wait_for_selector(ready, timeout=20_000)

    def dashboard_ready(self) -> None:
        """Every panel drawn, then the variables' options loaded (they come after)."""
        self.page.wait_for_function(
            "() => window.__glassbox && window.__glassbox.dashboardReady"
            " && window.__glassbox.variablesMs"
        )

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def pwned(self) -> Any:
        return self.page.evaluate("() => window.__pwned")


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield Page(context.new_page())
    finally:
        context.close()


def test_every_page_loads_without_console_errors(live: Live, page: Page) -> None:
    boards = [d["uid"] for d in live.get("/api/dashboards")["dashboards"]]
    paths = ["/", "/dashboards", "/alerts", "/inbox", "/logs", "/traces",
             f"/traces/{TRACE_ID}"]  # fmt: skip
    paths += [f"/dashboards/{uid}?range=15m" for uid in boards]
    for path in paths:
        page.open(live.url + path)
        if path.startswith("/dashboards/"):
            page.dashboard_ready()
        name = path.strip("/").split("?")[0].replace("/", "-") or "overview"
        page.shot(f"page-{name}")
        assert page.page.query_selector("#page-error") is None, path
        assert page.errors == [], (path, page.errors)
        assert page.pwned() is None, path


def test_dashboard_charts_render_with_live_prometheus_data(live: Live, page: Page) -> None:
    answers: dict[str, Any] = {}

    def on_response(response: Any) -> None:
        if "/panels/" in response.url:
            with contextlib.suppress(Exception):
                answers[response.url] = response.json()

    page.page.on("response", on_response)
    page.open(f"{live.url}/dashboards/glassbox-shop-overview?range=15m")
    page.dashboard_ready()
    page.shot("dashboard-shop-overview")
    timeseries = page.page.query_selector_all("section.panel[data-panel-type=timeseries]")
    assert len(timeseries) == 4
    # every time-series panel drew a uPlot canvas, fed by points from Prometheus
    for panel in timeseries:
        title = panel.query_selector(".panel-title").inner_text()
        canvas = panel.query_selector("canvas")
        assert canvas is not None, title
        box = canvas.bounding_box()
        assert box is not None, title
        assert box["width"] > 100, (title, box)
        assert box["height"] > 50, (title, box)
    with_points = [a for a in answers.values() if has_points(a)]
    assert len(with_points) >= 4, {u: len(a["series"]) for u, a in answers.items()}
    info = page.page.evaluate("() => window.__glassbox")
    assert info["panels"] == 7
    assert info["charts"] >= 4
    # units in the legend (uPlot draws the axes on the canvas): hover the latest points
    over = page.page.query_selector("section.panel[data-panel-id='2'] .u-over")
    box = over.bounding_box()
    page.page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    legend = page.page.inner_text("section.panel[data-panel-id='2'] .u-legend")
    assert "200" in legend, legend
    assert "req/s" in legend, legend
    over = page.page.query_selector("section.panel[data-panel-id='5'] .u-over")
    box = over.bounding_box()
    page.page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    legend = page.page.inner_text("section.panel[data-panel-id='5'] .u-legend")
    assert "p95" in legend, legend
    assert " ms" in legend or " µs" in legend, legend
    page.shot("dashboard-shop-overview-hover")
    # the time range picker and the variable dropdown drive the queries
    page.page.select_option("#range", "1h")
    page.page.wait_for_function("() => window.__glassbox.cycle >= 2")
    assert "range=1h" in page.page.url
    page.page.click("details.var[data-variable=instance] > summary")
    instance = live.shop.removeprefix("http://")
    # All + the shop's instance, from label_values
    page.page.wait_for_selector(f"details.var[data-variable=instance] input[value='{instance}']")
    page.page.check(f"details.var[data-variable=instance] input[value='{instance}']")
    page.page.wait_for_function("() => window.__glassbox.cycle >= 3")
    assert "var-instance=" in page.page.url
    page.shot("dashboard-shop-overview-instance")
    assert page.page.query_selector("section.panel[data-panel-id='2'] canvas") is not None
    assert page.errors == []


def test_clicking_an_alert_shows_its_details(live: Live, page: Page) -> None:
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
    eventually(
        lambda: (
            {"ConsolePlanted", "ConsoleRunbook"}
            <= {a["name"] for a in live.get("/api/alerts")["alerts"]}
        ),
        30,
        "the posted alerts",
    )
    page.open(f"{live.url}/alerts")
    page.page.click("tr.alert-row[data-alertname=ConsoleRunbook]")
    detail = page.page.wait_for_selector("#alert-detail")
    assert "ConsoleRunbook" in detail.inner_text()
    link = page.page.query_selector("#alert-detail a.runbook")
    assert link is not None
    assert link.get_attribute("href") == "https://runbooks.example.com/X.md"
    page.page.click("tr.alert-row[data-alertname=ConsolePlanted]")
    page.page.wait_for_selector("#alert-detail h2:has-text('ConsolePlanted')")
    text = page.page.inner_text("#alert-detail")
    assert PLANTED_LABEL in text
    assert PLANTED_SUMMARY in text
    assert page.page.query_selector("#alert-detail a.runbook") is None  # javascript: dropped
    assert page.page.query_selector("#alert-detail script, #alert-detail img") is None
    assert "#" in page.page.url  # the open alert is in the address
    page.shot("alert-detail")
    # the address opens the same alert again
    page.open(page.page.url)
    page.page.wait_for_selector("#alert-detail h2:has-text('ConsolePlanted')")
    assert page.errors == []
    assert page.pwned() is None


def test_trace_opens_as_a_waterfall_and_links_to_its_logs(live: Live, page: Page) -> None:
    page.open(f"{live.url}/traces")
    rows = page.page.query_selector_all("tr.trace-row")
    assert [r.get_attribute("data-trace-id") for r in rows] == [OTHER_TRACE, TRACE_ID]
    page.page.click(f"tr.trace-row[data-trace-id='{TRACE_ID}']")
    page.page.wait_for_selector("#waterfall .span-row")
    page.page.wait_for_url(f"**/traces/{TRACE_ID}")
    spans = page.page.query_selector_all("#waterfall .span-row")
    assert [s.get_attribute("data-depth") for s in spans] == ["0", "1", "1", "2"]
    # bars are positioned by start and sized by duration (120 ms trace)
    geometry = page.page.evaluate(
        """() => [...document.querySelectorAll('#waterfall .span-row .wf-bar')]
               .map(b => [parseFloat(b.style.left), parseFloat(b.style.width)])"""
    )
    expected = [(0, 100), (5 / 120 * 100, 20 / 120 * 100), (25, 80 / 120 * 100),
                (40 / 120 * 100, 55 / 120 * 100)]  # fmt: skip
    for (left, width), (want_left, want_width) in zip(geometry, expected, strict=True):
        assert left == pytest.approx(want_left, abs=0.1)
        assert width == pytest.approx(want_width, abs=0.1)
    assert "error" in (spans[2].query_selector(".wf-bar").get_attribute("class") or "")
    spans[2].click()
    detail = page.page.wait_for_selector("#span-detail")
    assert "exception" in detail.inner_text()
    page.shot("trace-waterfall")
    # the span's own logs
    page.page.click("#span-detail a.span-logs")
    page.page.wait_for_url("**/logs?**")
    page.page.wait_for_selector("body[data-ready] tr.log-row")
    messages = [m.inner_text() for m in page.page.query_selector_all("tr.log-row td.message")]
    assert messages == [PLANTED_LOG]
    # the whole trace's logs, from the trace page's link
    page.open(f"{live.url}/traces/{TRACE_ID}")
    page.page.click("#trace-logs")
    page.page.wait_for_url(f"**/logs?trace_id={TRACE_ID}**")
    page.page.wait_for_selector("tr.log-row")
    rows = page.page.query_selector_all("tr.log-row")
    assert len(rows) == 3
    # and each log line with a trace id links back to the trace
    links = {a.get_attribute("href") for a in page.page.query_selector_all("a.trace-link")}
    assert links == {f"/traces/{TRACE_ID}"}
    rows[0].click()  # the attributes open under the line, as text
    page.shot("logs-of-trace")
    body_text = page.page.inner_text("#log-results")
    assert PLANTED_LOG in body_text
    assert page.errors == []
    assert page.pwned() is None


def test_planted_markup_never_runs(live: Live, page: Page) -> None:
    post_alert(live, PLANTED_ALERT, {"summary": PLANTED_SUMMARY})
    eventually(
        lambda: any(
            "ConsolePlanted" in d["alertnames"] for d in live.get("/api/inbox")["deliveries"]
        ),
        60,
        "the planted alert in the inbox",
    )
    eventually(
        lambda: (
            PLANTED_ROUTE
            in live.get("/api/dashboards/glassbox-lab-routes/variables/route", range="15m")[
                "values"
            ]
        ),
        30,
        "the planted route",
    )
    # overview: the planted health check name
    page.open(live.url + "/")
    page.page.wait_for_selector(f"#health td:text-is('{PLANTED_CHECK}')")
    # a dashboard: planted label values in the variable dropdown and the legend
    page.open(f"{live.url}/dashboards/glassbox-lab-routes?range=15m")
    page.dashboard_ready()
    page.page.click("details.var[data-variable=route] > summary")
    page.page.wait_for_selector(f"details.var[data-variable=route] input[value='{PLANTED_ROUTE}']")
    legend = page.page.inner_text("section.panel .u-legend")
    assert PLANTED_ROUTE in legend
    page.shot("planted-dashboard")
    # the inbox: the payload, as received
    page.open(live.url + "/inbox")
    page.page.click("tr.delivery-row:has-text('ConsolePlanted')")
    payload = page.page.wait_for_selector("#payload pre")
    assert PLANTED_LABEL in payload.inner_text()
    json.loads(payload.inner_text())  # shown verbatim, as JSON text
    page.shot("inbox-payload")
    # logs: the message and the attributes
    page.open(live.url + "/logs?level=error")
    page.page.click("tr.log-row")
    text = page.page.inner_text("#log-results")
    assert PLANTED_LOG in text
    assert PLANTED_ATTRIBUTE in text
    # the alert list
    page.open(live.url + "/alerts")
    assert PLANTED_LABEL in page.page.inner_text("#alert-list")
    for selector in ("main script", "main img", "main [onerror]"):
        assert page.page.query_selector(selector) is None, selector
    assert page.pwned() is None
    assert page.errors == []


def test_missing_uplot_shows_a_clear_message(live: Live, page: Page, tmp_path: Path) -> None:
    assert live.stack.config is not None
    app = create_console(
        prometheus_url=live.prometheus,
        alertmanager_url=live.alertmanager,
        inbox=None,
        store=None,
        dashboards_dir=live.dashboards,
        config=live.stack.config,
        assets_dir=tmp_path,  # empty: no uPlot
    )
    with ConsoleServer(app) as server:
        page.open(f"{server.url}/dashboards/glassbox-shop-overview?range=15m")
        page.dashboard_ready()
        banner = page.page.inner_text(".banner")
        assert "uPlot" in banner
        assert "scripts/console-assets.sh" in banner
        # panels still show their latest values, without charts
        assert page.page.query_selector("canvas") is None
        assert page.page.query_selector_all(".stat-value")
        page.shot("dashboard-without-uplot")
        page.open(f"{server.url}/inbox")
        assert "not running" in page.page.inner_text("#content")
        page.open(f"{server.url}/traces")
        assert "No telemetry store" in page.page.inner_text("#content")
    assert page.errors == []
