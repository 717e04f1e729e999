"""Outgoing HTTP metrics: httpx clients against a real local HTTP server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import glassbox
from tests.conftest import free_port
from tests.metrics.helpers import parse, value

REQUESTS = "http_client_requests_total"
DURATION = "http_client_request_duration_seconds"


class _Handler(BaseHTTPRequestHandler):
    """``/status/<code>`` answers that code; ``/slow`` answers after 0.3 s."""

    def _answer(self) -> None:
        if self.path == "/slow":
            time.sleep(0.3)
        code = int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/status/") else 200
        body = b"ok\n"
        try:
            self.send_response(code)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            return

    do_GET = do_POST = do_PURGE = _answer

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def registry() -> glassbox.Registry:
    return glassbox.Registry()


def test_sync_client_counts_by_peer_method_status_and_errors(
    server: str, registry: glassbox.Registry
) -> None:
    with glassbox.instrument_client(httpx.Client(), peer="payments", registry=registry) as client:
        assert client.get(f"{server}/status/200").status_code == 200
        assert client.get(f"{server}/status/200").status_code == 200
        assert client.post(f"{server}/status/404").status_code == 404
        assert client.request("PURGE", f"{server}/status/503").status_code == 503
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{free_port()}/")
    text = registry.render()
    samples = parse(text)
    assert value(samples, REQUESTS, peer="payments", method="GET", status="200") == 2
    assert value(samples, REQUESTS, peer="payments", method="POST", status="404") == 1
    assert value(samples, REQUESTS, peer="payments", method="_OTHER", status="503") == 1
    assert value(samples, REQUESTS, peer="payments", method="GET", status="error") == 1
    assert value(samples, f"{DURATION}_count", peer="payments") == 5
    assert value(samples, f"{DURATION}_bucket", peer="payments", le="60.0") == 5
    assert "127.0.0.1" not in text  # the peer alias, never the URL


def test_async_client_with_mounts_and_timeouts(server: str, registry: glassbox.Registry) -> None:
    async def main() -> None:
        client = httpx.AsyncClient(
            mounts={"http://127.0.0.1": httpx.AsyncHTTPTransport()}, timeout=0.1
        )
        glassbox.instrument_client(client, peer="llm", registry=registry)
        async with client:
            assert (await client.get(f"{server}/status/201")).status_code == 201
            async with client.stream("GET", f"{server}/status/200") as response:
                assert await response.aread() == b"ok\n"
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"{server}/slow")

    asyncio.run(main())
    samples = parse(registry.render())
    assert value(samples, REQUESTS, peer="llm", method="GET", status="201") == 1
    assert value(samples, REQUESTS, peer="llm", method="GET", status="200") == 1
    assert value(samples, REQUESTS, peer="llm", method="GET", status="error") == 1
    assert value(samples, f"{DURATION}_count", peer="llm") == 3
    # the timed-out request is timed too: it waited for the 0.1 s timeout
    assert (value(samples, f"{DURATION}_sum", peer="llm") or 0) >= 0.1


def test_namespace_buckets_and_several_peers_share_the_metrics(
    server: str, registry: glassbox.Registry
) -> None:
    llm = glassbox.instrument_client(
        httpx.Client(), peer="llm", registry=registry, namespace="kato", buckets=(0.5, 120)
    )
    search = glassbox.instrument_client(
        httpx.Client(), peer="search", registry=registry, namespace="kato", buckets=(0.5, 120)
    )
    with llm, search:
        llm.get(f"{server}/status/200")
        search.get(f"{server}/status/200")
        assert glassbox.instrument_client(search, peer="search", registry=registry) is search
        search.get(f"{server}/status/200")  # instrumenting again does not count twice
    samples = parse(registry.render())
    total = "kato_client_requests_total"
    assert value(samples, total, peer="llm", method="GET", status="200") == 1
    assert value(samples, total, peer="search", method="GET", status="200") == 2
    assert value(samples, "kato_client_request_duration_seconds_bucket", peer="llm", le="120.0")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: glassbox.instrument_client(httpx.Client(), peer="https://api.x/v1", registry=r),
         "never a URL"),
        (lambda r: glassbox.instrument_client(httpx.Client(), peer="", registry=r), "short alias"),
        (lambda r: glassbox.instrument_client(object(), peer="llm", registry=r),  # type: ignore[type-var]
         "httpx.Client or httpx.AsyncClient"),
        (lambda r: glassbox.instrument_client(
            glassbox.instrument_client(httpx.Client(), peer="a", registry=r), peer="b",
            registry=r), "already instrumented as peer 'a'"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_at_setup(registry: glassbox.Registry, call: object, match: str) -> None:
    with pytest.raises(glassbox.ConfigurationError, match=match):
        call(registry)  # type: ignore[operator]
