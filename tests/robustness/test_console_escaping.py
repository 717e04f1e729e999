"""Planted markup reaches the console through every way in, and never runs.

Under ``glassbox up``: ``<script>`` and ``onerror`` payloads in span names, attributes,
events, status messages and service names and in log bodies, attributes and logger
names (sent over OTLP/HTTP to the console), in a business metric's label value
(scraped by Prometheus from the planted service), in an alert's labels and
annotations (posted to Alertmanager) and in a notification (posted to the inbox).
Each console page that shows them is opened in Debian's chromium: the payload is
shown as text, ``window.__pwned`` stays unset, no dialog opens and nothing fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from tests.conftest import wait_for
from tests.console.test_browser import ARGS, CHROMIUM, Page, _skip_reason
from tests.robustness.conftest import MARKUP, PlantedStack, console_json

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]

IMG = '"><img src=x onerror="window.__pwned=2">'
SVG = "<svg onload=window.__pwned=3>"
LINK = "javascript:window.__pwned=4"
TRACE_ID = "5e1f2a3b4c5d6e7f8091a2b3c4d5e6f7"
PAYLOADS = (MARKUP, IMG, SVG)


def _kv(key: str, value: str) -> KeyValue:
    kv = KeyValue(key=key)
    kv.value.string_value = value
    return kv


def _plant_telemetry(stack: PlantedStack) -> None:
    now = time.time_ns()
    traces = ExportTraceServiceRequest()
    resource = traces.resource_spans.add()
    resource.resource.attributes.append(_kv("service.name", IMG))
    spans = resource.scope_spans.add()
    root = spans.spans.add(name=MARKUP, kind=2)
    root.trace_id, root.span_id = bytes.fromhex(TRACE_ID), bytes.fromhex("a1" * 8)
    root.start_time_unix_nano, root.end_time_unix_nano = now - 50_000_000, now
    root.attributes.extend([_kv("note", IMG), _kv(SVG, "key planted")])
    root.status.code, root.status.message = Status.STATUS_CODE_ERROR, MARKUP
    root.events.add(name=SVG, time_unix_nano=now - 10_000_000).attributes.append(_kv("x", IMG))
    child = spans.spans.add(name=SVG, kind=3, parent_span_id=bytes.fromhex("a1" * 8))
    child.trace_id, child.span_id = bytes.fromhex(TRACE_ID), bytes.fromhex("b2" * 8)
    child.start_time_unix_nano, child.end_time_unix_nano = now - 40_000_000, now - 20_000_000
    logs = ExportLogsServiceRequest()
    resource_logs = logs.resource_logs.add()
    resource_logs.resource.attributes.append(_kv("service.name", IMG))
    scope = resource_logs.scope_logs.add()
    scope.scope.name = SVG
    record = scope.log_records.add(time_unix_nano=now, severity_number=17, severity_text="ERROR")
    record.body.string_value = f"{MARKUP} payment failed"
    record.trace_id, record.span_id = bytes.fromhex(TRACE_ID), bytes.fromhex("a1" * 8)
    record.attributes.extend([_kv("html", IMG), _kv(SVG, "key planted")])
    line = scope.log_records.add(time_unix_nano=now + 1, severity_number=9)
    line.body.string_value = f'{{"event": "{SVG}", "logger": "{IMG}", "level": "warning"}}'
    for signal, message in (("traces", traces), ("logs", logs)):
        response = httpx.post(
            f"{stack.console}/v1/{signal}",
            content=message.SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
            timeout=10,
        )
        assert response.status_code == 200, response.content


def _plant_alert_and_notification(stack: PlantedStack, alertmanager: str) -> None:
    alert = {
        "labels": {"alertname": "PlantedMarkup", "severity": "warning", "service": "planted",
                   "note": MARKUP},
        "annotations": {"summary": IMG, "description": SVG, "runbook_url": LINK},
        "generatorURL": LINK,
    }  # fmt: skip
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10)
    assert response.status_code == 200, response.text
    webhook = {
        "version": "4",
        "status": "firing",
        "receiver": "hook",
        "groupLabels": {"alertname": "PlantedMarkup"},
        "commonLabels": {"alertname": "PlantedMarkup", "severity": "warning", "note": MARKUP},
        "commonAnnotations": {"summary": IMG},
        "alerts": [{"status": "firing", "labels": {"alertname": "PlantedMarkup", "note": SVG},
                    "annotations": {"summary": IMG}, "generatorURL": LINK}],
    }  # fmt: skip
    response = httpx.post(f"{stack.inbox}/webhook/hook", json=webhook, timeout=10)
    assert response.status_code == 200, response.text


def _alertmanager_url(stack: PlantedStack) -> str:
    for line in stack.up_log.read_text("utf-8").splitlines():
        if line.startswith("Alertmanager"):
            return line.split()[1]
    raise AssertionError("glassbox up printed no Alertmanager address")


def _planted_panel(stack: PlantedStack) -> tuple[str, int]:
    boards: Any = console_json(stack, "/api/dashboards")
    for board in boards["dashboards"]:
        detail: Any = console_json(stack, f"/api/dashboards/{board['uid']}")
        for row in detail["rows"]:
            for panel in row["panels"]:
                if panel["title"] == "Planted events":
                    return board["uid"], int(panel["id"])
    raise AssertionError("no dashboard panel shows the planted business metric")


@pytest.fixture(scope="module")
def seeded(planted: PlantedStack) -> PlantedStack:
    _plant_telemetry(planted)
    _plant_alert_and_notification(planted, _alertmanager_url(planted))
    uid, panel = _planted_panel(planted)

    def labelled() -> bool:
        data: Any = console_json(planted, f"/api/dashboards/{uid}/panels/{panel}?range=15m")
        return any(MARKUP in s["name"] for s in data["series"])

    wait_for(labelled, 60, "the planted label value in the dashboard panel")
    return planted


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield Page(context.new_page())
    finally:
        context.close()


def _shown(page: Page) -> str:
    return str(page.page.evaluate("() => document.body.innerText"))


def _assert_inert(page: Page, where: str) -> None:
    assert page.pwned() is None, where
    assert page.errors == [], (where, page.errors)
    scripts = page.page.evaluate(
        "() => [...document.scripts].map(s => s.src || s.textContent.slice(0, 80))"
    )
    assert all(s.startswith(page.page.url.split("/", 3)[0]) for s in scripts), (where, scripts)
    assert page.page.query_selector("img[src='x'], svg[onload]") is None, where


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/logs?since=all", (MARKUP, IMG, SVG)),
        ("/traces?since=all", (MARKUP, IMG)),
        (f"/traces/{TRACE_ID}", (MARKUP, SVG)),
        ("/inbox", (IMG,)),
        ("/alerts", (MARKUP,)),
        ("/", ()),
    ],
)
def test_planted_markup_is_shown_as_text_and_never_runs(
    seeded: PlantedStack, page: Page, path: str, expected: tuple[str, ...]
) -> None:
    page.open(seeded.console + path)
    if expected:
        page.page.wait_for_function(
            "(text) => document.body.innerText.includes(text)", arg=expected[0], timeout=20_000
        )
    shown = _shown(page)
    for payload in expected:
        assert payload in shown, (path, payload)
    _assert_inert(page, path)


def test_a_planted_metric_label_in_a_dashboard_legend_never_runs(
    seeded: PlantedStack, page: Page
) -> None:
    uid, panel = _planted_panel(seeded)
    page.open(f"{seeded.console}/dashboards/{uid}?range=15m")
    page.dashboard_ready()
    over = page.page.query_selector(f"section.panel[data-panel-id='{panel}'] .u-over")
    assert over is not None
    box = over.bounding_box()
    page.page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    legend = page.page.inner_text(f"section.panel[data-panel-id='{panel}'] .u-legend")
    assert MARKUP in legend, legend
    _assert_inert(page, f"/dashboards/{uid}")
