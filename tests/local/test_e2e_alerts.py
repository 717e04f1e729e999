"""The generated routing and inhibition in a real Alertmanager, delivering to the inbox.

Alerts are posted to Alertmanager's API exactly as Prometheus posts them (routing and
inhibition do not care who sent them), except in the last test, where Prometheus
itself raises the alert while Alertmanager is stopped.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from glassbox.local.stack import LocalPorts, LocalStack
from tests.conftest import wait_for
from tests.local.conftest import needs_stack

pytestmark = needs_stack

CONFIG = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "shop"
targets = ["127.0.0.1:{port}"]

[services.alerts]
window = "10s"
down_for = "2s"

[[receivers]]
name = "oncall"
kind = "pagerduty"
routing_key = {{ env = "UNSET_IN_TESTS_PD" }}

[[receivers]]
name = "team-slack"
kind = "slack"
api_url = {{ env = "UNSET_IN_TESTS_SLACK" }}

[[receivers]]
name = "team-email"
kind = "email"
to = "team@example.com"
from = "am@example.com"
smarthost = "smtp.example.com:587"

[routing]
default_receiver = "team-email"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "1s"
repeat_interval = "1h"

[[routing.routes]]
severity = "critical"
receivers = ["oncall", "team-slack"]

[[routing.routes]]
severity = "warning"
receivers = ["team-slack"]
"""


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    config = tmp_path / "glassbox.toml"
    config.write_text(CONFIG.format(port=9))  # nothing listens there: the service is down
    s = LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0))
    s.start(watch=False)
    yield s
    s.stop()


def post(stack: LocalStack, *alerts: dict[str, object]) -> None:
    now = datetime.now(UTC)
    body = [
        {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=5)).isoformat(), **a}
        for a in alerts
    ]
    response = httpx.post(f"{stack.alertmanager_url}/api/v2/alerts", json=body, timeout=5)
    assert response.status_code == 200, response.text


def alert(name: str, severity: str, **labels: str) -> dict[str, object]:
    return {
        "labels": {"alertname": name, "severity": severity, "service": "checkout", **labels},
        "annotations": {"summary": f"{name} summary", "description": "d", "runbook_url": "u"},
    }


def receivers_of(stack: LocalStack, name: str) -> set[str]:
    return {d.receiver for d in stack.inbox.deliveries() if name in d.alertnames}


def test_each_severity_reaches_exactly_its_receivers(stack: LocalStack) -> None:
    post(
        stack,
        alert("ProbeCritical", "critical"),
        alert("ProbeWarning", "warning"),
        alert("ProbeInfo", "info"),
    )
    expected = {
        "ProbeCritical": {"oncall", "team-slack"},
        "ProbeWarning": {"team-slack"},
        "ProbeInfo": {"team-email"},
    }
    wait_for(
        lambda: all(receivers_of(stack, n) == r for n, r in expected.items()),
        20,
        "each alert at its receivers",
    )
    kinds = {(d.receiver, d.kind) for d in stack.inbox.deliveries()}
    assert {("oncall", "pagerduty"), ("team-slack", "slack"), ("team-email", "email")} <= kinds
    email = next(d for d in stack.inbox.deliveries() if d.kind == "email")
    assert "ProbeInfo" in email.title


def test_a_service_that_is_down_mutes_its_error_and_latency_alerts(stack: LocalStack) -> None:
    post(
        stack,
        alert("ServiceDown", "critical"),
        alert("ServiceHighErrorRatio", "critical"),
        alert("ServiceLatencyP95High", "warning"),
        alert("ServiceHighErrorRatio", "critical", service="payments"),  # another service
    )
    wait_for(lambda: receivers_of(stack, "ServiceDown") == {"oncall", "team-slack"}, 20, "down")
    wait_for(
        lambda: any(
            "ServiceHighErrorRatio" in d.alertnames and "payments" in str(d.payload)
            for d in stack.inbox.deliveries()
        ),
        20,
        "the other service's alert",
    )
    inhibited = httpx.get(
        f"{stack.alertmanager_url}/api/v2/alerts", params={"inhibited": "true"}, timeout=5
    ).json()
    muted = {
        (a["labels"]["alertname"], a["labels"]["service"])
        for a in inhibited
        if a["status"]["inhibitedBy"]
    }
    assert muted == {("ServiceHighErrorRatio", "checkout"), ("ServiceLatencyP95High", "checkout")}
    checkout = [
        d
        for d in stack.inbox.deliveries()
        if "checkout" in str(d.payload) and d.alertnames != ("ServiceDown",)
    ]
    assert checkout == [], [(d.receiver, d.alertnames) for d in checkout]


def test_critical_mutes_the_warning_of_the_same_alert(stack: LocalStack) -> None:
    post(stack, alert("DiskFull", "critical"), alert("DiskFull", "warning"))
    wait_for(lambda: receivers_of(stack, "DiskFull") == {"oncall", "team-slack"}, 20, "critical")
    warnings = [d for d in stack.inbox.deliveries() if d.severity == "warning"]
    assert warnings == []


def test_notification_arrives_after_alertmanager_was_stopped(stack: LocalStack) -> None:
    """Prometheus raises ServiceDown while Alertmanager is frozen; it is delivered after."""
    assert stack.supervisor is not None
    pid = stack.supervisor.pid("alertmanager")
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:

        def firing_in_prometheus() -> bool:
            body = httpx.get(
                f"{stack.prometheus_url}/api/v1/query",
                params={"query": 'ALERTS{alertname="ServiceDown",alertstate="firing"}'},
                timeout=5,
            ).json()
            return bool(body["data"]["result"])

        wait_for(firing_in_prometheus, 30, "ServiceDown firing in Prometheus")
        assert receivers_of(stack, "ServiceDown") == set()
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(
        lambda: receivers_of(stack, "ServiceDown") == {"oncall", "team-slack"},
        30,
        "the notification after Alertmanager came back",
    )


CUSTOM_MESSAGES = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "shop"
targets = ["127.0.0.1:9"]

[[receivers]]
name = "team-slack"
kind = "slack"
api_url = { env = "UNSET_IN_TESTS_SLACK" }

[receivers.message]
title = "Shop needs you"
text = "{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}"

[[receivers]]
name = "team-email"
kind = "email"
to = "team@example.com"
from = "am@example.com"
smarthost = "smtp.example.com:587"

[receivers.message]
subject = "Shop needs you"

[routing]
default_receiver = "team-email"
group_wait = "1s"
group_interval = "1s"

[[routing.routes]]
severity = "warning"
receivers = ["team-slack", "team-email"]
"""


def test_the_inbox_knows_the_alerts_whatever_the_message_templates_say(
    tmp_path: Path,
) -> None:
    config = tmp_path / "glassbox.toml"
    config.write_text(CUSTOM_MESSAGES)
    with LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0)) as s:
        post(s, alert("ProbeWarning", "warning"))
        wait_for(
            lambda: receivers_of(s, "ProbeWarning") == {"team-slack", "team-email"},
            30,
            "the warning at Slack and email",
        )
        for delivery in s.inbox.deliveries():
            assert delivery.title == "Shop needs you"
            assert (delivery.status, delivery.severity) == ("firing", "warning")
