"""Benchmark suite for glassbox's RED metrics middleware.

Run from the repository root::

    .venv/bin/python benchmarks/run.py            # full run, about 9 minutes
    .venv/bin/python benchmarks/run.py --quick    # smoke run, under 2 minutes

Results are written as markdown to ``benchmarks/RESULTS.md`` (``--output``) and printed;
raw numbers go to ``benchmarks/.work/results.json``. ``--sections A --merge`` replaces only
part A in an existing results file and keeps the other parts from it (marked as older).

Method
------
Every application variant lives in :mod:`benchmarks.apps` and serves one route,
``GET /items/{item_id}`` answering ``200 ok``; requests vary the id (1000 values), so
the route label must come from the route template, never the raw path.

A. In-process. Each variant's ASGI app is called directly, in one asyncio event loop,
   with prebuilt scopes (the keys uvicorn sets), a ``receive`` returning an empty body
   and a ``send`` that only checks the status. After a warm-up, each round times N
   sequential requests per variant with ``time.perf_counter_ns``; the variants are
   interleaved round-robin and the starting variant rotates every round. The garbage
   collector stays enabled (a middleware's allocations cost collections) and
   ``gc.collect()`` runs before every timed block, the same for all variants. Per round,
   each variant's time is divided by its baseline's time from the same round (bare
   Starlette, or bare FastAPI for the instrumentator); the table gives min/median/max of
   those ratios. glassbox is also compared with the floor, the least a RED middleware
   can do: (glassbox - bare) / (floor - bare).
   Logs and traces (A only, not served in B): glassbox with tracing at 100% (an SDK
   TracerProvider passed as ``tracer_provider=``, BatchSpanProcessor into the same
   dropping exporter as the OpenTelemetry variant), at 10% through that provider's
   ParentBased(TraceIdRatioBased(0.1)) sampler, at 10% through ``trace_sample_ratio``
   with glassbox's own (process-global) provider - in a process of its own, with bare
   Starlette and glassbox (RED metrics) measured there too - with the request id alone,
   and with JSON logs + access log + request id (lines go to a file in
   ``benchmarks/.work``). Their targets compare overheads paired per round (see
   ``derive``): tracing 100% <= 1/3 of OpenTelemetry's overhead, the better 10% variant
   <= 2x glassbox (RED metrics)'s overhead, access log <= 10 us over glassbox (RED
   metrics); also shown: access log - request id only. The tracing floor
   (``floor_trace10``: the floor plus, for 10% of requests chosen by ``random()``, a bare
   ``start_span`` + ``end`` on a provider like the 100% variant's) gets the same 10% ratio
   over the floor, as the limit the 10% target can be judged against.
B. Over HTTP. Each variant runs in its own uvicorn process (one worker, loop=asyncio,
   httptools if installed else h11, ``--no-access-log``), pinned to CPU 0 with taskset;
   wrk (``-t1 -c16``, a Lua script that varies the id) is pinned to CPU 1. The servers
   are started together and each is warmed up; then rounds of ``wrk -d{N}s`` go
   round-robin over the variants. Ratio: requests/s over the baseline's in the same round.
C. ``/metrics`` render time: 200 routes x 5 statuses (8 observations each) recorded in
   a glassbox registry (through its RED store) and, identically, in a prometheus_client
   Counter + Histogram on a fresh CollectorRegistry. Rounds alternate
   ``Registry.render()`` and ``generate_latest()``; per-round ratio glassbox/prometheus.
   glassbox may reuse text of series that did not change, so its render is timed both
   after one more request was recorded (untimed) in every series - the target case -
   and back to back.
D. Scrape interference. One uvicorn server runs glassbox with the same 200 x 5 series
   (setup as in B). wrk ``-t1 -c16 --latency`` loads ``/items/{id}``; in alternating
   runs a thread scrapes ``/metrics`` every 100 ms with Prometheus' own Accept and
   Accept-Encoding headers (OpenMetrics, gzip). Added p99 = p99(with scrapes) -
   p99(without), paired per round. The same again with the load spread over the 200
   populated routes and their 5 statuses (every series changes between scrapes: the
   stress case), and as a reference, with half the rounds, for the hand-written
   prometheus_client middleware holding the same series.

Counts are checked: the requests each variant's own metrics recorded must equal the
requests driven (in-process) or lie within the in-flight margin of what wrk completed.

Disturbance. The machine may be shared. Around every in-process round (A) and wrk run (B, D)
the runner reads ``/proc/stat`` and the CPU time of its own processes (itself, wrk,
the servers); CPU used by anything else, plus hypervisor steal, is the disturbance. A
round or run with more than ``DISTURBED_CPUS`` of it is flagged (a busy neighbour
preempts the pinned server for whole scheduler ticks, which caps or fakes p99 effects);
A, B and D verdicts use the unflagged rounds when at least two remain, else they are
INCONCLUSIVE. The sha256 of glassbox's source at the start and the
end of the run is recorded, and a change is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import hashlib
import http.client
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
WORK_DIR = BENCH_DIR / ".work"
DEFAULT_OUTPUT = BENCH_DIR / "RESULTS.md"

TARGET_INPROCESS = 1.25
TARGET_HTTP = 0.90
TARGET_RENDER = 1 / 3
TARGET_ADDED_P99_MS = 5.0
#: In-process overhead (over bare Starlette) of glassbox tracing at 100% / OpenTelemetry ASGI's.
TARGET_TRACE100_VS_OTEL = 1 / 3
#: In-process overhead of glassbox tracing at 10% / glassbox's metrics-only overhead.
TARGET_TRACE10_VS_METRICS = 2.0
#: µs per request the access log may add in-process (over glassbox metrics-only).
TARGET_ACCESS_US = 10.0

#: A run is "disturbed" when other processes (or the hypervisor, as steal time) took more
#: than this many CPUs on average while it ran.
DISTURBED_CPUS = 0.15

WRK_THREADS = 1
WRK_CONNECTIONS = 16
SCRAPE_INTERVAL_S = 0.1
#: What Prometheus 2.x/3.x sends when it scrapes.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/3.0.0",
}
PACKAGES = (
    "glassbox", "starlette", "fastapi", "uvicorn", "h11", "httptools", "prometheus-client",
    "starlette-exporter", "prometheus-fastapi-instrumentator", "opentelemetry-api",
    "opentelemetry-sdk", "opentelemetry-instrumentation-asgi",
)

_WRK_ONE_ROUTE = """\
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/items/" .. (counter % 1000))
end
"""
#: Spreads requests over the 200 populated routes and (through the id) their 5 statuses,
#: so every series of ``glassbox_scrape`` changes between two scrapes.
_WRK_ALL_SERIES = """\
local counter = 0
request = function()
  counter = counter + 1
  local id = math.floor(counter / 200) % 1000
  return wrk.format("GET", string.format("/api/v1/resource_%03d/%d", counter % 200, id))
end
"""
_WRK_DONE = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"status_errors":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, e.status, e.connect,
    e.read, e.write, e.timeout))
end
"""
WRK_SCRIPTS = {"one_route": _WRK_ONE_ROUTE + _WRK_DONE, "all_series": _WRK_ALL_SERIES + _WRK_DONE}


@dataclass(frozen=True)
class Profile:
    name: str
    inproc_requests: int
    inproc_rounds: int
    inproc_warmup: int
    http_seconds: int
    http_rounds: int
    http_warmup_seconds: int
    render_rounds: int
    render_repeats: int
    scrape_seconds: int
    scrape_rounds: int


#: Many short rounds rather than a few long ones: this machine's speed drifts (shared
#: host), and a per-round ratio only pairs measurements taken close together in time.
FULL = Profile(
    "full", inproc_requests=4000, inproc_rounds=30, inproc_warmup=2000,
    http_seconds=3, http_rounds=8, http_warmup_seconds=2,
    render_rounds=15, render_repeats=3, scrape_seconds=3, scrape_rounds=8,
)
QUICK = Profile(
    "quick", inproc_requests=2000, inproc_rounds=5, inproc_warmup=500,
    http_seconds=2, http_rounds=2, http_warmup_seconds=1,
    render_rounds=4, render_repeats=2, scrape_seconds=2, scrape_rounds=2,
)


# -- small helpers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """min / median / max of a list of per-round numbers."""

    low: float
    median: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(min(values), statistics.median(values), max(values), len(values))

    def fmt(self, digits: int = 2, suffix: str = "") -> str:
        return (
            f"{self.median:.{digits}f}{suffix} "
            f"({self.low:.{digits}f}..{self.high:.{digits}f})"
        )


def load_apps() -> Any:
    """Import ``benchmarks.apps`` (run.py is started as a script, not as a module)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.apps")


def rotated(items: Sequence[Any], by: int) -> list[Any]:
    k = by % len(items)
    return [*items[k:], *items[:k]]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def verdict(ok: bool, *, inconclusive: bool = False) -> str:
    if inconclusive:
        return f"INCONCLUSIVE (machine busy; {'PASS' if ok else 'MISS'} on disturbed rounds)"
    return "PASS" if ok else "MISS"


# -- A. in-process ---------------------------------------------------------------------------

SCOPE_TEMPLATE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 54321),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"glassbox-bench"),
        (b"accept", b"*/*"),
    ],
}
REQUEST_MESSAGE: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": False}


def make_scopes(n: int, offset: int) -> list[dict[str, Any]]:
    scopes = []
    for i in range(offset, offset + n):
        path = f"/items/{i % 1000}"
        scopes.append({**SCOPE_TEMPLATE, "path": path, "raw_path": path.encode(), "state": {}})
    return scopes


class Sink:
    """The ASGI ``receive``/``send`` pair of the in-process driver."""

    def __init__(self) -> None:
        self.responses = 0
        self.not_ok = 0

    async def receive(self) -> dict[str, Any]:
        return REQUEST_MESSAGE

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.responses += 1
            if message["status"] != 200:
                self.not_ok += 1


async def drive(app: Any, scopes: list[dict[str, Any]], sink: Sink) -> int:
    """Run every scope through ``app``; nanoseconds taken."""
    receive, send = sink.receive, sink.send
    start = time.perf_counter_ns()
    for scope in scopes:
        await app(scope, receive, send)
    return time.perf_counter_ns() - start


@dataclass
class InProcessResult:
    us: dict[str, list[float]]
    ratios: dict[str, Spread]
    ratios_quiet: dict[str, Spread | None]
    disturbed: dict[str, list[bool]]
    floor_relative: Spread | None
    floor_relative_quiet: Spread | None
    counts: dict[str, tuple[int | None, int]]
    not_ok: dict[str, int]
    own_baseline_us: dict[str, float] = field(default_factory=dict)
    """Variants run in their own process: the median of the baseline measured there."""
    own_process: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Variants run in their own process: that process's ``us`` and ``disturbed`` (its
    baseline and companions too)."""
    derived: dict[str, Derived] = field(default_factory=dict)
    """Paired per-round comparisons for the logs-and-traces targets (see ``derive``)."""


def available_variants(apps: Any, notes: list[str]) -> list[Any]:
    """The variants whose libraries are installed (a missing peer is noted, not fatal)."""
    out = []
    for v in apps.VARIANTS:
        try:
            if v.isolated:  # building it would change this process
                for module in v.imports:
                    importlib.import_module(module)
            else:
                v.factory()
        except ImportError as exc:
            notes.append(f"{v.label} skipped: {exc}")
        else:
            out.append(v)
    names = {v.name for v in out}
    return [v for v in out if v.baseline is None or v.baseline in names]


def bench_inprocess_all(variants: list[Any], apps: Any, profile: Profile) -> InProcessResult:
    """Part A: the shared-process variants here, each isolated one in a child process."""
    shared = [v for v in variants if not v.isolated]
    result = asyncio.run(bench_inprocess(shared, apps, profile))
    for v in variants:
        if v.isolated:
            merge_isolated(result, v, run_isolated(v, profile))
    result.derived = derive(result)
    return result


def run_isolated(variant: Any, profile: Profile) -> dict[str, Any]:
    """Part A for ``variant`` and bare Starlette in a fresh Python process."""
    out = WORK_DIR / f"inprocess-{variant.name}.json"
    out.unlink(missing_ok=True)
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child-inprocess", variant.name,
        "--output", str(out), *(["--quick"] if profile.name == "quick" else []),
    ]
    log(f"A. {variant.name}: in a process of its own")
    budget = 60 + profile.inproc_rounds * profile.inproc_requests * 2e-3  # 2 ms/request
    with (WORK_DIR / f"inprocess-{variant.name}.log").open("wb") as log_file:
        done = subprocess.run(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT, timeout=budget,
            check=False,
        )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(
            f"in-process child for {variant.name} exited with {done.returncode}; see"
            f" {WORK_DIR / f'inprocess-{variant.name}.log'}"
        )
    child: dict[str, Any] = json.loads(out.read_text())
    return child


def merge_isolated(result: InProcessResult, variant: Any, child: dict[str, Any]) -> None:
    """Add a child's variant to ``result``; its ratios use the child's own baseline."""
    name, base = variant.name, variant.baseline
    mine, theirs = child["us"][name], child["us"][base]
    bad = [a or b for a, b in zip(child["disturbed"][name], child["disturbed"][base], strict=True)]
    per_round = [a / b for a, b in zip(mine, theirs, strict=True)]
    result.us[name] = mine
    result.disturbed[name] = bad
    result.ratios[name] = Spread.of(per_round)
    result.ratios_quiet[name] = quiet_spread(per_round, bad)
    result.own_baseline_us[name] = statistics.median(theirs)
    result.own_process[name] = {"us": child["us"], "disturbed": child["disturbed"]}
    counted, driven = child["counts"][name]
    result.counts[name] = (counted, driven)
    result.not_ok[name] = child["not_ok"][name]


async def bench_inprocess(variants: list[Any], apps: Any, profile: Profile) -> InProcessResult:
    built = {v.name: v.factory() for v in variants}
    sinks = {v.name: Sink() for v in variants}
    driven = dict.fromkeys(built, 0)
    log(f"A. in-process: warm-up {profile.inproc_warmup} requests per variant")
    for name, app in built.items():
        await drive(app, make_scopes(profile.inproc_warmup, 0), sinks[name])
        driven[name] += profile.inproc_warmup
    us: dict[str, list[float]] = {name: [] for name in built}
    disturbed: dict[str, list[bool]] = {name: [] for name in built}
    n = profile.inproc_requests
    for rnd in range(profile.inproc_rounds):
        # Disturbance is measured per round: /proc/stat counts in 10 ms ticks, too coarse
        # for one variant's block of a few tens of milliseconds.
        before = CpuSample.take(())
        for v in rotated(variants, rnd):
            scopes = make_scopes(n, rnd * n)
            gc.collect()
            ns = await drive(built[v.name], scopes, sinks[v.name])
            us[v.name].append(ns / n / 1000)
            driven[v.name] += n
        foreign, steal = before.until(CpuSample.take(()))
        for flags in disturbed.values():
            flags.append(foreign + steal > DISTURBED_CPUS)
        log(
            f"A. round {rnd + 1}/{profile.inproc_rounds}: "
            + ", ".join(f"{name} {vals[-1]:.1f}" for name, vals in us.items())
            + " µs/req"
        )
    ratios: dict[str, Spread] = {}
    ratios_quiet: dict[str, Spread | None] = {}
    for v in variants:
        if v.baseline is None:
            continue
        per_round = [a / b for a, b in zip(us[v.name], us[v.baseline], strict=True)]
        ratios[v.name] = Spread.of(per_round)
        bad = [a or b for a, b in zip(disturbed[v.name], disturbed[v.baseline], strict=True)]
        ratios_quiet[v.name] = quiet_spread(per_round, bad)
    floor_rel = floor_rel_quiet = None
    if {"floor", "glassbox", "bare_starlette"} <= us.keys():
        rel: list[float] = []
        rel_bad: list[bool] = []
        for i, (g, f, b) in enumerate(
            zip(us["glassbox"], us["floor"], us["bare_starlette"], strict=True)
        ):
            if f > b:
                rel.append((g - b) / (f - b))
                rel_bad.append(
                    disturbed["glassbox"][i] or disturbed["floor"][i]
                    or disturbed["bare_starlette"][i]
                )
        if rel:
            floor_rel = Spread.of(rel)
            floor_rel_quiet = quiet_spread(rel, rel_bad)
    counts = {name: (apps.request_count(name, app), driven[name]) for name, app in built.items()}
    otel_state = getattr(built["otel"].state, "otel", None) if "otel" in built else None
    if otel_state is not None:
        otel_state[0].force_flush()
        counts["otel (spans)"] = (otel_state[1].exported, 3 * driven["otel"])
        otel_state[0].shutdown()
    for name, app in built.items():
        spans = getattr(app.state, "bench_spans", None)
        if spans is not None:  # glassbox with a dropping exporter: one span per sampled request
            spans[0].force_flush()
            counts[f"{name} (spans)"] = (spans[1].exported, driven[name])
            spans[0].shutdown()
        stream = getattr(app.state, "access_stream", None)
        if stream is not None:
            counts[f"{name} (access-log lines)"] = (count_access_lines(stream), driven[name])
    return InProcessResult(
        us=us, ratios=ratios, ratios_quiet=ratios_quiet, disturbed=disturbed,
        floor_relative=floor_rel, floor_relative_quiet=floor_rel_quiet, counts=counts,
        not_ok={name: sink.not_ok for name, sink in sinks.items()},
    )


def count_access_lines(stream: Any) -> int:
    """Access-log lines in ``stream``'s file; then only the first few are kept."""
    stream.flush()
    path = Path(stream.name)
    count = 0
    head: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if '"logger":"glassbox.access"' in line:
                count += 1
                if len(head) < 5:
                    head.append(line)
    # Tens of MB otherwise. The stream stays open (logging still holds it): cut it back.
    stream.seek(0)
    stream.truncate()
    stream.write("".join(head))
    stream.flush()
    return count


@dataclass
class Derived:
    """One paired comparison over the in-process rounds (see ``derive``)."""

    what: str
    everything: Spread
    quiet: Spread | None
    """Over the rounds in which none of the variants involved was disturbed (>= 2 left)."""
    busy: bool
    """Too few quiet rounds to judge."""
    skipped: int = 0
    """Rounds left out of a ratio because its reference overhead was not positive."""


def paired(
    us: dict[str, list[float]], disturbed: dict[str, list[bool]], what: str,
    a: str, b: str, *, ref: str | None = None,
) -> Derived | None:
    """Per round, ``a - b`` (µs), or with ``ref`` the ratio ``(a - b) / (ref - b)``."""
    names = [a, b] if ref is None else [a, b, ref]
    if not all(n in us for n in names):
        return None
    values: list[float] = []
    bad: list[bool] = []
    skipped = 0
    for i in range(len(us[a])):
        diff = us[a][i] - us[b][i]
        if ref is not None:
            denominator = us[ref][i] - us[b][i]
            if denominator <= 0:
                skipped += 1
                continue
            diff /= denominator
        values.append(diff)
        bad.append(any(disturbed[n][i] for n in names))
    if not values:
        return None
    quiet = quiet_spread(values, bad)
    return Derived(what, Spread.of(values), quiet, quiet is None and any(bad), skipped)


def derive(res: InProcessResult) -> dict[str, Derived]:
    """The logs-and-traces comparisons, each paired within one round of one process.

    Overheads are over bare Starlette. ``trace100_vs_otel``: glassbox's 100% tracing
    overhead / OpenTelemetry ASGI's; ``trace10*_vs_glassbox``: a 10% tracing overhead /
    glassbox (RED metrics)'s (the own-provider variant against glassbox measured in its
    own process); ``floor_trace10_vs_floor``: the same target applied to the floor (its
    10% tracing overhead / its metrics-only overhead), how close to the limit 2x is;
    ``*_minus_*``: µs one variant adds to another (``access_minus_*``: the access log;
    ``floor_tracing_minus_floor`` / ``trace10*_minus_glassbox``: 10% tracing).
    """
    us, bad = res.us, res.disturbed
    base = "bare_starlette"
    out: dict[str, Derived | None] = {
        "trace100_vs_otel": paired(
            us, bad, "glassbox_trace100 vs otel", "glassbox_trace100", base, ref="otel"
        ),
        "trace100_us": paired(us, bad, "glassbox_trace100", "glassbox_trace100", base),
        "otel_us": paired(us, bad, "otel", "otel", base),
        "trace10_vs_glassbox": paired(
            us, bad, "glassbox_trace10 vs glassbox", "glassbox_trace10", base, ref="glassbox"
        ),
        "trace10_us": paired(us, bad, "glassbox_trace10", "glassbox_trace10", base),
        "glassbox_us": paired(us, bad, "glassbox", "glassbox", base),
        "floor_trace10_vs_floor": paired(
            us, bad, "floor_trace10 vs floor", "floor_trace10", base, ref="floor"
        ),
        "floor_trace10_us": paired(us, bad, "floor_trace10", "floor_trace10", base),
        "floor_us": paired(us, bad, "floor", "floor", base),
        "floor_tracing_minus_floor": paired(
            us, bad, "floor_trace10 - floor", "floor_trace10", "floor"
        ),
        "trace10_minus_glassbox": paired(
            us, bad, "glassbox_trace10 - glassbox", "glassbox_trace10", "glassbox"
        ),
        "access_minus_glassbox": paired(
            us, bad, "glassbox_access - glassbox", "glassbox_access", "glassbox"
        ),
        "access_minus_reqid": paired(
            us, bad, "glassbox_access - glassbox_reqid", "glassbox_access", "glassbox_reqid"
        ),
        "reqid_minus_glassbox": paired(
            us, bad, "glassbox_reqid - glassbox", "glassbox_reqid", "glassbox"
        ),
    }
    own = res.own_process.get("glassbox_trace10_own")
    if own is not None:
        ous, obad = own["us"], own["disturbed"]
        out["trace10_own_vs_glassbox"] = paired(
            ous, obad, "glassbox_trace10_own vs glassbox (own process)",
            "glassbox_trace10_own", base, ref="glassbox",
        )
        out["trace10_own_us"] = paired(
            ous, obad, "glassbox_trace10_own", "glassbox_trace10_own", base
        )
        out["glassbox_own_us"] = paired(ous, obad, "glassbox (own process)", "glassbox", base)
        out["trace10_own_minus_glassbox"] = paired(
            ous, obad, "glassbox_trace10_own - glassbox (own process)", "glassbox_trace10_own",
            "glassbox",
        )
    return {k: v for k, v in out.items() if v is not None}


# -- servers and wrk -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_impl() -> str:
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def cpu_pinning() -> tuple[list[str], list[str]]:
    """taskset prefixes for the server (CPU 0) and wrk (CPU 1), when there are 2+ CPUs."""
    if shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
        cpus = sorted(os.sched_getaffinity(0))
        return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]
    return [], []


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def start_server(factory: str, pin: list[str]) -> Server:
    port = free_port()
    log_path = WORK_DIR / f"uvicorn-{factory}.log"
    cmd = [
        *pin, sys.executable, "-m", "uvicorn", "--factory", f"benchmarks.apps:{factory}",
        "--app-dir", str(ROOT), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--loop", "asyncio", "--http", http_impl(),
        "--no-access-log", "--log-level", "warning",
    ]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    return Server(factory, port, proc, log_path)


def wait_ready(server: Server, deadline_s: float = 30.0) -> None:
    """Wait until the server accepts connections and answers the route with 200."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"uvicorn for {server.name} exited with {server.proc.returncode}:\n"
                + server.log_tail()
            )
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        status, _, _ = http_get(server.port, "/items/1")
        if status != 200:
            raise RuntimeError(f"{server.name}: GET /items/1 answered {status}")
        return
    raise RuntimeError(f"uvicorn for {server.name} did not accept within {deadline_s:.0f}s")


def stop_server(server: Server, deadline_s: float = 10.0) -> None:
    if server.proc.poll() is not None:
        return
    server.proc.send_signal(signal.SIGINT)
    try:
        server.proc.wait(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=deadline_s)


@contextlib.contextmanager
def running(factories: Sequence[str], pin: list[str]) -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    try:
        for factory in factories:
            servers[factory] = start_server(factory, pin)
        for server in servers.values():
            wait_ready(server)
        yield servers
    finally:
        for server in servers.values():
            stop_server(server)


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


@dataclass
class WrkRun:
    requests: int
    duration_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int
    max_us: int
    status_errors: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    foreign_cpus: float = 0.0
    """CPUs used by processes other than the runner, the servers and wrk, on average."""
    steal_cpus: float = 0.0

    @property
    def disturbed(self) -> bool:
        return self.foreign_cpus + self.steal_cpus > DISTURBED_CPUS

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts

    @property
    def errors(self) -> int:
        return (
            self.status_errors + self.connect_errors + self.read_errors
            + self.write_errors + self.timeouts
        )


_HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    at: float
    busy: float
    """CPU-seconds the whole machine spent running anything (user, system, irq)."""
    steal: float
    own: float
    """CPU-seconds of this runner, its reaped children (wrk) and the given live pids."""

    @classmethod
    def take(cls, pids: Sequence[int]) -> CpuSample:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        own = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            own += usage.ru_utime + usage.ru_stime
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                own += (int(stat[11]) + int(stat[12])) / _HZ
        return cls(
            time.monotonic(), (user + nice + system + irq + softirq) / _HZ, steal / _HZ, own
        )

    def until(self, later: CpuSample) -> tuple[float, float]:
        """(foreign CPUs, steal CPUs) on average between two samples."""
        wall = max(later.at - self.at, 1e-9)
        foreign = (later.busy - self.busy) - (later.own - self.own)
        return foreign / wall, (later.steal - self.steal) / wall


def run_wrk(
    port: int, seconds: int, pin: list[str], *, latency: bool = False,
    own_pids: Sequence[int] = (), load: str = "one_route",
) -> WrkRun:
    """One wrk run; ``own_pids`` (the servers) are left out of the disturbance measure.

    ``load``: ``one_route`` (``/items/{id}``) or ``all_series`` (see ``WRK_SCRIPTS``).
    """
    script = WORK_DIR / f"{load}.lua"
    script.write_text(WRK_SCRIPTS[load])
    cmd = [
        *pin, "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s",
        "--timeout", "5s", "-s", str(script), f"http://127.0.0.1:{port}/items/0",
    ]
    if latency:
        cmd.append("--latency")
    before = CpuSample.take(own_pids)
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    foreign, steal = before.until(CpuSample.take(own_pids))
    for line in done.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return WrkRun(
                **json.loads(line[len("BENCHJSON "):]), foreign_cpus=foreign, steal_cpus=steal
            )
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")


_GLASSBOX_COUNT = re.compile(
    r'^http_requests_total\{method="GET",route="/items/\{item_id\}",status="200"\} (\d+)$', re.M
)


def glassbox_served_count(port: int) -> int | None:
    status, _, body = http_get(port, "/metrics")
    if status != 200:
        return None
    found = _GLASSBOX_COUNT.search(body.decode())
    return int(found.group(1)) if found else 0


# -- B. HTTP -----------------------------------------------------------------------------------


def quiet_spread(values: Sequence[float], disturbed: Sequence[bool]) -> Spread | None:
    """Spread of the values from undisturbed rounds, None when fewer than 2 are left."""
    kept = [v for v, bad in zip(values, disturbed, strict=True) if not bad]
    return Spread.of(kept) if len(kept) >= 2 else None


@dataclass
class HttpResult:
    rps: dict[str, list[float]]
    p99_ms: dict[str, list[float]]
    ratios: dict[str, Spread]
    ratios_quiet: dict[str, Spread | None]
    """Ratios from the rounds where neither the variant's nor its baseline's run was disturbed."""
    disturbed: dict[str, list[bool]]
    foreign_cpus: list[float]
    errors: dict[str, int]
    glassbox_check: tuple[int | None, int, int] | None
    """(requests glassbox counted, requests wrk completed, wrk runs)."""


def bench_http(variants: list[Any], profile: Profile) -> HttpResult:
    server_pin, wrk_pin = cpu_pinning()
    names = [v.name for v in variants]
    rps: dict[str, list[float]] = {n: [] for n in names}
    p99: dict[str, list[float]] = {n: [] for n in names}
    disturbed: dict[str, list[bool]] = {n: [] for n in names}
    foreign: list[float] = []
    errors = dict.fromkeys(names, 0)
    completed = dict.fromkeys(names, 0)
    runs = dict.fromkeys(names, 0)
    log(f"B. HTTP: starting {len(names)} uvicorn servers ({http_impl()})")
    with running(names, server_pin) as servers:
        pids = [server.proc.pid for server in servers.values()]
        for name in names:
            warm = run_wrk(servers[name].port, profile.http_warmup_seconds, wrk_pin)
            completed[name] += warm.requests
            runs[name] += 1
            errors[name] += warm.errors
        for rnd in range(profile.http_rounds):
            for v in rotated(variants, rnd):
                result = run_wrk(
                    servers[v.name].port, profile.http_seconds, wrk_pin, own_pids=pids
                )
                disturbed[v.name].append(result.disturbed)
                foreign.append(result.foreign_cpus + result.steal_cpus)
                rps[v.name].append(result.rps)
                p99[v.name].append(result.p99_us / 1000)
                errors[v.name] += result.errors
                completed[v.name] += result.requests
                runs[v.name] += 1
            log(
                f"B. round {rnd + 1}/{profile.http_rounds}: "
                + ", ".join(f"{n} {vals[-1]:.0f}" for n, vals in rps.items())
                + " req/s"
            )
        check = None
        if "glassbox" in servers:
            counted = glassbox_served_count(servers["glassbox"].port)
            # + the readiness probe's GET /items/1
            check = (counted, completed["glassbox"] + 1, runs["glassbox"])
    ratios: dict[str, Spread] = {}
    ratios_quiet: dict[str, Spread | None] = {}
    for v in variants:
        if v.baseline is None:
            continue
        per_round = [a / b for a, b in zip(rps[v.name], rps[v.baseline], strict=True)]
        ratios[v.name] = Spread.of(per_round)
        bad = [a or b for a, b in zip(disturbed[v.name], disturbed[v.baseline], strict=True)]
        ratios_quiet[v.name] = quiet_spread(per_round, bad)
    return HttpResult(
        rps=rps, p99_ms=p99, ratios=ratios, ratios_quiet=ratios_quiet, disturbed=disturbed,
        foreign_cpus=foreign, errors=errors, glassbox_check=check,
    )


# -- C. render -------------------------------------------------------------------------------


@dataclass
class RenderResult:
    ms: dict[str, list[float]]
    ratio_text: Spread
    """glassbox text (every series changed) / prometheus_client text, per round."""
    ratio_text_unchanged: Spread
    ratio_openmetrics: Spread
    sizes: dict[str, tuple[int, int]]
    """bytes and lines of each exposition."""
    series: dict[str, int]


def _time_ms(fn: Callable[[], Any], repeats: int, before: Callable[[], Any] | None) -> float:
    """Mean ms of ``fn()``; ``before()`` runs, untimed, before each call."""
    total = 0
    for _ in range(repeats):
        if before is not None:
            before()
        gc.collect()
        start = time.perf_counter_ns()
        fn()
        total += time.perf_counter_ns() - start
    return total / repeats / 1e6


def bench_render(apps: Any, profile: Profile) -> RenderResult:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.openmetrics.exposition import (
        generate_latest as generate_latest_openmetrics,
    )

    import glassbox

    greg = glassbox.Registry()
    apps.populate_glassbox(greg)
    preg = CollectorRegistry()
    apps.populate_prometheus(preg)
    store = greg.red["http"]
    keys = list(store.series)

    def touch_all() -> None:
        """One more request in every series, so nothing rendered before is still valid."""
        for method, route, status in keys:
            store.observe(method, route, status, 0.003, 0, 2)

    # name -> (render, untimed step before each render)
    renderers: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None]] = {
        "glassbox text, every series changed": (
            lambda: greg.render(openmetrics=False), touch_all
        ),
        "glassbox text, nothing changed": (lambda: greg.render(openmetrics=False), None),
        "prometheus_client text": (lambda: generate_latest(preg), None),
        "glassbox openmetrics, every series changed": (
            lambda: greg.render(openmetrics=True), touch_all
        ),
        "prometheus_client openmetrics": (
            lambda: generate_latest_openmetrics(preg), None  # type: ignore[no-untyped-call]
        ),
    }
    sizes = {}
    series = {}
    for name, (fn, _) in renderers.items():
        out = fn()
        text = out if isinstance(out, str) else out.decode()
        sizes[name] = (len(text.encode()), text.count("\n"))
        series[name] = len(re.findall(r"^http_requests_total\{", text, re.M))
    ms: dict[str, list[float]] = {name: [] for name in renderers}
    log(f"C. render: {profile.render_rounds} rounds")
    names = list(renderers)
    for rnd in range(profile.render_rounds):
        for name in rotated(names, rnd):
            fn, before = renderers[name]
            ms[name].append(_time_ms(fn, profile.render_repeats, before))

    def ratio(a: str, b: str) -> Spread:
        return Spread.of([x / y for x, y in zip(ms[a], ms[b], strict=True)])

    return RenderResult(
        ms=ms,
        ratio_text=ratio("glassbox text, every series changed", "prometheus_client text"),
        ratio_text_unchanged=ratio("glassbox text, nothing changed", "prometheus_client text"),
        ratio_openmetrics=ratio(
            "glassbox openmetrics, every series changed", "prometheus_client openmetrics"
        ),
        sizes=sizes,
        series=series,
    )


# -- D. scrape interference ---------------------------------------------------------------------


class Scraper(threading.Thread):
    """Scrapes ``/metrics`` every ``interval`` seconds (start to start) until stopped."""

    def __init__(self, port: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.halt = threading.Event()
        self.durations_ms: list[float] = []
        self.body_bytes: list[int] = []
        self.failures: list[str] = []
        self.encodings: set[str] = set()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        next_at = time.perf_counter()
        try:
            while not self.halt.is_set():
                start = time.perf_counter()
                try:
                    conn.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
                    resp = conn.getresponse()
                    body = resp.read()
                except OSError as exc:
                    self.failures.append(repr(exc))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                else:
                    if resp.status != 200:
                        self.failures.append(f"status {resp.status}")
                    self.durations_ms.append((time.perf_counter() - start) * 1000)
                    self.body_bytes.append(len(body))
                    self.encodings.add(resp.getheader("content-encoding") or "identity")
                next_at += self.interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    self.halt.wait(delay)
                else:
                    next_at = time.perf_counter()
        finally:
            conn.close()


@dataclass
class ScrapeResult:
    server: str
    load: str
    rounds: int
    p99_off_ms: list[float]
    p99_on_ms: list[float]
    p999_off_ms: list[float]
    p999_on_ms: list[float]
    p50_off_ms: list[float]
    p50_on_ms: list[float]
    rps_off: list[float]
    rps_on: list[float]
    added_p99_ms: Spread
    added_p99_quiet_ms: Spread | None
    disturbed_rounds: list[bool]
    foreign_cpus: list[float]
    scrapes: int
    scrape_ms: list[float]
    scrape_bytes: int
    scrape_failures: list[str]
    encodings: list[str]
    exposition_bytes: int
    errors: int
    series_grown: int | None
    """glassbox: populated series whose request count grew during the runs."""


_POPULATED_COUNT = re.compile(
    r'^http_requests_total\{method="GET",route="/api/v1/resource_\d+/\{item_id\}",'
    r'status="\d+"\} (\d+)$', re.M
)


def _populated_series_grown(port: int) -> int:
    _, _, body = http_get(port, "/metrics")
    return sum(
        int(m.group(1)) > load_apps().POPULATED_OBSERVATIONS
        for m in _POPULATED_COUNT.finditer(body.decode())
    )


def bench_scrape(
    factory: str, rounds: int, profile: Profile, load: str = "one_route"
) -> ScrapeResult:
    """Paired wrk runs without/with a 100 ms scraper; ``load`` names the wrk script."""
    server_pin, wrk_pin = cpu_pinning()
    off: list[WrkRun] = []
    on: list[WrkRun] = []
    scrape_ms: list[float] = []
    scrape_bytes: list[int] = []
    failures: list[str] = []
    encodings: set[str] = set()
    log(f"D. scrape interference: starting the {factory} server ({load} load)")
    with running([factory], server_pin) as servers:
        port = servers[factory].port
        pids = [servers[factory].proc.pid]
        _, _, plain = http_get(port, "/metrics")
        for _ in range(3):  # a scraped service has been scraped before: warm its caches
            http_get(port, "/metrics", PROMETHEUS_HEADERS)
        run_wrk(port, profile.http_warmup_seconds, wrk_pin, load=load)
        for rnd in range(rounds):
            for scraping in (False, True) if rnd % 2 == 0 else (True, False):
                scraper = Scraper(port, SCRAPE_INTERVAL_S) if scraping else None
                if scraper is not None:
                    scraper.start()
                try:
                    result = run_wrk(
                        port, profile.scrape_seconds, wrk_pin, latency=True, own_pids=pids,
                        load=load,
                    )
                finally:
                    if scraper is not None:
                        scraper.halt.set()
                        scraper.join(timeout=15)
                if scraper is not None:
                    on.append(result)
                    scrape_ms += scraper.durations_ms
                    scrape_bytes += scraper.body_bytes
                    failures += scraper.failures
                    encodings |= scraper.encodings
                else:
                    off.append(result)
            log(
                f"D. {factory} ({load}) round {rnd + 1}/{rounds}: p99 without scrapes "
                f"{off[-1].p99_us / 1000:.2f} ms, with {on[-1].p99_us / 1000:.2f} ms"
                + (" (disturbed)" if off[-1].disturbed or on[-1].disturbed else "")
            )
        grown = _populated_series_grown(port) if factory.startswith("glassbox") else None
    added = [(b.p99_us - a.p99_us) / 1000 for a, b in zip(off, on, strict=True)]
    disturbed = [a.disturbed or b.disturbed for a, b in zip(off, on, strict=True)]
    return ScrapeResult(
        server=factory,
        load=load,
        rounds=rounds,
        p99_off_ms=[r.p99_us / 1000 for r in off],
        p99_on_ms=[r.p99_us / 1000 for r in on],
        p999_off_ms=[r.p999_us / 1000 for r in off],
        p999_on_ms=[r.p999_us / 1000 for r in on],
        p50_off_ms=[r.p50_us / 1000 for r in off],
        p50_on_ms=[r.p50_us / 1000 for r in on],
        rps_off=[r.rps for r in off],
        rps_on=[r.rps for r in on],
        added_p99_ms=Spread.of(added),
        added_p99_quiet_ms=quiet_spread(added, disturbed),
        disturbed_rounds=disturbed,
        foreign_cpus=[r.foreign_cpus + r.steal_cpus for r in off + on],
        scrapes=len(scrape_ms),
        scrape_ms=scrape_ms,
        scrape_bytes=int(statistics.median(scrape_bytes)) if scrape_bytes else 0,
        scrape_failures=failures[:10],
        encodings=sorted(encodings),
        exposition_bytes=len(plain),
        errors=sum(r.socket_errors for r in off + on),
        series_grown=grown,
    )


# -- environment --------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        nproc = subprocess.run(
            ["nproc"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(len(os.sched_getaffinity(0)))
    wrk = "not found"
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        wrk = (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0]
    mem = "unknown"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "nproc": nproc,
        "CPU": cpu,
        "memory": mem,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{platform.system()} {platform.release()}",
        "wrk": wrk,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def source_fingerprint() -> str:
    """sha256 (12 hex digits) of glassbox's source files, to tie results to the code."""
    digest = hashlib.sha256()
    src = ROOT / "src" / "glassbox"
    for path in sorted(src.rglob("*.py")):
        digest.update(str(path.relative_to(src)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# -- report -------------------------------------------------------------------------------------


@dataclass
class Report:
    profile: Profile
    machine: dict[str, str]
    versions: dict[str, str]
    seconds: float = 0.0
    inprocess: InProcessResult | None = None
    http: HttpResult | None = None
    render: RenderResult | None = None
    scrapes: list[ScrapeResult] = field(default_factory=list)
    """D: glassbox with one hot route (the target), glassbox with every series changing,
    the prometheus_client reference."""
    source_before: str = ""
    source_after: str = ""
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _scrape_label(result: ScrapeResult, labels: dict[str, str]) -> str:
    load = {"one_route": "load on /items/{id}", "all_series": "load on all 1000 series"}
    return f"{labels.get(result.server, result.server)}, {load.get(result.load, result.load)}"


def _busy(result: ScrapeResult) -> bool:
    """Too few undisturbed rounds to judge."""
    return result.added_p99_quiet_ms is None and any(result.disturbed_rounds)


def _verdict_spread(everything: Spread, quiet: Spread | None) -> tuple[Spread, str]:
    if quiet is None:
        return everything, f" (all {everything.n} rounds)"
    return quiet, f" ({quiet.n} of {everything.n} rounds quiet)"


def _derived_text(d: Derived, digits: int = 2, suffix: str = "") -> str:
    r, how = _verdict_spread(d.everything, d.quiet)
    skipped = f", {d.skipped} rounds skipped (reference overhead ≤ 0)" if d.skipped else ""
    return r.fmt(digits, suffix) + how[:-1] + skipped + ")"


def _overhead_us(derived: dict[str, Derived], key: str) -> str:
    d = derived.get(key)
    if d is None:
        return "?"
    r, _ = _verdict_spread(d.everything, d.quiet)
    return f"{r.median:+.2f} µs"


def _logs_traces_targets(derived: dict[str, Derived]) -> list[list[str]]:
    """Target rows for tracing and the access log (in-process, paired per round)."""
    rows: list[list[str]] = []
    d = derived.get("trace100_vs_otel")
    if d is not None:
        r, _ = _verdict_spread(d.everything, d.quiet)
        rows.append([
            "A (tracing 100%). glassbox overhead over bare Starlette / OpenTelemetry ASGI's"
            " (both: SDK TracerProvider, BatchSpanProcessor into a dropping exporter)",
            f"≤ {TARGET_TRACE100_VS_OTEL:.3f}x",
            _derived_text(d, 3, "x") + f"; overheads {_overhead_us(derived, 'trace100_us')}"
            f" vs {_overhead_us(derived, 'otel_us')}",
            verdict(r.median <= TARGET_TRACE100_VS_OTEL, inconclusive=d.busy),
        ])
    candidates = [
        (key, label, ours, ref)
        for key, label, ours, ref in (
            ("trace10_vs_glassbox", "tracer_provider= with ParentBased(TraceIdRatioBased(0.1))",
             "trace10_us", "glassbox_us"),
            ("trace10_own_vs_glassbox", "trace_sample_ratio=0.1, glassbox's own provider"
             " (own process, vs glassbox measured there)", "trace10_own_us", "glassbox_own_us"),
        )
        if key in derived
    ]
    if candidates:
        shown = []
        best: tuple[float, bool] | None = None
        for key, label, ours, ref in candidates:
            d = derived[key]
            r, _ = _verdict_spread(d.everything, d.quiet)
            shown.append(
                f"{label}: {_derived_text(d, 2, 'x')}; overheads {_overhead_us(derived, ours)}"
                f" vs {_overhead_us(derived, ref)}"
            )
            if best is None or r.median < best[0]:
                best = (r.median, d.busy)
        assert best is not None
        floor = derived.get("floor_trace10_vs_floor")
        if floor is not None:
            r, _ = _verdict_spread(floor.everything, floor.quiet)
            shown.append(
                "for reference, the **tracing floor** (floor_trace10: 10% bare SDK spans, over"
                f" the floor's metrics-only overhead): {_derived_text(floor, 2, 'x')} -"
                f" {'meets' if r.median <= TARGET_TRACE10_VS_METRICS else 'misses'} 2x;"
                f" overheads {_overhead_us(derived, 'floor_trace10_us')}"
                f" vs {_overhead_us(derived, 'floor_us')}"
            )
            added = [
                f"{label} {_overhead_us(derived, key)}"
                for key, label in (
                    ("floor_tracing_minus_floor", "floor"),
                    ("trace10_minus_glassbox", "tracer_provider="),
                    ("trace10_own_minus_glassbox", "trace_sample_ratio="),
                )
                if key in derived
            ]
            shown.append("µs per request the 10% tracing adds: " + ", ".join(added))
        rows.append([
            "A (tracing 10%). glassbox overhead over bare Starlette / glassbox (RED metrics)'s;"
            " the best of the two ways to sample 10% (verdict on glassbox; the floor for"
            " reference)",
            f"≤ {TARGET_TRACE10_VS_METRICS:.2f}x",
            "<br>".join(shown),
            verdict(best[0] <= TARGET_TRACE10_VS_METRICS, inconclusive=best[1]),
        ])
    d = derived.get("access_minus_glassbox")
    if d is not None:
        r, _ = _verdict_spread(d.everything, d.quiet)
        other = derived.get("access_minus_reqid")
        rows.append([
            "A (access log). µs per request added by JSON logs + access log: glassbox_access"
            " (access log + request id) - glassbox (RED metrics)",
            f"≤ {TARGET_ACCESS_US:.0f} µs",
            _derived_text(d, 2, " µs")
            + (
                f"; - glassbox_reqid (request id only): {_derived_text(other, 2, ' µs')}"
                if other is not None else ""
            ),
            verdict(r.median <= TARGET_ACCESS_US, inconclusive=d.busy),
        ])
    return rows


def _tracing_floor_note(derived: dict[str, Derived]) -> list[str]:
    """A plain sentence on how close the 10% tracing target is to the tracing floor."""
    floor = derived.get("floor_trace10_vs_floor")
    added = derived.get("floor_tracing_minus_floor")
    metrics = derived.get("glassbox_us")
    if floor is None or added is None or metrics is None:
        return []
    r, _ = _verdict_spread(floor.everything, floor.quiet)
    a, _ = _verdict_spread(added.everything, added.quiet)
    m, _ = _verdict_spread(metrics.everything, metrics.quiet)
    budget = (TARGET_TRACE10_VS_METRICS - 1) * m.median
    head = (
        "**Even the tracing floor misses the 10% tracing target**"
        if r.median > TARGET_TRACE10_VS_METRICS
        else "The tracing floor meets the 10% tracing target"
    )
    return [
        f"{head}: the least a middleware can do at 10% head sampling (nothing more for 90%"
        f" of requests, a bare SDK span for 10%) costs {r.median:.2f}x its metrics-only"
        " overhead. For glassbox, the target leaves 10% tracing"
        f" {budget:.2f} µs a request (glassbox's metrics-only overhead, +{m.median:.2f} µs,"
        f" once more); the bare spans alone take {a.median:.2f} µs of it"
        f" ({a.median / budget:.0%}), before any of what glassbox does for every request:"
        " ids, the OpenTelemetry context, the log context and the `traceresponse` header.",
        "",
    ]


def render_markdown(report: Report, apps: Any) -> str:
    p = report.profile
    labels = {v.name: v.label for v in apps.VARIANTS}
    labels["glassbox_scrape"] = "glassbox"
    labels["prom_client_scrape"] = "prometheus_client by hand (reference)"
    baselines = {v.name: v.baseline for v in apps.VARIANTS}
    lines = [
        "# glassbox metrics middleware — benchmark results",
        "",
        f"`benchmarks/run.py{' --quick' if p.name == 'quick' else ''}` ({p.name} run), "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, took {report.seconds:.0f} s. "
        "Method: `benchmarks/README.md` and the docstring of `benchmarks/run.py`.",
        "",
        "## Targets",
        "",
    ]
    targets: list[list[str]] = []
    if report.inprocess is not None:
        r, how = _verdict_spread(
            report.inprocess.ratios["glassbox"], report.inprocess.ratios_quiet.get("glassbox")
        )
        busy = report.inprocess.ratios_quiet.get("glassbox") is None and any(
            report.inprocess.disturbed["glassbox"] + report.inprocess.disturbed["bare_starlette"]
        )
        targets.append([
            "A. in-process time, glassbox / bare Starlette", f"≤ {TARGET_INPROCESS:.2f}x",
            r.fmt(3, "x") + how, verdict(r.median <= TARGET_INPROCESS, inconclusive=busy),
        ])
    if report.inprocess is not None:
        targets += _logs_traces_targets(report.inprocess.derived)
    if report.http is not None:
        r, how = _verdict_spread(
            report.http.ratios["glassbox"], report.http.ratios_quiet.get("glassbox")
        )
        busy = report.http.ratios_quiet.get("glassbox") is None and any(
            report.http.disturbed["glassbox"] + report.http.disturbed["bare_starlette"]
        )
        targets.append([
            "B. HTTP throughput, glassbox / bare Starlette", f"≥ {TARGET_HTTP:.2f}x",
            r.fmt(3, "x") + how, verdict(r.median >= TARGET_HTTP, inconclusive=busy),
        ])
    if report.render is not None:
        r = report.render.ratio_text
        targets.append([
            "C. render 200x5 series (all changed since the last render), glassbox /"
            " generate_latest", f"≤ {TARGET_RENDER:.3f}x",
            r.fmt(3, "x"), verdict(r.median <= TARGET_RENDER),
        ])
    for sr, what in zip(
        report.scrapes[:2],
        ("D. added request p99 while scraping every 100 ms (load on one route)",
         "D (stress). the same with every one of the 1000 series changing between scrapes"),
        strict=False,
    ):
        r, how = _verdict_spread(sr.added_p99_ms, sr.added_p99_quiet_ms)
        targets.append([
            what, f"≤ {TARGET_ADDED_P99_MS:.0f} ms", r.fmt(2, " ms") + how,
            verdict(r.median <= TARGET_ADDED_P99_MS, inconclusive=_busy(sr)),
        ])
    for error in report.errors:
        targets.append([error.split(" failed", 1)[0], "", "—", "ERROR (see below)"])
    lines += _table(
        ["target", "goal", "measured: median (min..max) over rounds", "verdict"], targets
    )
    if report.errors:
        lines += ["", "**Errors** (the part stopped; the other parts ran):", ""]
        lines += ["```", *report.errors, "```"]
    lines += [
        "",
        "A verdict is taken on the median over rounds. For A, B and D, rounds in which other"
        f" processes (or hypervisor steal) took more than {DISTURBED_CPUS} CPU on average"
        " during an in-process round or a wrk run are left out when at least two undisturbed"
        " rounds remain (\"quiet\"): a busy neighbour preempts the server for whole"
        " scheduler ticks and hides or fakes latency effects.",
        "",
    ]
    if report.inprocess is not None:
        lines += _tracing_floor_note(report.inprocess.derived)
    if report.source_before != report.source_after:
        lines += [
            f"**Warning: glassbox's source changed during this run** ({report.source_before}"
            f" at the start, {report.source_after} at the end); parts of the results measure"
            " different code.",
            "",
        ]

    if report.inprocess is not None:
        res = report.inprocess
        lines += [
            "## A. In-process (ASGI app called directly, no network)",
            "",
            f"{p.inproc_rounds} rounds x {p.inproc_requests} requests per variant, after "
            f"{p.inproc_warmup} warm-up requests; GC enabled, `gc.collect()` before each block.",
            "",
        ]
        rows = []
        for name in [v.name for v in apps.VARIANTS if v.name in res.us]:
            vals = res.us[name]
            base = baselines[name]
            ratio = res.ratios.get(name)
            quiet = res.ratios_quiet.get(name)
            base_us = res.own_baseline_us.get(name, _median(res.us[base])) if base else 0.0
            added = _median(vals) - base_us if base else 0.0
            own = (
                f" (own process; bare Starlette there: {res.own_baseline_us[name]:.2f} µs)"
                if name in res.own_baseline_us else ""
            )
            rows.append([
                labels[name] + own, f"{_median(vals):.2f}",
                f"{min(vals):.2f}..{max(vals):.2f}",
                ratio.fmt(3, "x") if ratio else "baseline",
                (quiet.fmt(3, "x") + f" [{quiet.n}]") if quiet else ("—" if ratio else ""),
                f"{added:+.2f}" if base else "—",
                str(sum(res.disturbed[name])),
            ])
        lines += _table(
            ["variant", "µs/request (median)", "µs/request (min..max)",
             "ratio to baseline, all rounds: median (min..max)", "ratio, quiet rounds [n]",
             "added µs (median)", "disturbed rounds"],
            rows,
        )
        if res.floor_relative is not None:
            quiet_rel = res.floor_relative_quiet
            lines += [
                "",
                "glassbox's overhead relative to the floor's, (glassbox - bare) / (floor - bare)"
                f" per round: **{res.floor_relative.fmt(2, 'x')}**"
                + (f"; quiet rounds: {quiet_rel.fmt(2, 'x')} [{quiet_rel.n}]" if quiet_rel else "")
                + ".",
            ]
        if res.derived:
            lines += [
                "",
                "Logs and traces, paired per round (each difference taken within one round of"
                " one process; µs over bare Starlette unless said): median (min..max)"
                " [quiet rounds used].",
                "",
            ]
            rows = []
            for key, d in res.derived.items():
                ratio = "_vs_" in key
                r, _ = _verdict_spread(d.everything, d.quiet)
                rows.append([
                    d.what + ("" if ratio or "minus" in key else " - bare_starlette"),
                    ("ratio of overheads" if ratio else "µs"),
                    r.fmt(3 if ratio else 2), str(r.n),
                    (str(d.skipped) if d.skipped else "0") if ratio else "—",
                ])
            lines += _table(
                ["comparison", "unit", "median (min..max)", "rounds used",
                 "rounds skipped (reference overhead ≤ 0)"],
                rows,
            )
        lines.append("")
    if report.http is not None:
        res2 = report.http
        lines += [
            "## B. Over HTTP (uvicorn + wrk)",
            "",
            f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{p.http_seconds}s, {p.http_rounds} rounds "
            f"round-robin after a {p.http_warmup_seconds} s warm-up per server; "
            f"uvicorn {report.versions.get('uvicorn')} single worker, loop=asyncio, "
            f"http={http_impl()}, --no-access-log.",
            "",
        ]
        rows = []
        for name, vals in res2.rps.items():
            ratio = res2.ratios.get(name)
            quiet = res2.ratios_quiet.get(name)
            rows.append([
                labels[name], f"{_median(vals):.0f}", f"{min(vals):.0f}..{max(vals):.0f}",
                ratio.fmt(3, "x") if ratio else "baseline",
                (quiet.fmt(3, "x") + f" [{quiet.n}]") if quiet else ("—" if ratio else ""),
                f"{_median(res2.p99_ms[name]):.2f}", str(sum(res2.disturbed[name])),
                str(res2.errors[name]),
            ])
        lines += _table(
            ["variant", "req/s (median)", "req/s (min..max)",
             "ratio to baseline, all rounds: median (min..max)",
             "ratio, quiet rounds [n]", "p99 ms (median)", "disturbed runs", "wrk errors"],
            rows,
        )
        lines += [
            "",
            "CPU taken by other processes (and steal) during the runs: median"
            f" {max(0.0, _median(res2.foreign_cpus)):.2f}, max"
            f" {max(0.0, *res2.foreign_cpus):.2f} CPUs.",
            "",
        ]
    if report.render is not None:
        res3 = report.render
        lines += [
            "## C. /metrics render time (200 routes x 5 statuses = 1000 series)",
            "",
            f"{p.render_rounds} rounds, each the mean of {p.render_repeats} renders; "
            "same observations in both registries. *Every series changed*: before each"
            " (timed) render, one more request is recorded, untimed, in each of the 1000"
            " series, so no text glassbox may keep from the previous render is reusable;"
            " *nothing changed*: renders back to back. prometheus_client keeps nothing"
            " between renders.",
            "",
        ]
        rows = []
        for name, vals in res3.ms.items():
            size, nlines = res3.sizes[name]
            rows.append([
                name, f"{_median(vals):.2f}", f"{min(vals):.2f}..{max(vals):.2f}",
                f"{size / 1e6:.2f}", str(nlines), str(res3.series[name]),
            ])
        lines += _table(
            ["renderer", "ms (median)", "ms (min..max)", "MB", "lines", "request series"], rows
        )
        lines += [
            "",
            "Ratio glassbox / prometheus_client, text format, every series changed:"
            f" **{res3.ratio_text.fmt(3, 'x')}**; nothing changed:"
            f" {res3.ratio_text_unchanged.fmt(3, 'x')}; OpenMetrics, every series changed:"
            f" {res3.ratio_openmetrics.fmt(3, 'x')}. glassbox writes its whole"
            " RED set (requests, duration histogram, request/response size summaries,"
            " in-progress, exceptions); prometheus_client writes Counter + Histogram"
            " (with `_created` samples).",
            "",
        ]
    scrapes = report.scrapes
    if scrapes:
        lines += [
            "## D. Scrape interference (1000 series, a scrape every 100 ms)",
            "",
            f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{p.scrape_seconds}s --latency on "
            "`/items/{id}`; each round is a run without and a run with scrapes (order "
            "alternating); a scrape sends Prometheus' Accept (OpenMetrics) and "
            "Accept-Encoding: gzip headers and starts 100 ms after the previous one started"
            " (at once if that one took longer). *Load on all 1000 series* spreads the"
            " requests over the 200 populated routes and their 5 statuses, so every series"
            " changes between two scrapes (nothing a renderer caches stays valid)."
            " prometheus_client by hand is a reference: the same series, `generate_latest`"
            " (text, no gzip) in a worker thread.",
            "",
        ]
        rows = []
        for s in scrapes:
            sms = sorted(s.scrape_ms)
            rows.append([
                _scrape_label(s, labels), str(s.rounds),
                f"{_median(s.p50_off_ms):.2f} / {_median(s.p50_on_ms):.2f}",
                f"{_median(s.p99_off_ms):.2f} / {_median(s.p99_on_ms):.2f}",
                s.added_p99_ms.fmt(2),
                (s.added_p99_quiet_ms.fmt(2) + f" [{s.added_p99_quiet_ms.n}]")
                if s.added_p99_quiet_ms else "—",
                f"{sum(s.disturbed_rounds)}",
                f"{_median(s.p999_off_ms):.2f} / {_median(s.p999_on_ms):.2f}",
                f"{_median(s.rps_off):.0f} / {_median(s.rps_on):.0f}",
                f"{s.scrapes}: {_median(sms):.1f} / {sms[-1]:.1f}" if sms else "none",
                f"{s.scrape_bytes / 1e3:.0f} kB {', '.join(s.encodings)}",
            ])
        lines += _table(
            ["server", "rounds", "p50 ms without / with", "p99 ms without / with",
             "added p99 ms, all rounds: median (min..max)", "added p99 ms, quiet rounds [n]",
             "disturbed rounds", "p99.9 ms without / with",
             "req/s without / with", "scrapes: ms median / max", "scrape body"],
            rows,
        )
        lines.append("")
        for s in scrapes:
            per_round = ", ".join(
                f"{a:.1f}→{b:.1f}{'*' if bad else ''}"
                for a, b, bad in zip(s.p99_off_ms, s.p99_on_ms, s.disturbed_rounds, strict=True)
            )
            lines.append(
                f"- {_scrape_label(s, labels)}, p99 ms without→with per round"
                f" (* disturbed): {per_round}."
            )
        for s in scrapes:
            if s.scrape_failures or s.errors:
                lines.append(
                    f"{_scrape_label(s, labels)}: scrape failures {s.scrape_failures},"
                    f" wrk errors {s.errors}."
                )
        lines.append("")

    lines += ["## Correctness checks", ""]
    if report.inprocess is not None:
        for name, (counted, driven) in report.inprocess.counts.items():
            if counted is None:
                continue
            ok = counted == driven
            if name == "otel (spans)":
                lines.append(
                    f"- A. OpenTelemetry exported {counted} spans for {driven // 3} requests"
                    " (3 per request: server + 2 send spans; a full BatchSpanProcessor queue"
                    " drops spans)."
                )
                continue
            if name.endswith(" (spans)"):
                variant = name.removesuffix(" (spans)")
                lines.append(
                    f"- A. {labels.get(variant, variant)}: the exporter received {counted} spans"
                    f" for {driven} requests ({counted / max(driven, 1):.1%}; one span"
                    " per sampled request, a full BatchSpanProcessor queue drops spans)."
                )
                continue
            if name.endswith(" (access-log lines)"):
                variant = name.removesuffix(" (access-log lines)")
                lines.append(
                    f"- A. {labels.get(variant, variant)}: {counted} access-log lines written"
                    f" for {driven} requests — {'OK' if ok else 'MISMATCH'}."
                )
                continue
            lines.append(
                f"- A. {labels.get(name, name)}: recorded {counted} requests of {driven} driven"
                f" — {'OK' if ok else 'MISMATCH'}."
            )
        bad = {n: c for n, c in report.inprocess.not_ok.items() if c}
        lines.append(f"- A. non-200 responses: {bad or 'none'}.")
    if report.http is not None and report.http.glassbox_check is not None:
        counted, completed, runs = report.http.glassbox_check
        margin = runs * WRK_CONNECTIONS
        ok = counted is not None and 0 <= counted - completed <= margin
        lines.append(
            f"- B. glassbox server counted {counted} requests; wrk completed {completed} (+ up to"
            f" {margin} in flight when runs ended) — {'OK' if ok else 'MISMATCH'}."
        )
    if report.render is not None:
        lines.append(f"- C. request series per exposition: {report.render.series}.")
    for sr in report.scrapes:
        if sr.series_grown is not None:
            lines.append(
                f"- D. {_scrape_label(sr, labels)}: {sr.series_grown} of the 1000 populated"
                " series received requests during the runs"
                f" (expected {'1000' if sr.load == 'all_series' else '0'})."
            )
    lines += [f"- {note}" for note in report.notes]
    lines.append("")

    lines += ["## Machine", ""]
    lines += _table(["", ""], [[k, v] for k, v in report.machine.items()])
    lines += ["", "## Package versions", ""]
    lines += _table(["package", "version"], [[k, v] for k, v in report.versions.items()])
    lines += [
        "",
        "## Configuration of the variants",
        "",
        "- glassbox (RED metrics): `glassbox.instrument(app, registry=Registry(), "
        + ", ".join(f"{k}={v!r}" for k, v in apps.glassbox_metrics_options().items())
        + ")`; glassbox_scrape (D) likewise.",
        "- glassbox, instrument() defaults: `glassbox.instrument(app, registry=Registry(), "
        + ", ".join(f"{k}={v!r}" for k, v in apps.GLASSBOX_OPTIONS.items())
        + ")`, everything else at its default; in part A in a Python process of its own"
        " (it configures process-wide logging and tracing), compared with bare Starlette"
        " measured in that process.",
        "- glassbox + tracing 100% / 10% (A only): the RED metrics call with"
        " `tracing=True, tracer_provider=provider`; provider: an SDK `TracerProvider` with a"
        " `BatchSpanProcessor` (default sizes) into the same dropping exporter as the"
        " OpenTelemetry variant, sampler ALWAYS_ON (100%) or"
        " `ParentBased(TraceIdRatioBased(0.1))` (10%; with a provider given, its sampler"
        " decides). One SERVER span per request. Exemplars stay off, as in the metrics call.",
        "- glassbox + tracing 10%, trace_sample_ratio (A only): the RED metrics call with"
        " `tracing=True, trace_sample_ratio=0.1` and no provider: glassbox installs the global"
        " SDK provider (ParentBased(ALWAYS_ON)) and samples new traces itself, so 90% of"
        " requests build no SDK span; OTEL_EXPORTER_OTLP_ENDPOINT unset, so no exporter (the"
        " sampled 10% are built and ended, sent nowhere). In a process of its own, with bare"
        " Starlette and glassbox (RED metrics) measured there too.",
        "- floor + tracing 10% (A only): `benchmarks.apps.FloorTraceMiddleware` — the floor,"
        " plus one `random()` per request; for 10% of requests `tracer.start_span(method)`"
        " before the app and `span.end()` after (no attributes, not made current, no ids,"
        " no header), on an SDK `TracerProvider` (ALWAYS_ON, `BatchSpanProcessor` into the"
        " dropping exporter) like glassbox + tracing 100%'s.",
        "- glassbox + request id (A only): the RED metrics call with `request_id=True`.",
        "- glassbox + JSON access log + request id (A only): the RED metrics call with"
        " `logs=True, log_format='json', access_log=True, request_id=True`; `sys.stdout` is"
        " redirected to `benchmarks/.work/access-log.jsonl` while `instrument()` runs, so each"
        " request writes and flushes one JSON line to that file (only the first lines are kept"
        " after counting).",
        "- floor: `benchmarks.apps.FloorMiddleware` — send wrapper for the status, two"
        " perf_counter readings, one dict lookup by (method, scope['route'].path, status),"
        " bisect, three list increments.",
        "- prometheus_client by hand: `benchmarks.apps.PromClientMiddleware` — Counter +"
        " Histogram (glassbox's buckets) on its own CollectorRegistry, labelled children"
        " cached per (method, route, status).",
        "- starlette-exporter: `PrometheusMiddleware(app_name='bench', group_paths=True)`,"
        " defaults otherwise (requests, duration histogram, in-progress gauge).",
        "- OpenTelemetry: `OpenTelemetryMiddleware` with an SDK `TracerProvider`"
        " (sampler ALWAYS_ON, `BatchSpanProcessor` with default queue/batch sizes into an"
        " exporter that counts and drops spans) and an SDK `MeterProvider`"
        " (`InMemoryMetricReader`, never collected during the runs). Default options, so 3"
        " spans per request (server span + `http send` spans) and the HTTP server metrics.",
        "- prometheus-fastapi-instrumentator: `Instrumentator(registry=CollectorRegistry())"
        ".instrument(app).expose(app)`, defaults; compared with bare FastAPI.",
        f"- Servers pinned to CPU 0 and wrk to CPU 1 with taskset: {bool(cpu_pinning()[0])}.",
        "",
    ]
    return "\n".join(lines)


# -- keeping the other parts of an earlier RESULTS.md ----------------------------------------------

PARTS = "ABCD"
_KEPT_PREFIX = "Parts not run this time, kept from the earlier results in this file:"


def _sections(markdown: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(lines before the first ``## `` heading, [(heading, lines under it)])."""
    preamble: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for line in markdown.splitlines():
        if line.startswith("## "):
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line)
        else:
            preamble.append(line)
    return preamble, sections


def _part_of(heading_or_row: str) -> str | None:
    """The part (A-D) a ``## X.`` heading, a ``| X...`` target row or a ``- X.`` check is of."""
    for prefix in ("## ", "| ", "- "):
        if heading_or_row.startswith(prefix):
            text = heading_or_row[len(prefix) :]
            return text[0] if text[:1] in tuple(PARTS) and text[1:2] in (".", " ") else None
    return None


def merge_results(new: str, old: str, ran: set[str]) -> str:
    """``new`` (a run of the parts in ``ran``) with the other parts' results taken from ``old``.

    Target rows, ``## X.`` sections and ``- X.`` correctness lines of the parts not run
    come from ``old``; everything else (header, machine, versions, configuration) from
    ``new``, plus a line saying which parts are older and from which run.
    """
    kept = [p for p in PARTS if p not in ran]
    new_pre, new_secs = _sections(new)
    old_pre, old_secs = _sections(old)
    old_by = dict(old_secs)
    old_header = next((ln for ln in old_pre if ln.startswith("`benchmarks/run.py")), "?")
    old_source = next(
        (ln.split("|")[2].strip() for ln in old.splitlines() if "| glassbox source" in ln), "?"
    )
    # Where each kept part's numbers come from: the old file's run, unless that file had
    # kept the part from an even earlier one.
    origin = {
        part: f"{old_header.split(' Method:')[0].rstrip('.')} (glassbox source {old_source})"
        for part in kept
    }
    for line in old_pre:
        if line.startswith("- part ") and ": from " in line:
            parts, source = line[len("- part ") :].split(": from ", 1)
            for part in parts.split(", "):
                if part in origin:
                    origin[part] = source
    by_source: dict[str, list[str]] = {}
    for part in kept:
        by_source.setdefault(origin[part], []).append(part)
    note = [
        _KEPT_PREFIX,
        "",
        *[f"- part {', '.join(parts)}: from {source}" for source, parts in by_source.items()],
        "",
    ]
    while new_pre and not new_pre[-1]:
        new_pre.pop()
    out = [*new_pre, "", *note]
    own_parts = {_part_of(h): (h, body) for h, body in new_secs if _part_of(h)}
    old_parts = {_part_of(h): (h, body) for h, body in old_secs if _part_of(h)}
    placed_parts = False
    for heading, body in new_secs:
        if heading == "## Targets":
            old_rows = [ln for ln in old_by.get(heading, []) if _part_of(ln) in kept]
            rows = [ln for ln in body if _part_of(ln)]
            merged = sorted([*rows, *old_rows], key=lambda ln: PARTS.index(_part_of(ln) or "A"))
            first = next((i for i, ln in enumerate(body) if _part_of(ln)), None)
            if first is None:  # no rows of our own: after the table header
                first = next(i for i, ln in enumerate(body) if ln.startswith("|---")) + 1
            rest = [ln for ln in body[first:] if not _part_of(ln)]
            out += [heading, *body[:first], *merged, *rest]
        elif _part_of(heading):
            if not placed_parts:
                for part in PARTS:
                    if part in own_parts:
                        out += [own_parts[part][0], *own_parts[part][1]]
                    elif part in old_parts:
                        out += [old_parts[part][0], *old_parts[part][1]]
                placed_parts = True
        elif heading == "## Correctness checks":
            old_checks = [ln for ln in old_by.get(heading, []) if _part_of(ln) in kept]
            checks = [ln for ln in body if _part_of(ln)]
            others = [ln for ln in body if ln.startswith("- ") and not _part_of(ln)]
            merged = sorted(
                [*checks, *old_checks], key=lambda ln: PARTS.index(_part_of(ln) or "A")
            )
            out += [heading, "", *merged, *others, ""]
        else:
            out += [heading, *body]
    return "\n".join(out) + "\n"


# -- main ---------------------------------------------------------------------------------------


T = TypeVar("T")


def attempt(report: Report, section: str, run: Callable[[], T]) -> T | None:
    """Run one part; a failure is recorded in the report and the other parts still run."""
    try:
        return run()
    except Exception as exc:
        message = f"{section} failed: {type(exc).__name__}: {exc}"
        log(message)
        report.errors.append(message[:3000])
        return None


def wait_quiet(limit_s: float, window_s: float = 5.0) -> bool:
    """Wait (at most ``limit_s``) for a ``window_s`` in which the machine is quiet."""
    deadline = time.monotonic() + limit_s
    while True:
        before = CpuSample.take(())
        time.sleep(window_s)
        foreign, steal = before.until(CpuSample.take(()))
        if foreign + steal <= DISTURBED_CPUS:
            log(f"machine quiet ({foreign + steal:.2f} CPU used by others)")
            return True
        if time.monotonic() >= deadline:
            log(f"machine still busy ({foreign + steal:.2f} CPU used by others); going on")
            return False
        log(f"waiting for a quiet machine ({foreign + steal:.2f} CPU used by others)")


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 2 minutes)")
    parser.add_argument(
        "--sections", default="ABCD", help="which parts to run, e.g. 'AC' (default ABCD)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file")
    parser.add_argument("--child-inprocess", metavar="VARIANT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="SECONDS",
        help="first wait up to SECONDS for 5 s in which other processes use"
        f" < {DISTURBED_CPUS} CPU",
    )
    parser.add_argument(
        "--merge", action="store_true",
        help="with --sections, keep the other parts' results from the existing --output file"
        " (marked as older there)",
    )
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    sections = set(args.sections.upper())
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    apps = load_apps()
    if args.child_inprocess:  # one isolated variant of part A, for the parent run
        variant = apps.BY_NAME[args.child_inprocess]
        chosen = [
            apps.BY_NAME[name]
            for name in ("bare_starlette", *variant.companions, variant.name)
        ]
        child = asyncio.run(bench_inprocess(chosen, apps, profile))
        args.output.write_text(json.dumps(to_jsonable(child)))
        return 0
    needs_http = sections & {"B", "D"}
    if needs_http and not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk); needed for parts B and D")
        return 2

    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    report = Report(profile=profile, machine=machine_info(), versions=package_versions())
    variants = available_variants(apps, report.notes)
    report.source_before = source_fingerprint()
    started = time.monotonic()
    log(f"{profile.name} run, sections {''.join(sorted(sections))}")
    if "A" in sections:
        report.inprocess = attempt(
            report, "A", lambda: bench_inprocess_all(variants, apps, profile)
        )
    if "B" in sections:
        served = [v for v in variants if v.http]
        report.http = attempt(report, "B", lambda: bench_http(served, profile))
    if "C" in sections:
        report.render = attempt(report, "C", lambda: bench_render(apps, profile))
    if "D" in sections:
        for factory, rounds, load in (
            ("glassbox_scrape", profile.scrape_rounds, "one_route"),
            ("glassbox_scrape", profile.scrape_rounds, "all_series"),
            ("prom_client_scrape", max(2, profile.scrape_rounds // 2), "one_route"),
        ):
            result = attempt(
                report, f"D ({factory}, {load})",
                functools.partial(bench_scrape, factory, rounds, profile, load=load),
            )
            if result is not None:
                report.scrapes.append(result)
    report.seconds = time.monotonic() - started
    report.source_after = source_fingerprint()
    report.versions["glassbox source (sha256 of src/glassbox/**/*.py)"] = (
        report.source_before
        if report.source_before == report.source_after
        else f"{report.source_before} -> {report.source_after} (changed during the run)"
    )
    report.machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    markdown = render_markdown(report, apps)
    if args.merge and args.output.exists() and not set(PARTS) <= sections:
        markdown = merge_results(markdown, args.output.read_text(), sections)
    args.output.write_text(markdown)
    (WORK_DIR / "results.json").write_text(json.dumps(to_jsonable(report), indent=1))
    print()
    print(markdown)
    log(f"wrote {args.output}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
