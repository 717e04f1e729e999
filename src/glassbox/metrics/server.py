"""``/metrics`` on a port of its own, served from a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from glassbox._auth import Protection
from glassbox.metrics.exposition import Render, build_response

__all__ = ["MetricsServer", "start_metrics_server"]


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, host: str, port: int, render: Render, path: str, protection: Protection
    ) -> None:
        self.render = render
        self.path = path
        self.protection = protection
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        target = self.path.split("?", 1)[0]
        if target.rstrip("/") != self.server.path.rstrip("/"):
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        status, headers, body = build_response(
            self.server.render,
            method=self.command,
            accept=self.headers.get("accept"),
            accept_encoding=self.headers.get("accept-encoding"),
            authorization=self.headers.get("authorization"),
            protection=self.server.protection,
        )
        self.send_response(status)
        for key, value in headers:
            self.send_header(key.decode(), value.decode())
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_HEAD = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        return


def start_metrics_server(
    host: str,
    port: int,
    render: Render,
    *,
    path: str = "/metrics",
    protection: Protection = Protection(),  # noqa: B008 - immutable value object
) -> MetricsServer:
    """Bind ``host:port`` (port 0 picks a free one) and serve scrapes in a thread."""
    server = MetricsServer(host, port, render, path, protection)
    thread = threading.Thread(target=server.serve_forever, name="glassbox-metrics", daemon=True)
    thread.start()
    return server
