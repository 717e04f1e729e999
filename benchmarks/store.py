"""The console's telemetry store: OTLP ingest rate and query latency.

    .venv/bin/python benchmarks/store.py [--rounds 5] [--quick] [--output FILE]

The server under test is one uvicorn process (one worker, its own process) serving
`otlp_routes` over a `TelemetryStore` (its defaults: at most 200k spans and 500k logs),
plus an endpoint that times a store query inside that process, as the console calls it.
The client (this process) sends OTLP/HTTP protobuf export requests of 512 spans or 512
log records, encoded before any timing starts (each send gets fresh trace ids by a
byte substitution, so no span is a duplicate).

0. Fill: the store is filled through the HTTP endpoint to its maxima (200k spans, 500k
   logs) and a bit past, so retention is deleting from then on.
A. Ingest, end to end (HTTP + protobuf decode + store, one transaction per request):
   two senders POST 40 span requests (20,480 spans), then 80 log requests (40,960
   records); rate = items / wall time, on the full store (retention deleting).
   Goals: >= 5,000 spans/s, >= 20,000 log records/s.
   Floor: the same rows, already converted (no HTTP, no decoding, no trace summary),
   by raw sqlite3 `executemany` into the same schema and indexes, one transaction per
   512 rows, on a database pre-filled to the same counts: SQLite's own limit here.
B. Query latency, measured in the server process around the store call, while
   ingestion continues: paced (1,000 spans/s + 5,000 log records/s) and at full speed
   (one sender per signal, back to back). Each round runs every query kind 5 times;
   reported: median over rounds of the round medians (range of the round medians) and
   the slowest single call. Goal: < 200 ms for each kind.

Every timed block also measures the CPU taken by other processes on the machine
(busy CPU minus this client's and the server's); blocks above 0.15 CPU are marked.
Before the fill and each round the run waits (at most --wait-quiet seconds) for a
second in which other processes take less than that.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: E402
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

from glassbox.console import store as store_module  # noqa: E402
from glassbox.console.otlp import decode_logs, decode_spans  # noqa: E402

BATCH = 512
TAG = bytes.fromhex("9e3779b97f4a7c15")  # the first 8 bytes of every trace id in a template
SERVICES = ("frontend", "checkout", "payments", "inventory", "email")
SPAN_GOAL, LOG_GOAL, QUERY_GOAL_MS = 5_000, 20_000, 200.0
DISTURBED = 0.15
MESSAGES = (
    "request handled",
    "cache miss key=user:{n}",
    "card declined for order {n}",
    "timeout calling inventory after 2000 ms",
    "retrying payment attempt={n}",
    "user {n} logged in",
    "slow query took {n} ms",
    "email queued for order {n}",
    "stock reserved sku=SKU-{n}",
    "feature flag evaluated name=new-checkout",
)
LEVELS = ((5, "DEBUG", 10), (9, "INFO", 75), (13, "WARN", 10), (17, "ERROR", 4), (21, "FATAL", 1))


# -- request templates -----------------------------------------------------------------


def _attr(container: Any, key: str, value: object) -> None:
    kv = container.add()
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)


def span_template(seed: int, base_ns: int) -> bytes:
    """512 spans: 64 traces of 8 spans across the services, ~1% of traces failing."""
    rnd = random.Random(seed)
    request = ExportTraceServiceRequest()
    scopes = {}
    for name in SERVICES:
        rs = request.resource_spans.add()
        _attr(rs.resource.attributes, "service.name", name)
        _attr(rs.resource.attributes, "service.version", "1.4.2")
        scopes[name] = rs.scope_spans.add()
        scopes[name].scope.name = "glassbox"
    for t in range(BATCH // 8):
        trace_id = TAG + struct.pack(">Q", seed * 1000 + t)
        start = base_ns + t * 15_000_000
        total = rnd.randrange(2, 400) * 1_000_000
        failing = rnd.random() < 0.01
        root_id = rnd.getrandbits(64).to_bytes(8, "big")
        for i in range(8):
            service = SERVICES[0] if i == 0 else rnd.choice(SERVICES[1:])
            s = scopes[service].spans.add()
            s.trace_id = trace_id
            s.span_id = root_id if i == 0 else rnd.getrandbits(64).to_bytes(8, "big")
            if i:
                s.parent_span_id = root_id
            s.name = (
                "GET /checkout"
                if i == 0
                else rnd.choice(
                    ("SELECT orders", "POST /charge", "GET /stock", "redis GET", "send email")
                )
            )
            s.kind = 2 if i == 0 else rnd.choice((1, 3))
            offset = 0 if i == 0 else rnd.randrange(0, total // 2)
            s.start_time_unix_nano = start + offset
            s.end_time_unix_nano = start + (total if i == 0 else offset + total // 4)
            _attr(s.attributes, "http.method", "GET")
            _attr(s.attributes, "http.route", "/checkout")
            _attr(s.attributes, "http.status_code", 500 if failing and i == 0 else 200)
            _attr(s.attributes, "net.peer.name", f"{service}.internal")
            _attr(s.attributes, "user.id", rnd.randrange(10**6))
            if "SELECT" in s.name:
                _attr(s.attributes, "db.statement", "SELECT * FROM orders WHERE id = $1 LIMIT 1")
            if failing and i in (0, 3):
                s.status.code = 2
                s.status.message = "payment provider unavailable"
                event = s.events.add()
                event.name = "exception"
                event.time_unix_nano = s.end_time_unix_nano
                _attr(event.attributes, "exception.type", "ConnectionError")
                _attr(event.attributes, "exception.message", "payment provider unavailable")
    body = request.SerializeToString()
    assert body.count(TAG) == BATCH, "the tag must mark exactly the trace ids"
    return body


def log_template(seed: int, base_ns: int) -> bytes:
    """512 log records across the services; 70% carry a trace id."""
    rnd = random.Random(seed)
    request = ExportLogsServiceRequest()
    scopes = {}
    for name in SERVICES:
        rl = request.resource_logs.add()
        _attr(rl.resource.attributes, "service.name", name)
        scopes[name] = rl.scope_logs.add()
        scopes[name].scope.name = f"{name}.app"
    choices = [(n, t) for n, t, w in LEVELS for _ in range(w)]
    traced = 0
    for i in range(BATCH):
        r = scopes[rnd.choice(SERVICES)].log_records.add()
        r.time_unix_nano = base_ns + i * 1_000_000
        r.severity_number, r.severity_text = rnd.choice(choices)  # type: ignore[assignment]
        r.body.string_value = rnd.choice(MESSAGES).format(n=rnd.randrange(10**5))
        if rnd.random() < 0.7:
            r.trace_id = TAG + struct.pack(">Q", seed * 1000 + i // 4)
            r.span_id = rnd.getrandbits(64).to_bytes(8, "big")
            traced += 1
        _attr(r.attributes, "request_id", f"req-{rnd.getrandbits(48):012x}")
        _attr(r.attributes, "route", "/checkout")
        _attr(r.attributes, "status", 200)
        _attr(r.attributes, "user_id", rnd.randrange(10**6))
    body = request.SerializeToString()
    assert body.count(TAG) == traced, "the tag must mark exactly the trace ids"
    return body


class Bodies:
    """Endless distinct request bodies: templates with a fresh 8-byte tag per send."""

    def __init__(self, templates: list[bytes]) -> None:
        self.templates = templates
        self._n = 0
        self._lock = threading.Lock()

    def next(self) -> bytes:
        with self._lock:
            self._n += 1
            n = self._n
        tag = struct.pack(">Q", 0x5EED_0000_0000_0000 + n)
        return self.templates[n % len(self.templates)].replace(TAG, tag)


# -- the server ------------------------------------------------------------------------


def _queries(window: tuple[int, int]) -> dict[str, Callable[[Any, dict[str, str]], Any]]:
    since, until = window
    return {
        "logs: newest 200": lambda s, _: s.search_logs(),
        "logs: level >= error": lambda s, _: s.search_logs(level="error"),
        "logs: text, found": lambda s, _: s.search_logs(text="card declined"),
        "logs: text, absent (full scan)": lambda s, _: s.search_logs(text="no such text"),
        "logs: text non-ASCII, absent": lambda s, _: s.search_logs(text="Größe fehlt"),
        "logs: text + level >= warning": lambda s, _: s.search_logs(
            text="timeout", level="warning"
        ),
        "logs: by trace_id": lambda s, a: s.search_logs(trace_id=a["log_trace"]),
        "logs: by service": lambda s, _: s.search_logs(service="payments"),
        "logs: 10 s time window": lambda s, _: s.search_logs(since_ns=since, until_ns=until),
        "traces: newest 50": lambda s, _: s.traces(),
        "traces: errors only": lambda s, _: s.traces(errors_only=True),
        "traces: by service": lambda s, _: s.traces(service="email"),
        "traces: >= 390 ms": lambda s, _: s.traces(min_duration_ms=390),
        "trace: one trace's spans": lambda s, a: s.trace(a["trace"]),
        "services": lambda s, _: s.services(),
        "stats": lambda s, _: [s.stats()],
    }


def serve(port: int, db: str, window: tuple[int, int]) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from glassbox.console.otlp import otlp_routes

    store = store_module.TelemetryStore(db)
    queries = _queries(window)

    def run(kind: str) -> dict[str, float]:
        args = {}  # chosen before the clock starts: a trace and a traced log line
        if kind == "trace: one trace's spans":
            recent = store.traces(limit=5)
            args["trace"] = recent[-1].trace_id if recent else "0" * 32
        if kind == "logs: by trace_id":
            recent_logs = [r for r in store.search_logs(limit=20) if r.trace_id]
            args["log_trace"] = recent_logs[-1].trace_id if recent_logs else "0" * 32
        began = time.perf_counter()
        rows = queries[kind](store, args)
        return {"ms": (time.perf_counter() - began) * 1000, "rows": len(rows)}

    async def query(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(run, request.query_params["kind"]))

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(store.stats))

    app = Starlette(
        routes=[
            *otlp_routes(store),
            Route("/bench/query", query),
            Route("/bench/stats", stats),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the client ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OtherCPU:
    """CPU seconds per second that processes other than ours took during a block."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(p) for p in pids]

    def _ours(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.procs)

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def __enter__(self) -> OtherCPU:
        self.t0, self.busy0, self.ours0 = time.monotonic(), self._busy(), self._ours()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        other = (self._busy() - self.busy0) - (self._ours() - self.ours0)
        self.value = max(0.0, other / wall) if wall > 0 else 0.0


def wait_quiet(pids: list[int], limit: float) -> None:
    """Wait up to ``limit`` s for a second in which other processes take < DISTURBED CPU."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with OtherCPU(pids) as cpu:
            time.sleep(1.0)  # the sampling window
        if cpu.value < DISTURBED:
            return


def send(client: httpx.Client, url: str, body: bytes) -> None:
    response = client.post(url, content=body, headers={"content-type": "application/x-protobuf"})
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.content[:200]!r}")


def blast(url: str, bodies: Bodies, requests: int, senders: int = 2) -> float:
    """Seconds to POST ``requests`` bodies with ``senders`` concurrent connections."""
    per = [requests // senders + (1 if i < requests % senders else 0) for i in range(senders)]
    payloads = [[bodies.next() for _ in range(n)] for n in per]
    errors: list[BaseException] = []

    def worker(mine: list[bytes]) -> None:
        try:
            with httpx.Client(timeout=60) as client:
                for body in mine:
                    send(client, url, body)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in payloads]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - began
    if errors:
        raise errors[0]
    return took


@dataclass
class Load:
    """Background senders: paced (items per second per signal) or back to back (None)."""

    base: str
    spans: Bodies
    logs: Bodies
    rates: tuple[float, float] | None
    sent: dict[str, int] = field(default_factory=lambda: {"traces": 0, "logs": 0})
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)

    def _run(self, signal_name: str, bodies: Bodies, rate: float | None) -> None:
        url = f"{self.base}/v1/{signal_name}"
        began = time.monotonic()
        try:
            with httpx.Client(timeout=60) as client:
                while not self.stop.is_set():
                    if rate is not None:  # pacing a load generator, not waiting on a result
                        due = began + self.sent[signal_name] / rate
                        if (ahead := due - time.monotonic()) > 0:
                            self.stop.wait(ahead)
                            continue
                    send(client, url, bodies.next())
                    self.sent[signal_name] += BATCH
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> Load:
        rates = self.rates or (None, None)
        self.threads = [
            threading.Thread(target=self._run, args=("traces", self.spans, rates[0])),
            threading.Thread(target=self._run, args=("logs", self.logs, rates[1])),
        ]
        self.began = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        self.took = time.monotonic() - self.began
        if self.errors:
            raise self.errors[0]


def span_rows(body: bytes) -> list[tuple[Any, ...]]:
    """The rows TelemetryStore.add_spans writes for these spans."""
    return [store_module._span_row(s) for s in decode_spans(body).records]


def log_rows(body: bytes) -> list[tuple[Any, ...]]:
    """The rows TelemetryStore.add_logs writes for these records."""
    return [store_module._log_row(r) for r in decode_logs(body).records]


class Floor:
    """Raw sqlite3 executemany of converted rows into the store's schema."""

    def __init__(self, path: Path, spans: Bodies, logs: Bodies, fill: tuple[int, int]) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA cache_size=-32000")
        self.conn.executescript(store_module._SCHEMA)
        self.spans, self.logs = spans, logs
        for _ in range(fill[0] // BATCH):
            self.insert(store_module._INSERT_SPAN, [span_rows(self.spans.next())])
        for _ in range(fill[1] // BATCH):
            self.insert(store_module._INSERT_LOG, [log_rows(self.logs.next())])

    def insert(self, sql: str, batches: list[list[tuple[Any, ...]]]) -> float:
        began = time.perf_counter()
        for rows in batches:
            self.conn.execute("BEGIN")
            self.conn.executemany(sql, rows)
            self.conn.execute("COMMIT")
        return time.perf_counter() - began

    def span_round(self, requests: int) -> float:
        batches = [span_rows(self.spans.next()) for _ in range(requests)]  # not timed
        return requests * BATCH / self.insert(store_module._INSERT_SPAN, batches)

    def log_round(self, requests: int) -> float:
        batches = [log_rows(self.logs.next()) for _ in range(requests)]
        return requests * BATCH / self.insert(store_module._INSERT_LOG, batches)


def med(values: list[float]) -> float:
    return statistics.median(values)


def rate_cell(values: list[float]) -> str:
    return f"{med(values):,.0f}/s ({min(values):,.0f}..{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 rounds on a 10x smaller store")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS-store.md")
    parser.add_argument(
        "--wait-quiet", type=float, default=30.0, help="max seconds to wait for a quiet box"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--window", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        since, until = (int(x) for x in args.window.split(","))
        serve(args.port, args.db, (since, until))
        return
    rounds = 2 if args.quick else args.rounds
    scale = 10 if args.quick else 1
    fill_spans, fill_logs = 200_000 // scale, 500_000 // scale
    span_requests, log_requests = 40 // scale or 4, 80 // scale or 8

    t0 = time.time_ns() - 3600 * 10**9  # templates cover the last hour, oldest first
    spans = Bodies([span_template(i, t0 + i * 60 * 10**9) for i in range(60)])
    logs = Bodies([log_template(1000 + i, t0 + i * 60 * 10**9) for i in range(60)])
    window = (t0 + 30 * 60 * 10**9, t0 + 30 * 60 * 10**9 + 10 * 10**9)
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="glassbox-store-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        log_file = (work / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--port", str(port),
             "--db", str(work / "store.db"), "--window", f"{window[0]},{window[1]}"],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            lines = run(
                f"http://127.0.0.1:{port}", server, work, spans, logs, window,
                rounds=rounds, fill=(fill_spans, fill_logs),
                requests=(span_requests, log_requests), load_before=load_before,
                argv=" ".join(sys.argv[1:]), quiet=args.wait_quiet,
            )  # fmt: skip
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
            log_file.close()
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.write_text(text)
    print(f"written to {args.output}")


def wait_listening(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the benchmark server exited")
        try:
            httpx.get(f"{base}/bench/stats", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)  # polling a starting server
    raise RuntimeError("the benchmark server did not listen within 60 s")


def run(
    base: str,
    server: subprocess.Popen[bytes],
    work: Path,
    spans: Bodies,
    logs: Bodies,
    window: tuple[int, int],
    *,
    rounds: int,
    fill: tuple[int, int],
    requests: tuple[int, int],
    load_before: tuple[float, float, float],
    argv: str,
    quiet: float,
) -> list[str]:
    wait_listening(base, server)
    pids = [os.getpid(), server.pid]
    wait_quiet(pids, quiet)

    # 0. fill through the endpoint, a little past the maxima
    with OtherCPU(pids) as fill_cpu:
        fill_span_s = blast(f"{base}/v1/traces", spans, fill[0] // BATCH + 20)
        fill_log_s = blast(f"{base}/v1/logs", logs, fill[1] // BATCH + 20)
    fill_rates = (
        (fill[0] // BATCH + 20) * BATCH / fill_span_s,
        (fill[1] // BATCH + 20) * BATCH / fill_log_s,
    )
    floor = Floor(work / "floor.db", Bodies(spans.templates), Bodies(logs.templates), fill)

    # A. ingest rounds, interleaved with the floor
    span_rates, log_rates, floor_spans, floor_logs, ingest_cpu = [], [], [], [], []
    for _ in range(rounds):
        wait_quiet(pids, quiet)
        floor_spans.append(floor.span_round(requests[0]))
        with OtherCPU(pids) as cpu:
            took = blast(f"{base}/v1/traces", spans, requests[0])
        span_rates.append(requests[0] * BATCH / took)
        floor_logs.append(floor.log_round(requests[1]))
        with OtherCPU(pids) as cpu2:
            took = blast(f"{base}/v1/logs", logs, requests[1])
        log_rates.append(requests[1] * BATCH / took)
        ingest_cpu.append(max(cpu.value, cpu2.value))
    stats = httpx.get(f"{base}/bench/stats", timeout=30).json()

    # B. queries while ingestion continues
    kinds = list(_queries(window))
    loads: dict[str, tuple[float, float] | None] = {
        "paced (1,000 spans/s + 5,000 logs/s)": (1_000.0, 5_000.0),
        "full speed": None,
    }
    results: dict[str, dict[str, list[list[float]]]] = {}
    rows: dict[str, int] = {}
    achieved: dict[str, tuple[float, float]] = {}
    query_cpu: dict[str, list[float]] = {}
    with httpx.Client(timeout=120) as client:
        for load_name, rates in loads.items():
            per_kind: dict[str, list[list[float]]] = {k: [] for k in kinds}
            query_cpu[load_name] = []
            wait_quiet(pids, quiet)
            with Load(base, spans, logs, rates) as load:
                for r in range(rounds):
                    order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
                    with OtherCPU(pids) as cpu:
                        for kind in order:
                            calls = []
                            for _ in range(5):
                                answer = client.get(
                                    f"{base}/bench/query", params={"kind": kind}
                                ).json()
                                calls.append(answer["ms"])
                                rows[kind] = answer["rows"]
                            per_kind[kind].append(calls)
                    query_cpu[load_name].append(cpu.value)
            achieved[load_name] = (
                load.sent["traces"] / load.took,
                load.sent["logs"] / load.took,
            )
            results[load_name] = per_kind
    final = httpx.get(f"{base}/bench/stats", timeout=30).json()
    return report(
        argv, load_before, fill, fill_rates, fill_cpu.value, span_rates, log_rates,
        floor_spans, floor_logs, ingest_cpu, stats, final, results, rows, achieved, query_cpu,
        rounds,
    )  # fmt: skip


def _cpu_note(values: list[float]) -> str:
    worst = max(values)
    marked = sum(v > DISTURBED for v in values)
    return f"other processes' CPU up to {worst:.2f}" + (
        f" ({marked} of {len(values)} blocks above {DISTURBED}: disturbed)" if marked else ""
    )


def report(
    argv: str,
    load_before: tuple[float, float, float],
    fill: tuple[int, int],
    fill_rates: tuple[float, float],
    fill_cpu: float,
    span_rates: list[float],
    log_rates: list[float],
    floor_spans: list[float],
    floor_logs: list[float],
    ingest_cpu: list[float],
    stats: dict[str, Any],
    final: dict[str, Any],
    results: dict[str, dict[str, list[list[float]]]],
    rows: dict[str, int],
    achieved: dict[str, tuple[float, float]],
    query_cpu: dict[str, list[float]],
    rounds: int,
) -> list[str]:
    cpu_model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    out = [
        "# Telemetry store: OTLP ingest rate and query latency",
        "",
        f"`benchmarks/store.py {argv}`".replace(" `", "`"),
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs"
        f" ({cpu_model}), Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version};"
        f" load average before the run {load_before[0]:.2f}. {rounds} rounds."
        " Method: the docstring of `benchmarks/store.py`.",
        "",
        "## A. Ingest, end to end (HTTP + protobuf decode + store), requests of 512",
        "",
        "| signal | goal | glassbox: median (min..max) | floor: raw executemany"
        " | glassbox / floor | verdict |",
        "|---|---|---|---|---|---|",
        f"| spans | >= {SPAN_GOAL:,}/s | {rate_cell(span_rates)} | {rate_cell(floor_spans)} |"
        f" {med(span_rates) / med(floor_spans):.2f} | {verdict(med(span_rates) >= SPAN_GOAL)} |",
        f"| log records | >= {LOG_GOAL:,}/s | {rate_cell(log_rates)} | {rate_cell(floor_logs)} |"
        f" {med(log_rates) / med(floor_logs):.2f} | {verdict(med(log_rates) >= LOG_GOAL)} |",
        "",
        f"On the full store (retention deleting). {_cpu_note(ingest_cpu)}."
        f" Filling the empty store to {fill[0]:,} spans and {fill[1]:,} logs (plus 20"
        f" requests each) through the endpoint ran at {fill_rates[0]:,.0f} spans/s and"
        f" {fill_rates[1]:,.0f} log records/s (other processes' CPU {fill_cpu:.2f}).",
        f"Store after part A: {stats['spans']:,} spans in {stats['traces']:,} traces,"
        f" {stats['logs']:,} log records, {stats['db_bytes'] / 1e6:,.0f} MB.",
        "",
        "## B. Query latency in the server process while ingestion continues (ms)",
        "",
    ]
    loads = list(results)
    header = "| query | rows |" + "".join(f" {name}: median (range), slowest |" for name in loads)
    out += [header + " verdict |", "|---|---|" + "---|" * len(loads) + "---|"]
    for kind in results[loads[0]]:
        cells, worst_medians = [], []
        for name in loads:
            medians = [med(calls) for calls in results[name][kind]]
            slowest = max(max(calls) for calls in results[name][kind])
            worst_medians.append(med(medians))
            cells.append(
                f" {med(medians):.1f} ({min(medians):.1f}..{max(medians):.1f}), {slowest:.0f} |"
            )
        ok = max(worst_medians) < QUERY_GOAL_MS
        out.append(f"| {kind} | {rows.get(kind, 0)} |" + "".join(cells) + f" {verdict(ok)} |")
    out += [""]
    for name in loads:
        s, lg = achieved[name]
        out.append(
            f"* {name}: ingestion meanwhile {s:,.0f} spans/s and {lg:,.0f} log records/s;"
            f" {_cpu_note(query_cpu[name])}."
        )
    out += [
        f"* Store at the end: {final['spans']:,} spans in {final['traces']:,} traces,"
        f" {final['logs']:,} log records, {final['db_bytes'] / 1e6:,.0f} MB.",
        f"* Goal: every kind's median below {QUERY_GOAL_MS:.0f} ms under both loads.",
        "",
    ]
    return out


if __name__ == "__main__":
    main()
