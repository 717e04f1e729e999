"""`glassbox up` readiness, persistence across restarts, and the demo's time to notify.

    .venv/bin/python benchmarks/local_stack.py [--rounds 5] [--demo] [--output FILE]

A. Time from `LocalStack.start()` to Prometheus and Alertmanager both answering
   `/-/ready` (goal: within 5 s), cold (empty data directory) and warm (restarted on
   the data of the previous round), against the floor measured in the same run: the
   same two binaries started directly with minimal flags, polled the same way.
B. Persistence: samples scraped before a stop are answered after the restart.
C. With --demo: `glassbox demo`'s time from each fault to its first notification
   (goal: the first notification within 90 s of the start).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from glassbox.local.stack import LocalPorts, LocalStack, find_binary  # noqa: E402

CONFIG = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "shop"
targets = ["127.0.0.1:9"]

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def floor_round(workdir: Path) -> float:
    """The two binaries alone, started directly and polled until both are ready."""
    p, a = free_port(), free_port()
    cfg = workdir / "floor-prometheus.yml"
    cfg.write_text("global: {scrape_interval: 1s}\n")
    am = workdir / "floor-alertmanager.yml"
    am.write_text("route: {receiver: x}\nreceivers: [{name: x}]\n")
    began = time.monotonic()
    procs = [
        subprocess.Popen(
            [find_binary("prometheus"), f"--config.file={cfg}",
             f"--storage.tsdb.path={workdir / 'floor-data'}",
             f"--web.listen-address=127.0.0.1:{p}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [find_binary("alertmanager"), f"--config.file={am}",
             f"--storage.path={workdir / 'floor-am'}", f"--web.listen-address=127.0.0.1:{a}",
             "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    try:
        pending = {f"http://127.0.0.1:{p}/-/ready", f"http://127.0.0.1:{a}/-/ready"}
        deadline = began + 60
        while pending and time.monotonic() < deadline:
            pending = {u for u in pending if not ready(u)}
            if pending:
                time.sleep(0.05)
        return time.monotonic() - began
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def glassbox_round(workdir: Path) -> tuple[float, float]:
    """(seconds from start() to both ready, of which building and writing files)."""
    config = workdir / "glassbox.toml"
    config.write_text(CONFIG)
    stack = LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0), real_receivers=True)
    began = time.monotonic()
    ready_at = stack.start(watch=False)
    total = time.monotonic() - began
    stack.stop()
    return total, total - max(ready_at.values())


def persistence(workdir: Path) -> tuple[bool, float]:
    """Whether samples from before a restart are answered after it, and the restart time."""
    config = workdir / "glassbox.toml"
    config.write_text(CONFIG)
    first = LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0), real_receivers=True)
    first.start(watch=False)
    deadline = time.monotonic() + 30
    query = 'up{job="prometheus"}'
    while time.monotonic() < deadline:
        body = httpx.get(f"{first.prometheus_url}/api/v1/query", params={"query": query}).json()
        if body["data"]["result"]:
            break
        time.sleep(0.2)
    seen = time.time()
    first.stop()
    second = LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0), real_receivers=True)
    began = time.monotonic()
    second.start(watch=False)
    restart = time.monotonic() - began
    body = httpx.get(
        f"{second.prometheus_url}/api/v1/query", params={"query": f"{query}[30s]", "time": seen}
    ).json()
    second.stop()
    return bool(body["data"]["result"]), restart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--demo", action="store_true", help="also run the demo (75 s)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    lines = [
        "# glassbox up: readiness, persistence, time to notify",
        "",
        f"`benchmarks/local_stack.py --rounds {args.rounds}{' --demo' if args.demo else ''}`,"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Method: the docstring of"
        " `benchmarks/local_stack.py`.",
        "",
    ]
    floor, cold, warm, build = [], [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            floor.append(floor_round(Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            total, files = glassbox_round(Path(tmp))
            cold.append(total)
            build.append(files)
            warm.append(glassbox_round(Path(tmp))[0])

    def show(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s ({min(values):.2f}..{max(values):.2f})"

    ratio = statistics.median(cold) / statistics.median(floor)
    verdict = "PASS" if statistics.median(cold) <= 5 else "MISS"
    lines += [
        "## A. Ready (Prometheus and Alertmanager answering /-/ready)",
        "",
        "| variant | median (min..max) over rounds |",
        "|---|---|",
        f"| floor: the two binaries started directly | {show(floor)} |",
        f"| glassbox up, cold (empty data directory) | {show(cold)} |",
        f"| glassbox up, warm (restart on existing data) | {show(warm)} |",
        f"| of which building monitoring/ and the runtime files (cold) | {show(build)} |",
        "",
        f"Goal: ready within 5 s: **{verdict}** (cold median {statistics.median(cold):.2f} s,"
        f" {ratio:.2f}x the floor). For comparison, docker-otel-lgtm users report 35-40 s"
        " (its issues #148, #330); not measured here (no Docker images on this machine).",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        kept, restart = persistence(Path(tmp))
    lines += [
        "## B. Data across a restart",
        "",
        f"Samples scraped before `stop()` answered after the restart: **{'yes' if kept else 'NO'}**"
        f" (restart to ready: {restart:.2f} s).",
        "",
    ]
    if args.demo:
        from glassbox.demo.run import run_demo

        began = time.monotonic()
        results = run_demo(75, say=lambda _: None)
        took = time.monotonic() - began
        lines += [
            "## C. The demo: time from fault to first notification",
            "",
            "| fault | alert | first notification | per receiver (firing) | resolved |",
            "|---|---|---|---|---|",
        ]
        for r in results:
            first = r.time_to_notify
            lines.append(
                f"| {r.fault.name} | {r.fault.alert} |"
                f" {f'{first:.1f} s' if first is not None else 'none'} |"
                f" {', '.join(f'{k} {v:.1f} s' for k, v in sorted(r.notified.items())) or '-'} |"
                f" {', '.join(f'{k} {v:.1f} s' for k, v in sorted(r.resolved.items())) or '-'} |"
            )
        notified = [r for r in results if r.notified]
        first_abs = (
            min(r.fault.start + (r.time_to_notify or 0) for r in notified) if notified else None
        )
        lines += [
            "",
            f"First notification {first_abs:.1f} s after the timeline started (goal: within"
            f" 90 s of `glassbox demo` starting); the whole demo took {took:.0f} s."
            if first_abs is not None
            else "No notification arrived.",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    if shutil.which("prometheus") is None:
        sys.exit("install Prometheus and Alertmanager first: ./scripts/setup.sh dev")
    main()
