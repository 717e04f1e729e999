"""Nothing glassbox starts listens beyond 127.0.0.1 unless told to.

``glassbox up`` runs with its default hosts (ports picked by the OS): the CLI process
(inbox HTTP and SMTP, console with its OTLP receiver) and every child it supervises
(Prometheus, Alertmanager) are checked socket by socket. So is the separate metrics
port ``glassbox.instrument`` opens with ``metrics_port``.
"""

from __future__ import annotations

import os

import httpx
import psutil

import glassbox
from tests.conftest import free_port
from tests.robustness.conftest import PlantedStack


def _listening(process: psutil.Process) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in process.net_connections("inet")
        if c.status == psutil.CONN_LISTEN
    ]


def test_glassbox_up_and_its_children_listen_on_loopback_only(planted: PlantedStack) -> None:
    root = psutil.Process(planted.up.pid)
    processes = [root, *root.children(recursive=True)]
    names = {p.name() for p in processes}
    assert any("prometheus" in n for n in names), names
    assert any("alertmanager" in n for n in names), names
    sockets = {p.pid: _listening(p) for p in processes}
    # the CLI itself serves the inbox (HTTP, SMTP) and the console: three ports at least
    assert len(sockets[root.pid]) >= 3, sockets
    wide = {pid: [s for s in found if s[0] != "127.0.0.1"] for pid, found in sockets.items()}
    assert {pid: found for pid, found in wide.items() if found} == {}
    assert sum(len(found) for found in sockets.values()) >= 5


def test_the_metrics_port_listens_on_loopback_by_default() -> None:
    from starlette.applications import Starlette

    port = free_port()
    app = glassbox.instrument(
        Starlette(), service="own-port", registry=glassbox.Registry(), metrics_port=port
    )
    server = app.state.glassbox.metrics_server
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        mine = _listening(psutil.Process(os.getpid()))
        assert ("127.0.0.1", port) in mine
        assert ("0.0.0.0", port) not in mine
    finally:
        server.shutdown()
        server.server_close()
