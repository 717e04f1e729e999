"""The local console: a dashboard over 24 hours of 15-second data, interactive within 1 s.

    .venv/bin/python benchmarks/console.py [--rounds 10] [--output FILE]
        [--dashboard glassbox-shop-overview] [--range 24h]

Setup (once): 24 hours of samples at a 15 s interval for one instrumented service
(8 routes, their status codes, a latency histogram with glassbox's default buckets,
requests in progress, up, service_info, two health checks, exceptions) are written as
OpenMetrics and backfilled with ``promtool tsdb create-blocks-from openmetrics`` into
the data directory of a real Prometheus that ``LocalStack`` then starts (the data
ends at the start). The benchmark waits for Prometheus's first compaction of the
backfilled 2-hour blocks, as a Prometheus that has been running for a day would have.
The console is served by uvicorn on 127.0.0.1 in a process of its own (as ``glassbox
up`` would serve it; not in the process that drives the browser); Debian's chromium
(headless, through Playwright) opens the dashboard with the range picker on 24h.

Each round opens a fresh browser context (empty cache) and measures, from navigation
start, the page's own marker ``window.__glassbox.firstReadyMs``: set once every panel
of the first load has its data and is drawn (uPlot charts built, stat values set).
Floors measured in the same run, each over the same rounds:

* raw query_range: the exact queries the console sends (taken from its panel API
  answers: same start, end, step and expanded PromQL), sent straight to Prometheus all
  at once, as the page does, over one HTTP/1.1 connection each; wall clock;
* console API: the panel API calls the page makes, from Python, all at once;
* the same panel API calls fetched again by the page once it is loaded and idle
  (so without the page's own start-up competing for the two cores).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from glassbox.console.app import (  # noqa: E402
    UPLOT_FILES,
    UPLOT_VERSION,
    create_console,
    default_assets_dir,
)
from glassbox.local.stack import LocalPorts, LocalStack  # noqa: E402
from glassbox.metrics.catalogue import DEFAULT_BUCKETS, le_label  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONFIG = """\
[prometheus]
scrape_interval = "15s"
evaluation_interval = "15s"

[[services]]
name = "shop"
targets = ["{target}"]

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"""
STEP = 15
#: (method, route, requests per second at the daily peak)
ROUTES = (
    ("GET", "/api/items/{item_id}", 12.0),
    ("GET", "/api/search", 6.0),
    ("GET", "/api/users/{user_id}", 5.0),
    ("GET", "/api/cart", 4.0),
    ("POST", "/api/orders", 3.0),
    ("POST", "/api/cart/items", 2.0),
    ("GET", "/", 0.5),
    ("GET", "/health/ready", 0.2),
)


def write_openmetrics(path: Path, target: str, end: int, hours: float) -> int:
    """24 h (``hours``) of 15 s samples ending at ``end``; returns the sample count."""
    steps = int(hours * 3600 / STEP)
    start = end - steps * STEP
    base = f'instance="{target}",job="shop",service="shop"'
    buckets = [*DEFAULT_BUCKETS, math.inf]
    # cumulative share of requests at or below each bucket, per route (a log-normal-ish)
    shares = []
    for index, (_, _, _) in enumerate(ROUTES):
        median = 0.01 * (1 + index)
        shares.append([1 - math.exp(-((b / median) ** 1.2)) if b != math.inf else 1.0
                       for b in buckets])  # fmt: skip
    families: dict[str, list[str]] = {}
    counters: dict[str, float] = {}
    samples = 0

    def add(name: str, labels: str, value: float, ts: int) -> None:
        nonlocal samples
        families.setdefault(name, []).append(f"{name}{{{labels}}} {value:.6g} {ts}")
        samples += 1

    for i in range(steps + 1):
        ts = start + i * STEP
        day = 0.55 + 0.45 * math.sin(2 * math.pi * (ts % 86400) / 86400)  # the daily cycle
        in_progress = 0.0
        for index, (method, route, peak) in enumerate(ROUTES):
            rate = peak * day * (1 + 0.1 * math.sin(i / 7 + index))
            errors = 0.002 + (0.05 if 3000 < i % 5760 < 3040 and index == 4 else 0.0)
            labels = f'{base},method="{method}",route="{route}"'
            for status, share in (("200", 1 - errors - 0.01), ("404", 0.01), ("500", errors)):
                key = f"{labels},status={status}"
                counters[key] = counters.get(key, 0.0) + rate * share * STEP
                add("http_requests_total", f'{labels},status="{status}"', counters[key], ts)
            key = f"exc{labels}"
            counters[key] = counters.get(key, 0.0) + rate * errors * STEP
            add("http_exceptions_total", f'{labels},exception="RuntimeError"', counters[key], ts)
            count_key = f"count{labels}"
            counters[count_key] = counters.get(count_key, 0.0) + rate * STEP
            for bucket, share in zip(buckets, shares[index], strict=True):
                le = "+Inf" if bucket == math.inf else le_label(bucket)
                add("http_request_duration_seconds_bucket", f'{labels},le="{le}"',
                    round(counters[count_key] * share), ts)  # fmt: skip
            add("http_request_duration_seconds_count", labels, round(counters[count_key]), ts)
            in_progress += rate * 0.02 * (index + 1)
        add("http_requests_in_progress", base, round(in_progress), ts)
        add("up", base, 1, ts)
        add("service_info", f'{base},env="bench",version="1.0.0"', 1, ts)
        add("health_check_status", f'{base},check="redis"', 1, ts)
        add("health_check_status", f'{base},check="postgres"', 1 if i % 2000 > 20 else 0.5, ts)
    with path.open("w") as out:
        for name in sorted(families):
            out.write("\n".join(families[name]))
            out.write("\n")
        out.write("# EOF\n")
    return samples


def prom_value(prometheus: str, expr: str) -> float | None:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_for_compaction(prometheus: str, timeout: float) -> str:
    """Wait until Prometheus has compacted the backfilled blocks (or ``timeout``)."""
    began = time.monotonic()
    first = None
    while time.monotonic() - began < timeout:
        loaded = prom_value(prometheus, "prometheus_tsdb_blocks_loaded")
        compactions = prom_value(prometheus, "prometheus_tsdb_compactions_total") or 0
        running = prom_value(prometheus, "prometheus_tsdb_compactions_running") or 0
        if first is None and loaded is not None:
            first = loaded
        if loaded is not None and compactions > 0 and not running and first and loaded < first:
            return (
                f"{int(first)} backfilled blocks compacted to {int(loaded)} after"
                f" {time.monotonic() - began:.0f} s"
            )
        time.sleep(2)
    return f"not compacted within {timeout:.0f} s ({first} blocks): measured on the 2-hour blocks"


async def floor_raw(prometheus: str, calls: list[dict[str, Any]]) -> float:
    """Every query_range at once, straight to Prometheus; wall-clock seconds."""
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        began = time.perf_counter()
        answers = await asyncio.gather(
            *(client.get(f"{prometheus}/api/v1/query_range", params=c) for c in calls)
        )
        took = time.perf_counter() - began
    for answer in answers:
        assert answer.status_code == 200, answer.text
    return took


async def floor_api(console: str, urls: list[str]) -> float:
    """The page's panel API calls, all at once, from Python; wall-clock seconds."""
    limits = httpx.Limits(max_connections=len(urls), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        began = time.perf_counter()
        answers = await asyncio.gather(*(client.get(url) for url in urls))
        took = time.perf_counter() - began
    for answer in answers:
        assert answer.status_code == 200, answer.text
    return took


def show(values: list[float], unit: str = "ms") -> str:
    return f"{statistics.median(values):.0f} {unit} ({min(values):.0f}..{max(values):.0f})"


def measure(browser: Any, console: str, prometheus: str, uid: str, range_: str,
            rounds: int) -> dict[str, Any]:  # fmt: skip
    """Open the dashboard ``rounds + 1`` times (the first warms up); figures per round."""
    url = f"{console}/dashboards/{uid}?range={range_}&refresh=off"
    out: dict[str, Any] = {
        "ready": [], "dom": [], "spec": [], "request": [], "data": [], "raw": [], "api": [],
        "fetch": [], "draw": [],
    }  # fmt: skip
    for round_ in range(rounds + 1):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        responses: list[Any] = []
        page.on(
            "response", lambda r, seen=responses: seen.append(r) if "/panels/" in r.url else None
        )
        page.goto(url)
        page.wait_for_function(
            "() => window.__glassbox && window.__glassbox.firstReadyMs", timeout=30_000
        )
        info = page.evaluate("() => window.__glassbox")
        dom = page.evaluate(
            "() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
        )
        if errors:
            raise RuntimeError(f"page errors: {errors}")
        answers = [r.json() for r in responses]
        panel_urls = [r.url for r in responses]
        calls = [
            {"query": q["expr"], "start": a["start"], "end": a["end"], "step": a["step"]}
            for a in answers
            for q in a["queries"]
        ]
        if round_ == 0:
            out["points"] = sum(
                sum(v is not None for v in s["values"]) for a in answers for s in a["series"]
            )
            out["series"] = sum(len(a["series"]) for a in answers)
            out["panels"], out["charts"] = info["panels"], info["charts"]
            out["calls"] = len(calls)
            out["steps"] = sorted({a["step"] for a in answers})
            if rounds and out["points"] == 0:
                raise RuntimeError(f"{uid} has no data: the backfill failed")
        else:
            out["ready"].append(info["firstReadyMs"])
            out["dom"].append(dom)
            out["spec"].append(info["specMs"])
            out["request"].append(info["firstRequestMs"])
            out["data"].append(info["firstDataMs"])
            out["draw"].append(info.get("drawMs", 0.0))
            # Playwright's sync API owns this thread's event loop: floors run in another
            with ThreadPoolExecutor(1) as pool:
                raw = pool.submit(asyncio.run, floor_raw(prometheus, calls)).result()
                api = pool.submit(asyncio.run, floor_api(console, panel_urls)).result()
            out["raw"].append(raw * 1e3)
            out["api"].append(api * 1e3)
            out["fetch"].append(
                page.evaluate(
                    """async (urls) => {
                        const began = performance.now();
                        await Promise.all(urls.map((u) => fetch(u).then((r) => r.json())));
                        return performance.now() - began;
                    }""",
                    panel_urls,
                )
            )
            if round_ == 1:
                shots = ROOT / "benchmarks" / ".work"
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / f"console-{uid}-{range_}.png"), full_page=True)
        context.close()
    return out


def serve(prometheus: str, alertmanager: str, config_path: Path, port: int) -> None:
    """The console in its own process, as ``glassbox up`` serves it (not beside Playwright)."""
    import uvicorn

    from glassbox.stack.config import load_config

    config = load_config(config_path)
    out = Path(config.output)
    out = out if out.is_absolute() else config_path.parent / out
    app = create_console(
        prometheus_url=prometheus,
        alertmanager_url=alertmanager,
        inbox=None,
        store=None,
        dashboards_dir=out / "grafana" / "dashboards",
        config=config,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_console(stack: LocalStack) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", stack.prometheus_url, stack.alertmanager_url,
         str(stack.config_path), str(port)],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/dashboards", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("the console did not start")


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--dashboard",
        action="append",
        default=None,
        help="dashboard uid (repeatable; default: the shop's overview and per-route boards)",
    )
    parser.add_argument("--range", default="24h")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    boards = args.dashboard or ["glassbox-shop-overview", "glassbox-shop-routes"]
    if not all((default_assets_dir() / name).is_file() for name in UPLOT_FILES):
        sys.exit("uPlot is missing: run scripts/console-assets.sh first")
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        target = "127.0.0.1:9"  # nothing listens: all the data is the backfilled day
        config = work / "glassbox.toml"
        config.write_text(CONFIG.format(target=target))
        stack = LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0), real_receivers=True)
        data = stack.data_dir / "prometheus"
        data.mkdir(parents=True)
        began = time.monotonic()
        samples = write_openmetrics(work / "day.om", target, int(time.time()), args.hours)
        generated = time.monotonic() - began
        began = time.monotonic()
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet",
             str(work / "day.om"), str(data)],
            check=True,
        )  # fmt: skip
        backfilled = time.monotonic() - began
        (work / "day.om").unlink()
        stack.start(watch=False)
        server = None
        try:
            compaction = wait_for_compaction(stack.prometheus_url, 150)
            server, console = start_console(stack)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    for uid in boards:
                        results[uid] = measure(
                            browser, console, stack.prometheus_url, uid, args.range, args.rounds
                        )
                finally:
                    browser.close()
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
            stack.stop()

    cpu = platform.processor() or platform.machine()
    lines = [
        "# The local console: time to an interactive dashboard",
        "",
        f"`benchmarks/console.py --rounds {args.rounds} --range {args.range}`"
        f" ({', '.join(boards)}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())};"
        f" {cpu}, 2 cores; Debian chromium headless (1400x1000), uPlot {UPLOT_VERSION},"
        " Prometheus from Debian, all on loopback. Method: the docstring of"
        " `benchmarks/console.py`.",
        "",
        f"Data: {samples:,} samples ({args.hours:g} h at 15 s, one service) backfilled in"
        f" {backfilled:.1f} s (generated in {generated:.1f} s); {compaction}.",
        "",
    ]
    verdicts = []
    for uid, r in results.items():
        median = statistics.median(r["ready"])
        verdicts.append(median <= 1000)
        steps = ", ".join(f"{s:g}" for s in r["steps"])
        lines += [
            f"## {uid}, last {args.range}",
            "",
            f"{r['panels']} panels ({r['charts']} uPlot charts), {r['calls']} query_range calls"
            f" at {steps} s steps (by panel width), {r['series']} series,"
            f" {r['points']:,} points drawn.",
            "",
            "| measured over rounds | median (min..max) |",
            "|---|---|",
            f"| **dashboard interactive**: navigation start to every panel drawn"
            f" | {show(r['ready'])} |",
            f"| stages: HTML shell and scripts run (DOMContentLoaded) | {show(r['dom'])} |",
            f"| stages: the dashboard's definition fetched | {show(r['spec'])} |",
            f"| stages: the panel requests sent (layout built) | {show(r['request'])} |",
            f"| stages: the last panel's data arrived | {show(r['data'])} |",
            f"| floor: the raw query_range calls, all at once, straight to Prometheus"
            f" | {show(r['raw'])} |",
            f"| the console's panel API calls alone, all at once, from Python | {show(r['api'])} |",
            f"| the same panel API calls fetched again by the loaded, idle page"
            f" | {show(r['fetch'])} |",
            "",
            f"Goal: interactive within 1 s: **{'PASS' if median <= 1000 else 'MISS'}**"
            f" (median {median:.0f} ms, {median / statistics.median(r['raw']):.1f}x the"
            " raw-query floor).",
            "",
            f"Where the time goes (medians): the page's start-up (HTML, stylesheets, uPlot and"
            f" the page script) until {statistics.median(r['dom']):.0f} ms, the dashboard's"
            f" definition until {statistics.median(r['spec']):.0f} ms, then"
            f" {statistics.median(r['data']) - statistics.median(r['request']):.0f} ms for"
            " the panel calls during the first load, against"
            f" {statistics.median(r['fetch']):.0f} ms for the same calls fetched by the idle"
            f" page and {statistics.median(r['api']):.0f} ms from Python: during the first"
            " load, most likely, Chromium's own start-up and layout share the machine's two"
            " cores with Prometheus's queries (not isolated further). Drawing every panel"
            " (uPlot charts, stat values) took"
            f" {statistics.median(r['draw']):.0f} ms in all.",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    if not all(verdicts):
        sys.exit(1)


if __name__ == "__main__":
    main()
