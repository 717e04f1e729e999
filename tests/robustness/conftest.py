"""``glassbox up`` (the CLI, ports picked by the OS) with planted secrets, and a service
under uvicorn that exports its logs and traces to the console; shared by the secret,
binding and console-escaping tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, port_open, stop_process, wait_for
from tests.local.conftest import needs_stack

ROOT = Path(__file__).resolve().parents[2]
MARKUP = "<script>window.__pwned=1</script>"
#: Environment variables the config names for its secrets, with the planted values.
SECRETS = {
    "PLANTED_METRICS_TOKEN": "mt-9d1c4f0e-planted-metrics-token",
    "PLANTED_RW_PASSWORD": "rw-5a7e2b91-planted-remote-write-password",
    "PLANTED_RW_BEARER": "rw-0c3f8d24-planted-remote-write-bearer",
    "PLANTED_SLACK_URL": "https://hooks.slack.com/services/T0/B0/planted-7f3e2a19",
    "PLANTED_PD_KEY": "pd0planted0routing0key0c0ffee000",
    "PLANTED_SMTP_PASSWORD": "smtp-2b8e6d13-planted-password",
    "PLANTED_WEBHOOK_TOKEN": "wh-6e1a9c37-planted-webhook-token",
}
#: What a client sends: an Authorization header and a session cookie.
HEADER_SECRETS = {
    "authorization": "Bearer sk-live-3f9a7c21-planted-header",
    "cookie": "session=sess-8b2d5e70-planted-cookie",
}
CONFIG = """\
project = "planted"

[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[prometheus.remote_write]]
name = "central"
url = "http://127.0.0.1:9/api/v1/write"
basic_auth_username = "glassbox"
basic_auth_password = {{ env = "PLANTED_RW_PASSWORD" }}

[[prometheus.remote_write]]
name = "backup"
url = "http://127.0.0.1:9/push"
bearer_token = {{ env = "PLANTED_RW_BEARER" }}

[[services]]
name = "planted"
targets = ["127.0.0.1:{app_port}"]
metrics_token = {{ env = "PLANTED_METRICS_TOKEN" }}

[services.alerts]
window = "1m"
error_for = "2s"
down_for = "2s"
instance_down_for = "2s"
absent_for = "2s"
saturation_for = "2s"
memory_for = "2s"
dependency_for = "2s"
degraded_for = "2s"

[[services.alerts.latency]]
quantile = 0.95
threshold = 0.5
for = "2s"

[[services.business_metrics]]
name = "planted_events_total"
kind = "counter"
title = "Planted events"
by = ["note"]

[[receivers]]
name = "chat"
kind = "slack"
api_url = {{ env = "PLANTED_SLACK_URL" }}
channel = "#alerts"

[[receivers]]
name = "pager"
kind = "pagerduty"
routing_key = {{ env = "PLANTED_PD_KEY" }}

[[receivers]]
name = "mail"
kind = "email"
to = "ops@example.com"
from = "glassbox@example.com"
smarthost = "127.0.0.1:25"
auth_username = "glassbox"
auth_password = {{ env = "PLANTED_SMTP_PASSWORD" }}

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
bearer_token = {{ env = "PLANTED_WEBHOOK_TOKEN" }}
"""


@dataclass
class PlantedStack:
    """``glassbox up`` and the planted service, both running."""

    directory: Path
    up: subprocess.Popen[bytes]
    app: subprocess.Popen[bytes]
    up_log: Path
    app_log: Path
    console: str
    prometheus: str
    inbox: str
    app_url: str


def _urls(text: str) -> dict[str, str]:
    found = dict(re.findall(r"^(Prometheus|Alertmanager|inbox|console)\s+(http://\S+)", text, re.M))
    return {k: v.removesuffix("/api/deliveries") for k, v in found.items()}


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlantedStack]:
    """The CLI with default hosts and OS-picked ports, secrets in its environment."""
    if needs_stack.args and needs_stack.args[0]:
        pytest.skip(needs_stack.kwargs["reason"])
    directory = tmp_path_factory.mktemp("planted")
    app_port = free_port()
    (directory / "glassbox.toml").write_text(CONFIG.format(app_port=app_port), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "GLASSBOX_LOG_FORMAT": "json",
        **SECRETS,
    }
    up_log = directory / "up.log"
    ports = ["--prometheus-port", "0", "--alertmanager-port", "0", "--inbox-port", "0",
             "--smtp-port", "0", "--console-port", "0"]  # fmt: skip
    with up_log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "glassbox", "up", "-c", str(directory / "glassbox.toml"),
             *ports],
            cwd=directory, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )  # fmt: skip
    app_log = directory / "app.log"
    app: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: "console" in _urls(up_log.read_text("utf-8", "replace")), 60,
                 "glassbox up to print its addresses")  # fmt: skip
        urls = _urls(up_log.read_text("utf-8"))
        app_env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": env["PYTHONPATH"],
            "GLASSBOX_LOG_FORMAT": "json",
            "GLASSBOX_METRICS_TOKEN": SECRETS["PLANTED_METRICS_TOKEN"],
            "OTEL_EXPORTER_OTLP_ENDPOINT": urls["console"],
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "PLANTED_MARKUP": MARKUP,
        }
        with app_log.open("wb") as out:
            app = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "tests.robustness.planted_app:app",
                 "--host", "127.0.0.1", "--port", str(app_port)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env=app_env,
            )  # fmt: skip
        wait_for(lambda: port_open(app_port), 30, "the planted service to listen")
        yield PlantedStack(
            directory=directory,
            up=up,
            app=app,
            up_log=up_log,
            app_log=app_log,
            console=urls["console"],
            prometheus=urls["Prometheus"],
            inbox=urls["inbox"],
            app_url=f"http://127.0.0.1:{app_port}",
        )
    finally:
        if app is not None:
            stop_process(app)
        stop_process(up, timeout=30)


def console_json(stack: PlantedStack, path: str) -> object:
    response = httpx.get(f"{stack.console}{path}", timeout=30)
    assert response.status_code == 200, (path, response.text[:300])
    return response.json()
