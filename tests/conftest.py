"""Shared fixtures: free loopback ports and processes stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.otlp import OTLPReceiver


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_log_app(port: int, **env: str) -> subprocess.Popen[bytes]:
    """tests/log_app.py under a real uvicorn on 127.0.0.1, its output piped, JSON logs."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.log_app:app", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "GLASSBOX_LOG_FORMAT": "json",
             **env},
    )  # fmt: skip


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM the process group, then SIGKILL if it does not go away."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started by a test; all stopped by PID at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        stop_process(proc)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.servers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_server() -> Iterator[object]:
    import shutil
    import tempfile
    from pathlib import Path

    from tests.servers import PostgresServer

    # not under pytest's 0700 tmp tree: the server runs as the postgres user
    workdir = Path(tempfile.mkdtemp(prefix="glassbox-pg-"))
    try:
        server = PostgresServer(workdir)
        server.start()
        wait_for(lambda: _pg_ready(server.dsn), 30, "postgres to accept queries")
        yield server
        server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _pg_ready(dsn: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=1) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """A real OTLP/HTTP receiver in the test process."""
    r = OTLPReceiver()
    yield r
    r.close()


@pytest.fixture
def provider(receiver: OTLPReceiver) -> Iterator[TracerProvider]:
    """An SDK provider exporting every span at once to ``receiver``."""
    p = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    p.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces"))
    )
    yield p
    p.shutdown()
