"""Planted secrets never show up where glassbox writes or shows things.

``glassbox up`` runs a config whose every secret (receivers' URLs, keys, passwords
and tokens, remote-write credentials, the service's metrics token) is an environment
variable holding a planted value; a service under uvicorn gets an Authorization header
and a session cookie, logs its request headers the careless way, and exports its logs
and traces to the console. The generated stack, the runtime files, every data file,
both processes' output and every console page and API answer are searched for the
planted values. Only the secret files ``glassbox up`` copies them to (mode 0600) may
hold them.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import wait_for
from tests.robustness.conftest import HEADER_SECRETS, SECRETS, PlantedStack, console_json

PLANTED = [*SECRETS.values(), HEADER_SECRETS["authorization"].split()[1],
           HEADER_SECRETS["cookie"].split("=", 1)[1]]  # fmt: skip


def _secret_files(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*") if p.is_file() and p.parent.name == "secrets"}


def _leaks(data: bytes) -> list[str]:
    return [value for value in PLANTED if value.encode() in data]


def test_the_generated_stack_and_runtime_files_hold_no_secret(planted: PlantedStack) -> None:
    monitoring = planted.directory / "monitoring"
    files = [p for p in monitoring.rglob("*") if p.is_file()]
    assert len(files) > 20
    runtime = planted.directory / ".glassbox" / "run"
    secret_files = _secret_files(runtime)
    files += [p for p in runtime.rglob("*") if p.is_file() and p not in secret_files]
    leaked = {str(p): _leaks(p.read_bytes()) for p in files}
    assert {k: v for k, v in leaked.items() if v} == {}


def test_secrets_live_only_in_private_files(planted: PlantedStack) -> None:
    secret_files = _secret_files(planted.directory / ".glassbox" / "run")
    held = {value for p in secret_files for value in _leaks(p.read_bytes())}
    # Prometheus needs its credentials; receivers deliver to the inbox, theirs stay unread
    assert held == {SECRETS[k] for k in ("PLANTED_METRICS_TOKEN", "PLANTED_RW_PASSWORD",
                                         "PLANTED_RW_BEARER")}  # fmt: skip
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


def _traffic(stack: PlantedStack) -> None:
    with httpx.Client(base_url=stack.app_url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/checkout", headers=HEADER_SECRETS).status_code == 200
        assert client.get("/metrics", headers=HEADER_SECRETS).status_code == 401
        token = {"authorization": f"Bearer {SECRETS['PLANTED_METRICS_TOKEN']}"}
        assert client.get("/metrics", headers=token).status_code == 200
        assert client.get("/health/detailed", headers=HEADER_SECRETS).status_code == 200
        # last: uvicorn closes the connection after an exception in the app
        assert client.get("/boom", headers={**HEADER_SECRETS, "x-user": "eve"}).status_code == 500


def _console_pages(stack: PlantedStack) -> dict[str, bytes]:
    pages = ["/", "/dashboards", "/alerts", "/inbox", "/logs", "/traces", "/api/overview",
             "/api/alerts", "/api/silences", "/api/dashboards", "/api/inbox", "/api/services",
             "/api/logs?since=all&limit=2000", "/api/traces?since=all&limit=1000"]  # fmt: skip
    dashboards: Any = console_json(stack, "/api/dashboards")
    pages += [f"/api/dashboards/{d['uid']}" for d in dashboards["dashboards"]]
    pages += [f"/dashboards/{d['uid']}" for d in dashboards["dashboards"]]
    traces: Any = console_json(stack, "/api/traces?since=all&limit=1000")
    pages += [f"/api/traces/{t['trace_id']}" for t in traces["traces"]]
    pages += [f"/traces/{t['trace_id']}" for t in traces["traces"]]
    out = {}
    with httpx.Client(base_url=stack.console, timeout=30) as client:
        for page in pages:
            response = client.get(page)
            assert response.status_code == 200, (page, response.text[:200])
            out[page] = response.content
    return out


def test_logs_data_and_console_hold_no_secret(planted: PlantedStack) -> None:
    _traffic(planted)

    def arrived() -> bool:
        logs: Any = console_json(planted, "/api/logs?since=all&service=planted&limit=2000")
        messages = [r["message"] for r in logs["logs"]]
        traces: Any = console_json(planted, "/api/traces?since=all&service=planted")
        return "checkout" in messages and len(traces["traces"]) >= 4

    wait_for(arrived, 60, "the service's logs and traces at the console")

    def scraped() -> bool:
        body = httpx.get(
            f"{planted.prometheus}/api/v1/query", params={"query": 'up{job="planted"}'}, timeout=5
        ).json()
        return [r["value"][1] for r in body["data"]["result"]] == ["1"]

    wait_for(scraped, 60, "Prometheus to scrape the service with its token")
    # the careless log line is there, with its secrets redacted
    app_output = planted.app_log.read_bytes()
    assert b'"event":"checkout"' in app_output or b'"event": "checkout"' in app_output
    assert b"[REDACTED]" in app_output
    found = {
        "app output": _leaks(app_output),
        "glassbox up output": _leaks(planted.up_log.read_bytes()),
    }
    for page, body in _console_pages(planted).items():
        found[f"console {page}"] = _leaks(body)
    data = planted.directory / ".glassbox" / "data"
    for path in data.rglob("*"):
        if path.is_file():
            found[str(path)] = _leaks(path.read_bytes())
    assert {k: v for k, v in found.items() if v} == {}


def test_redaction_reaches_every_nesting_level_and_list() -> None:
    from glassbox.logs import REDACTED, redact

    deep: dict[str, Any] = {"authorization": "Bearer x"}
    for _ in range(10):
        deep = {"level": deep}
    event = {
        "event": "request",
        "context": {"http": {"request": {"headers": {"Authorization": "Bearer x"}}}},
        "items": [{"password": "x"}, ({"api_key": "x"},)],
        "deep": deep,
        "raw": [(b"cookie", b"session=x"), (b"accept", b"*/*")],
    }
    out = redact(None, "info", event)
    assert out["context"]["http"]["request"]["headers"]["Authorization"] == REDACTED
    assert out["items"] == [{"password": REDACTED}, ({"api_key": REDACTED},)]
    assert out["raw"] == [(b"cookie", REDACTED), (b"accept", b"*/*")]
    assert "Bearer x" not in repr(out["deep"])
    bottomless: list[Any] = []
    bottomless.append(bottomless)  # a cycle: cut at the depth limit, no RecursionError
    assert "bottomless" in redact(None, "info", {"event": "x", "bottomless": bottomless})
