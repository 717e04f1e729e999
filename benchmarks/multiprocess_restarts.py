"""Scrape time and directory size after 1,000 worker restarts (multiprocess mode).

Each "restart" leaves what a dead worker leaves: its snapshot file under its real,
now-dead PID (real short-lived processes are started to get them). The first scrape
folds them into ``archive.json``; later scrapes read one file per live worker plus the
archive. prometheus_client's multiprocess mode, for comparison, keeps one file per dead
worker and reads all of them on every scrape (client_python#275, #367).

Usage: .venv/bin/python benchmarks/multiprocess_restarts.py [--restarts 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import glassbox
from glassbox.metrics.catalogue import red_catalogue
from glassbox.metrics.multiprocess import MultiprocessExposition, snapshot


def worker_snapshot() -> dict[str, object]:
    registry = glassbox.Registry()
    store = registry.red_store(red_catalogue())
    for route in range(20):
        for status in ("200", "404", "500"):
            store.observe("GET", f"/r{route}/{{id}}", status, 0.01)
    registry.counter("jobs", "Jobs.").inc(5)
    return snapshot(registry)


def dir_size(path: Path) -> tuple[int, int]:
    files = list(path.iterdir())
    return len(files), sum(f.stat().st_size for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--restarts", type=int, default=1000)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="glassbox-mp-bench-"))
    data = worker_snapshot()
    pids = []
    for _ in range(args.restarts):
        proc = subprocess.Popen(["true"])
        proc.wait()
        pids.append(proc.pid)
    for pid in pids:
        (directory / f"worker-{pid}.json").write_text(
            json.dumps({**data, "pid": pid, "start": "1"})
        )
    files_before, bytes_before = dir_size(directory)

    live = glassbox.Registry()
    exposition = MultiprocessExposition(live, directory, flush_interval=3600)
    t0 = time.perf_counter()
    exposition.render(False)
    first = time.perf_counter() - t0
    steady = []
    for _ in range(20):
        t0 = time.perf_counter()
        exposition.render(False)
        steady.append(time.perf_counter() - t0)
    files_after, bytes_after = dir_size(directory)
    rows = [
        (
            "dead worker snapshots before the first scrape",
            f"{files_before} files, {bytes_before / 1e6:.2f} MB",
        ),
        ("first scrape (folds them into the archive)", f"{first * 1000:.1f} ms"),
        ("directory after it", f"{files_after} files, {bytes_after / 1e3:.1f} kB"),
        ("later scrapes, median of 20", f"{statistics.median(steady) * 1000:.2f} ms"),
    ]
    print(f"# Multiprocess: {args.restarts} worker restarts\n")
    print("| | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
