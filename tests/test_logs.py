"""Logs: every line JSON with trace and request ids; secrets and forgeries kept out."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import free_port, port_open, start_log_app, stop_process, wait_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.slow
def test_uvicorn_service_prints_only_json_with_matching_trace_ids() -> None:
    port = free_port()
    proc = start_log_app(port)
    try:
        wait_for(lambda: port_open(port), 30, "uvicorn to listen")
        base = f"http://127.0.0.1:{port}"
        forged = 'eve\n{"level":"critical","event":"forged"}'
        ok = httpx.get(
            f"{base}/login",
            params={"user": forged},
            headers={
                "traceparent": TRACEPARENT,
                "authorization": "Bearer sk-planted-secret",
                "cookie": "session=planted-cookie",
                "x-request-id": "req-123",
            },
        )
        assert ok.status_code == 200
        assert ok.headers["x-request-id"] == "req-123"
        assert ok.headers["traceresponse"].split("-")[1] == TRACE
        bad_id = httpx.get(f"{base}/login", headers={"x-request-id": "x" * 500})
        generated = bad_id.headers["x-request-id"]
        assert generated != "x" * 500
        assert 1 <= len(generated) <= 128
        failing_trace = "0af7651916cd43dd8448eb211c80319c"
        boom = httpx.get(
            f"{base}/boom", headers={"traceparent": f"00-{failing_trace}-b7ad6b7169203331-01"}
        )
        assert boom.status_code == 500
    finally:
        stop_process(proc)
    out = proc.stdout.read().decode() if proc.stdout else ""
    lines = [line for line in out.splitlines() if line.strip()]
    records = []
    for line in lines:
        records.append(json.loads(line))  # every single line is JSON
    assert "planted" not in out  # no secret from headers or log calls
    assert not any(r.get("event") == "forged" for r in records)

    access = [r for r in records if r.get("logger") == "glassbox.access"]
    first = access[0]
    assert first["trace_id"] == TRACE
    assert first["request_id"] == "req-123"
    assert first["route"] == "/login"
    assert first["status"] == 200
    assert first["method"] == "GET"
    assert first["duration_ms"] >= 0
    assert first["service"] == "shop"
    assert first["version"] == "9.9.9"
    assert first["env"] == "test"
    assert first["timestamp"].endswith("Z")
    assert first["level"] == "info"
    assert len(access) == 3  # one line per request, uvicorn's own access log is off

    login = next(r for r in records if r.get("event") == "login attempt")
    assert login["trace_id"] == TRACE
    assert login["password"] == "[REDACTED]"
    assert login["api_key"] == "[REDACTED]"
    assert login["user"].startswith("eve\n")  # kept as data, escaped in the JSON line
    stdlib = next(r for r in records if r.get("logger") == "shop.stdlib")
    assert stdlib["trace_id"] == TRACE
    assert stdlib["level"] == "warning"

    # the error handler outside the middleware logs with the failing request's ids
    errors = [
        r for r in records if r.get("level") == "error" and r.get("logger") != "glassbox.access"
    ]
    assert errors, records
    assert all(r.get("trace_id") == failing_trace for r in errors)
    assert any("database exploded" in json.dumps(r) for r in errors)


def test_redaction_and_console_sanitising() -> None:
    from glassbox.logs import REDACTED, _sanitize_console, redact

    event = {
        "event": "call",
        "Authorization": "Bearer x",
        "headers": [(b"cookie", b"a=b"), (b"accept", b"*/*")],
        "nested": {"db_password": "p", "host": "h", "deeper": {"token": "t"}},
        "user": "ok",
    }
    out = redact(None, "info", dict(event))
    assert out["Authorization"] == REDACTED
    assert out["headers"] == [(b"cookie", REDACTED), (b"accept", b"*/*")]
    assert out["nested"] == {"db_password": REDACTED, "host": "h", "deeper": {"token": REDACTED}}
    assert out["user"] == "ok"
    shown = _sanitize_console(None, "info", {"event": "line1\nline2\x1b[31m"})
    assert shown["event"] == "line1\\x0aline2\\x1b[31m"


def test_access_log_sampling_keeps_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from glassbox.logs import AccessLog, configure_logging

    configure_logging(service="s", version="v", env="e", fmt="json")
    log = AccessLog(sample=0.0)
    for status in (200, 201, 302, 404, 500):
        log.write(method="GET", route="/r", path="/r", status=status, duration=0.001)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in lines] == [404, 500]
    with pytest.raises(ValueError, match="sample"):
        AccessLog(sample=2)
