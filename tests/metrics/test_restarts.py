"""1,000 dead workers later: the directory and the totals stay right (client_python#275)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import glassbox
from glassbox.metrics.multiprocess import MultiprocessExposition, snapshot
from tests.metrics.helpers import parse, value


def _dead_pids(n: int) -> list[int]:
    pids = []
    for _ in range(n):
        proc = subprocess.Popen(["true"])
        proc.wait()
        pids.append(proc.pid)
    return pids


def test_thousand_dead_workers_fold_into_one_archive(tmp_path: Path) -> None:
    worker = glassbox.Registry()
    jobs = worker.counter("jobs", "Jobs.")
    busy = worker.gauge("busy", "Busy.", mode="sum")
    jobs.inc(2)
    busy.set(5)
    data = snapshot(worker)
    directory = tmp_path / "mp"
    directory.mkdir()
    pids = _dead_pids(1000)
    for pid in pids:
        (directory / f"worker-{pid}.json").write_text(
            json.dumps({**data, "pid": pid, "start": "1"})
        )

    live = glassbox.Registry()
    live.counter("jobs", "Jobs.").inc(1)
    exposition = MultiprocessExposition(live, directory, flush_interval=3600)
    t0 = time.perf_counter()
    first = parse(exposition.render(False))
    first_scrape = time.perf_counter() - t0
    assert value(first, "jobs_total") == 2 * 1000 + 1
    assert value(first, "busy") is None  # dead workers' gauges are dropped
    files = sorted(p.name for p in directory.glob("*.json"))
    assert files == ["archive.json", f"worker-{exposition.path.stem[7:]}.json"]

    t0 = time.perf_counter()
    again = parse(exposition.render(False))
    steady_scrape = time.perf_counter() - t0
    assert value(again, "jobs_total") == 2001
    assert (directory / "archive.json").stat().st_size < 200_000
    # scrape cost no longer depends on how many workers ever died
    assert steady_scrape < max(first_scrape, 0.05)
