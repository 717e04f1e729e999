"""The local inbox: real-service answers, SMTP, persistence, and a real Alertmanager."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import yaml

from glassbox.local.inbox import MAX_BODY_BYTES, Delivery, Inbox, inbox_receiver_urls
from glassbox.stack.components import collect
from glassbox.stack.config import parse_config
from glassbox.stack.render.alertmanager import TEMPLATE, InboxTarget, alertmanager_yml
from tests.conftest import free_port, stop_process, wait_for

ROUTING_KEY = "0123456789abcdef0123456789abcdef"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    with Inbox(tmp_path / "inbox.sqlite") as running:
        yield running


@pytest.fixture
def client(inbox: Inbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=inbox.http_url, timeout=10) as http:
        yield http


def webhook_body(status: str = "firing") -> dict[str, object]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "hooks",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate", "severity": "critical"},
        "commonAnnotations": {"summary": "5% of checkout requests fail"},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "HighErrorRate", "severity": "critical"},
                "annotations": {"summary": "5% of checkout requests fail"},
                "startsAt": "2024-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "c0ffee",
            }
        ],
    }


def pd_event(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "group-1",
        "payload": {
            "summary": "[FIRING:1] HighErrorRate (checkout)",
            "source": "alertmanager",
            "severity": "critical",
            "custom_details": {"firing": "Labels:\n - alertname = HighErrorRate\n"},
        },
    }
    event.update(changes)
    return event


# -- (1) the HTTP endpoints answer like the real services -------------------------------


def test_health(client: httpx.Client) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_slack_accepts_alertmanager_message(client: httpx.Client, inbox: Inbox) -> None:
    message = {
        "channel": "#ops",
        "username": "Alertmanager",
        "attachments": [
            {
                "title": "[FIRING:1] HighErrorRate (checkout)",
                "text": "FIRING [critical] 5% of checkout requests fail\n",
                "fallback": "[FIRING:1] HighErrorRate",
                "color": "danger",
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }
        ],
    }
    response = client.post("/slack/team-chat", json=message)
    assert (response.status_code, response.text) == (200, "ok")
    (delivery,) = inbox.deliveries()
    assert delivery.receiver == "team-chat"
    assert delivery.kind == "slack"
    assert delivery.status == "firing"
    assert delivery.alertnames == ("HighErrorRate",)
    assert delivery.severity == "critical"
    assert delivery.title == "[FIRING:1] HighErrorRate (checkout)"
    assert delivery.payload == message


def test_slack_form_payload_and_resolved_colour(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post(
        "/slack/chat",
        data={"payload": '{"attachments": [{"text": "all good", "color": "good"}]}'},
    )
    assert (response.status_code, response.text) == (200, "ok")
    assert inbox.deliveries()[0].status == "resolved"


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (b"{not json", "invalid_payload"),
        (b"", "invalid_payload"),
        (b"[1, 2]", "invalid_payload"),
        (b"\xff\xfe", "invalid_payload"),
        (b'{"attachments": "nope"}', "invalid_payload"),
        (b"{}", "no_text"),
        (b'{"text": "   "}', "no_text"),
        (b'{"attachments": [{"title": "x"}]}', "missing_text_or_fallback_or_attachments"),
        (
            b'{"attachments": [' + b",".join([b'{"text": "a"}'] * 101) + b"]}",
            "too_many_attachments",
        ),
    ],
)
def test_slack_rejects_like_slack(
    client: httpx.Client, inbox: Inbox, body: bytes, answer: str
) -> None:
    response = client.post(
        "/slack/chat", content=body, headers={"content-type": "application/json"}
    )
    assert (response.status_code, response.text) == (400, answer)
    assert inbox.deliveries() == []


def test_pagerduty_accepts_trigger_and_resolve(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post("/pagerduty/oncall/v2/enqueue", json=pd_event())
    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "group-1",
    }
    resolve = pd_event(event_action="resolve")
    response = client.post("/pagerduty/oncall/v2/enqueue", json=resolve)
    assert response.status_code == 202
    resolved, firing = inbox.deliveries(receiver="oncall", kind="pagerduty")
    assert (firing.status, resolved.status) == ("firing", "resolved")
    assert firing.alertnames == ("HighErrorRate",)
    assert firing.severity == "critical"
    assert firing.title == "[FIRING:1] HighErrorRate (checkout)"


def test_pagerduty_generates_a_dedup_key(client: httpx.Client) -> None:
    event = pd_event()
    del event["dedup_key"]
    response = client.post("/pagerduty/oncall/v2/enqueue", json=event)
    assert response.status_code == 202
    assert len(response.json()["dedup_key"]) == 32


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"routing_key": "short"},
            "Length of 'routing_key' is incorrect (should be 32 characters)",
        ),
        ({"routing_key": ""}, "'routing_key' is missing or blank"),
        (
            {"event_action": "explode"},
            "'event_action' is invalid (must be one of the following: 'trigger',"
            " 'acknowledge' or 'resolve')",
        ),
        ({"event_action": "resolve", "dedup_key": None}, "'dedup_key' is missing or blank"),
        (
            {"dedup_key": "k" * 256},
            "Length of 'dedup_key' is too long (maximum is 255 characters)",
        ),
        ({"payload": None}, "'payload' is missing or blank"),
        (
            {"payload": {"source": "am", "severity": "critical"}},
            "'payload.summary' is missing or blank",
        ),
        (
            {"payload": {"summary": "s" * 1025, "source": "am", "severity": "critical"}},
            "Length of 'payload.summary' is too long (maximum is 1024 characters)",
        ),
        (
            {"payload": {"summary": "s", "severity": "critical"}},
            "'payload.source' is missing or blank",
        ),
        (
            {"payload": {"summary": "s", "source": "am", "severity": ""}},
            "'payload.severity' is missing or blank",
        ),
        (
            {"payload": {"summary": "s", "source": "am", "severity": "page"}},
            "'payload.severity' is invalid (must be one of the following: 'critical',"
            " 'warning', 'error' or 'info')",
        ),
    ],
)
def test_pagerduty_rejects_like_pagerduty(
    client: httpx.Client, inbox: Inbox, changes: dict[str, object], error: str
) -> None:
    response = client.post("/pagerduty/oncall/v2/enqueue", json=pd_event(**changes))
    assert response.status_code == 400
    assert response.json() == {
        "status": "invalid event",
        "message": "Event object is invalid",
        "errors": [error],
    }
    assert inbox.deliveries() == []


def test_pagerduty_rejects_bad_json(client: httpx.Client) -> None:
    response = client.post("/pagerduty/oncall/v2/enqueue", content=b"{")
    assert response.status_code == 400
    assert response.json()["status"] == "invalid event"


GENIE = {"Authorization": "GenieKey any-key"}


def og_alert(**changes: object) -> dict[str, object]:
    """An Opsgenie create-alert request as Alertmanager sends it."""
    alert: dict[str, object] = {
        "alias": "6b86b273ff34fce19d6b804eff5a3f57",
        "message": "[FIRING:1] HighErrorRate (checkout)",
        "description": "5% of checkout requests fail",
        "details": {"alertname": "HighErrorRate", "severity": "critical"},
        "source": "glassbox",
        "tags": [],
        "priority": "P1",
    }
    alert.update(changes)
    return alert


def test_opsgenie_accepts_create_and_close(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post("/opsgenie/genie/v2/alerts", json=og_alert(), headers=GENIE)
    assert response.status_code == 202
    answer = response.json()
    assert answer["result"] == "Request will be processed"
    assert isinstance(answer["took"], float)
    assert len(answer["requestId"]) == 36
    response = client.post(
        "/opsgenie/genie/v2/alerts/6b86b273ff34fce19d6b804eff5a3f57/close",
        params={"identifierType": "alias"},
        json={"source": "glassbox"},
        headers=GENIE,
    )
    assert response.status_code == 202
    closed, created = inbox.deliveries(receiver="genie", kind="opsgenie")
    assert (created.status, created.alertnames, created.severity) == (
        "firing",
        ("HighErrorRate",),
        "critical",
    )
    assert created.title == "[FIRING:1] HighErrorRate (checkout)"
    assert created.payload == og_alert()
    assert closed.status == "resolved"
    assert closed.payload == {
        "action": "close",
        "identifier": "6b86b273ff34fce19d6b804eff5a3f57",
        "identifierType": "alias",
        "body": {"source": "glassbox"},
    }


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"message": ""}, {"message": "Message can not be empty."}),
        ({"message": "m" * 131}, {"message": "Message can not be longer than 130 characters."}),
        ({"alias": "a" * 513}, {"alias": "Alias can not be longer than 512 characters."}),
        (
            {"description": "d" * 15001},
            {"description": "Description can not be longer than 15000 characters."},
        ),
        ({"priority": "P0"}, {"priority": "Priority should be one of [P1, P2, P3, P4, P5]."}),
        ({"tags": "a,b"}, {"tags": "tags must be a list."}),
    ],
)
def test_opsgenie_rejects_like_opsgenie(
    client: httpx.Client, inbox: Inbox, changes: dict[str, object], errors: dict[str, str]
) -> None:
    response = client.post("/opsgenie/genie/v2/alerts", json=og_alert(**changes), headers=GENIE)
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "Request body is not processable. Please check the errors."
    assert body["errors"] == errors
    assert inbox.deliveries() == []


def test_opsgenie_needs_a_genie_key_and_a_known_identifier_type(
    client: httpx.Client, inbox: Inbox
) -> None:
    for headers in ({}, {"Authorization": "Bearer x"}, {"Authorization": "GenieKey"}):
        response = client.post("/opsgenie/genie/v2/alerts", json=og_alert(), headers=headers)
        assert response.status_code == 401
        assert response.json()["message"] == "Could not authenticate"
    response = client.post(
        "/opsgenie/genie/v2/alerts/x/close", params={"identifierType": "name"}, headers=GENIE
    )
    assert response.status_code == 422
    assert client.post("/opsgenie/genie/v2/alerts", content=b"{", headers=GENIE).status_code == 400
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert client.post("/opsgenie/x/v2/alerts", content=big, headers=GENIE).status_code == 413
    assert inbox.deliveries() == []


def test_webhook(client: httpx.Client, inbox: Inbox) -> None:
    response = client.post("/webhook/hooks", json=webhook_body())
    assert response.status_code == 200
    (delivery,) = inbox.deliveries(receiver="hooks")
    assert delivery.kind == "webhook"
    assert delivery.status == "firing"
    assert delivery.alertnames == ("HighErrorRate",)
    assert delivery.severity == "critical"
    assert delivery.title == "5% of checkout requests fail"
    for body in (b"nope", b'"a string"', b"null"):
        assert client.post("/webhook/hooks", content=body).status_code == 400
    assert len(inbox.deliveries()) == 1


def test_body_cap_and_unknown_routes(client: httpx.Client, inbox: Inbox) -> None:
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    for path in ("/slack/x", "/pagerduty/x/v2/enqueue", "/webhook/x"):
        assert client.post(path, content=big).status_code == 413
    assert client.get("/slack/x").status_code == 405
    assert client.post("/nowhere").status_code == 404
    assert client.post("/slack/" + "r" * 300, json={"text": "x"}).status_code == 404
    assert inbox.deliveries() == []
    # still serving after all that
    assert client.get("/api/health").status_code == 200


def test_storage_failure_is_answered_not_raised(
    client: httpx.Client, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from glassbox.local import inbox as module

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(module._Store, "add", broken)
    slack = client.post("/slack/chat", json={"text": "hi"})
    assert (slack.status_code, slack.text) == (500, "rollup_error")
    assert client.post("/pagerduty/oncall/v2/enqueue", json=pd_event()).status_code == 500
    assert client.post("/webhook/hooks", json=webhook_body()).status_code == 500
    with smtplib.SMTP(*inbox.smtp_address, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail("a@example.org", ["mail@inbox"], b"Subject: x\r\n\r\nx\r\n")
        assert refused.value.smtp_code == 451
    monkeypatch.undo()
    assert client.post("/webhook/hooks", json=webhook_body()).status_code == 200


def test_read_api_filters_newest_first(client: httpx.Client) -> None:
    client.post("/webhook/a", json=webhook_body())
    client.post("/webhook/b", json=webhook_body("resolved"))
    client.post("/slack/a", json={"text": "[RESOLVED] HighErrorRate"})
    everything = client.get("/api/deliveries").json()
    assert [d["id"] for d in everything] == sorted((d["id"] for d in everything), reverse=True)
    assert [(d["receiver"], d["kind"], d["status"]) for d in everything] == [
        ("a", "slack", "resolved"),
        ("b", "webhook", "resolved"),
        ("a", "webhook", "firing"),
    ]
    assert {d["kind"] for d in client.get("/api/deliveries?receiver=a").json()} == {
        "slack",
        "webhook",
    }
    only = client.get("/api/deliveries", params={"receiver": "a", "kind": "webhook"}).json()
    assert len(only) == 1
    assert only[0]["payload"] == webhook_body()
    assert set(only[0]) == {
        "id", "time", "receiver", "kind", "status", "alertnames", "severity", "title", "payload",
    }  # fmt: skip
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert client.get("/api/deliveries", params={"since": future}).json() == []
    assert len(client.get("/api/deliveries", params={"since": "0"}).json()) == 3
    assert len(client.get("/api/deliveries", params={"limit": "2"}).json()) == 2
    for bad in ({"kind": "fax"}, {"since": "yesterday"}, {"limit": "0"}):
        assert client.get("/api/deliveries", params=bad).status_code == 400


def test_receiver_urls() -> None:
    base = "http://127.0.0.1:9095/"
    assert inbox_receiver_urls(base, "chat", "slack") == {
        "api_url": "http://127.0.0.1:9095/slack/chat"
    }
    assert inbox_receiver_urls(base, "oncall", "pagerduty") == {
        "url": "http://127.0.0.1:9095/pagerduty/oncall/v2/enqueue"
    }
    assert inbox_receiver_urls(base, "hooks", "webhook") == {
        "url": "http://127.0.0.1:9095/webhook/hooks"
    }
    assert inbox_receiver_urls(base, "genie", "opsgenie") == {
        "api_url": "http://127.0.0.1:9095/opsgenie/genie/"
    }
    assert inbox_receiver_urls(base, "mail", "email", ("127.0.0.1", 2525)) == {
        "smarthost": "127.0.0.1:2525"
    }
    with pytest.raises(ValueError, match="smtp_address"):
        inbox_receiver_urls(base, "mail", "email")
    with pytest.raises(ValueError, match="unknown receiver kind"):
        inbox_receiver_urls(base, "x", "fax")


# -- (2) SMTP -----------------------------------------------------------------------------


def test_smtp_records_email(inbox: Inbox) -> None:
    message = EmailMessage()
    message["From"] = "alertmanager@example.org"
    message["To"] = "oncall@example.org"
    message["Subject"] = "[FIRING:2] DiskFull (db)"
    message["X-Glassbox-Receiver"] = "mail"
    message.set_content("FIRING [warning] disk 95% full\n")
    message.add_alternative("<p>disk 95% full</p>", subtype="html")
    with smtplib.SMTP(*inbox.smtp_address, timeout=10) as smtp:
        smtp.send_message(message)
    (delivery,) = inbox.deliveries(kind="email")
    assert delivery.receiver == "mail"
    assert delivery.status == "firing"
    assert delivery.alertnames == ("DiskFull",)
    assert delivery.severity == "warning"
    assert delivery.title == "[FIRING:2] DiskFull (db)"
    assert delivery.payload["from"] == "alertmanager@example.org"
    assert delivery.payload["to"] == "oncall@example.org"
    assert delivery.payload["rcpt_tos"] == ["oncall@example.org"]
    assert delivery.payload["text"] == "FIRING [warning] disk 95% full\n"
    assert "disk 95% full" in delivery.payload["html"]


def test_smtp_receiver_from_recipient_without_header(inbox: Inbox) -> None:
    with smtplib.SMTP(*inbox.smtp_address, timeout=10) as smtp:
        smtp.sendmail(
            "am@example.org",
            ["ops-mail@inbox.local"],
            b"Subject: [RESOLVED] DiskFull\r\n\r\nRESOLVED [warning] fine again\r\n",
        )
        # nonsense is answered, not crashed on; the server keeps serving
        code, _ = smtp.docmd("FROBNICATE")
        assert code == 500
    (delivery,) = inbox.deliveries()
    assert (delivery.receiver, delivery.status) == ("ops-mail", "resolved")


def test_smtp_rejects_oversized_mail(inbox: Inbox) -> None:
    with (
        smtplib.SMTP(*inbox.smtp_address, timeout=10) as smtp,
        pytest.raises(smtplib.SMTPException),
    ):
        smtp.sendmail("a@example.org", ["b@example.org"], b"x" * (MAX_BODY_BYTES + 10))
    assert inbox.deliveries() == []


# -- (3) persistence and retention ------------------------------------------------------


def test_deliveries_survive_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "inbox.sqlite"
    with Inbox(store) as first:
        httpx.post(f"{first.http_url}/webhook/hooks", json=webhook_body(), timeout=10)
        with smtplib.SMTP(*first.smtp_address, timeout=10) as smtp:
            smtp.sendmail("a@example.org", ["mail@inbox"], b"Subject: [FIRING:1] X\r\n\r\nx\r\n")
        before = first.deliveries()
    assert len(before) == 2
    with Inbox(store) as second:
        assert second.deliveries() == before
        answer = httpx.get(f"{second.http_url}/api/deliveries", timeout=10).json()
        assert [d["id"] for d in answer] == [d.id for d in before]
        httpx.post(f"{second.http_url}/webhook/hooks", json=webhook_body(), timeout=10)
        assert second.deliveries()[0].id > before[0].id
    # readable without serving, too
    reader = Inbox(store)
    try:
        assert len(reader.deliveries()) == 3
    finally:
        reader.close()


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    with Inbox(tmp_path / "inbox.sqlite", keep=5) as inbox:
        with httpx.Client(base_url=inbox.http_url, timeout=10) as http:
            for i in range(8):
                http.post(f"/webhook/r{i}", json=webhook_body())
        assert [d.receiver for d in inbox.deliveries()] == [f"r{i}" for i in range(7, 2, -1)]


def test_wait_for_has_a_deadline(inbox: Inbox) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="nothing"):
        inbox.wait_for(lambda d: True, timeout=0.2)
    assert time.monotonic() - started < 2


def test_ports_and_double_start(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "a.sqlite")
    with inbox:
        assert inbox.http_url.startswith("http://127.0.0.1:")
        assert inbox.smtp_address[0] == "127.0.0.1"
        with pytest.raises(RuntimeError, match="already running"):
            inbox.start()
        taken = int(inbox.http_url.rsplit(":", 1)[1])
        with pytest.raises(OSError, match="cannot listen for HTTP"):
            Inbox(tmp_path / "b.sqlite", http_port=taken).start()
    inbox.stop()  # idempotent


# -- (4) end to end with a real Alertmanager --------------------------------------------


def glassbox_opsgenie_receiver(inbox: Inbox) -> dict[str, object]:
    """The Opsgenie receiver exactly as glassbox renders it for the inbox."""
    config = parse_config(
        {
            "services": [{"name": "checkout", "targets": ["127.0.0.1:8000"]}],
            "receivers": [{"name": "genie", "kind": "opsgenie", "api_key": {"env": "OG_KEY"}}],
        }
    )
    host, port = inbox.smtp_address
    target = InboxTarget(inbox.http_url, host, port)
    rendered = yaml.safe_load(alertmanager_yml(config, collect(config), inbox=target))
    receiver: dict[str, object] = rendered["receivers"][0]
    return receiver


def alertmanager_config(inbox: Inbox, templates: Path) -> dict[str, object]:
    host, port = inbox.smtp_address
    return {
        "templates": [str(templates / "*.tmpl")],
        "route": {
            "receiver": "chat",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {"receiver": name, "matchers": ['alertname="InboxCheck"'], "continue": True}
                for name in ("chat", "oncall", "mail", "hooks", "genie")
            ],
        },
        "receivers": [
            {
                "name": "chat",
                "slack_configs": [
                    {
                        **inbox_receiver_urls(inbox.http_url, "chat", "slack"),
                        "channel": "#ops",
                        "send_resolved": True,
                    }
                ],
            },
            {
                "name": "oncall",
                "pagerduty_configs": [
                    {
                        **inbox_receiver_urls(inbox.http_url, "oncall", "pagerduty"),
                        "routing_key": ROUTING_KEY,
                        "severity": "{{ .CommonLabels.severity }}",
                        "send_resolved": True,
                    }
                ],
            },
            {
                "name": "mail",
                "email_configs": [
                    {
                        **inbox_receiver_urls(inbox.http_url, "mail", "email", (host, port)),
                        "to": "oncall@example.org",
                        "from": "alertmanager@example.org",
                        "require_tls": False,
                        "send_resolved": True,
                        "headers": {"X-Glassbox-Receiver": "mail"},
                        "text": "{{ range .Alerts }}{{ .Status | toUpper }}"
                        " [{{ .Labels.severity }}] {{ .Annotations.summary }}\n{{ end }}",
                    }
                ],
            },
            {
                "name": "hooks",
                "webhook_configs": [
                    {
                        **inbox_receiver_urls(inbox.http_url, "hooks", "webhook"),
                        "send_resolved": True,
                    }
                ],
            },
            glassbox_opsgenie_receiver(inbox),
        ],
    }


@pytest.fixture
def alertmanager(
    tmp_path: Path, inbox: Inbox, processes: list[subprocess.Popen[bytes]]
) -> Iterator[str]:
    if not Path(ALERTMANAGER).exists():
        pytest.skip(f"{ALERTMANAGER} is not installed (Debian: prometheus-alertmanager)")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "glassbox.tmpl").write_text(TEMPLATE, encoding="utf-8")
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(inbox, templates)), encoding="utf-8")
    if shutil.which("amtool"):
        check = subprocess.run(
            ["amtool", "check-config", str(config)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    processes.append(proc)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 30, "Alertmanager to be ready")
        yield url
    finally:
        stop_process(proc)
        log.close()


def delivered(receiver: str, kind: str, status: str) -> Callable[[Delivery], bool]:
    return lambda d: (d.receiver, d.kind, d.status) == (receiver, kind, status)


@pytest.mark.slow
def test_alertmanager_delivers_to_every_receiver(
    alertmanager: str, inbox: Inbox, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "InboxCheck", "severity": "critical", "service": "checkout"},
        "annotations": {"summary": "checkout is failing", "description": "5% errors"},
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    kinds = {
        "chat": "slack",
        "oncall": "pagerduty",
        "mail": "email",
        "hooks": "webhook",
        "genie": "opsgenie",
    }

    def arrived(status: str) -> dict[str, Delivery]:
        got: dict[str, Delivery] = {}
        for receiver, kind in kinds.items():
            try:
                got[receiver] = inbox.wait_for(delivered(receiver, kind, status), timeout=30)
            except TimeoutError as exc:
                am_log = (tmp_path / "alertmanager.log").read_text()
                raise AssertionError(f"{receiver}: {exc}\n{am_log[-4000:]}") from None
        return got

    with httpx.Client(base_url=alertmanager, timeout=10) as http:
        assert http.post("/api/v2/alerts", json=[alert]).status_code == 200
        firing = arrived("firing")
        for delivery in firing.values():
            assert "InboxCheck" in delivery.alertnames, delivery
        assert firing["oncall"].severity == "critical"
        assert firing["oncall"].payload["routing_key"] == ROUTING_KEY
        assert firing["mail"].payload["text"].startswith("FIRING [critical] checkout is failing")
        assert firing["hooks"].payload["version"] == "4"
        assert firing["hooks"].severity == "critical"
        genie = firing["genie"].payload
        assert genie["message"] == "[FIRING:1] InboxCheck (checkout)"
        assert genie["description"].startswith("FIRING [critical] checkout is failing")
        assert (genie["priority"], genie["source"]) == ("P1", "glassbox")
        assert firing["genie"].severity == "critical"

        resolved_alert = {**alert, "endsAt": (now - timedelta(seconds=1)).isoformat()}
        assert http.post("/api/v2/alerts", json=[resolved_alert]).status_code == 200
        resolved = arrived("resolved")
    assert resolved["oncall"].payload["event_action"] == "resolve"
    assert resolved["oncall"].payload["dedup_key"] == firing["oncall"].payload["dedup_key"]
    assert resolved["hooks"].payload["alerts"][0]["status"] == "resolved"
    assert resolved["mail"].title.startswith("[RESOLVED]")
    assert resolved["genie"].payload["identifier"] == genie["alias"]
    assert resolved["genie"].payload["identifierType"] == "alias"
