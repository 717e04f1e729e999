"""Process metrics in one process: prometheus_client's, plus the cgroup memory limit."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette

import glassbox
from glassbox.health.checks.system import cgroup_memory_limit
from glassbox.metrics.process import MemoryLimitCollector, worker_families
from tests.metrics.helpers import parse, value


def test_memory_limit_is_exposed_only_when_set(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "self-cgroup"
    (root / "app").mkdir(parents=True)
    proc.write_text("0::/app\n")
    limit_file = root / "app" / "memory.max"
    limit_file.write_text("1073741824\n")
    registry = glassbox.Registry()
    registry.register_collector(MemoryLimitCollector(lambda: cgroup_memory_limit(root, proc)))
    assert value(parse(registry.render()), "process_memory_limit_bytes") == 1 << 30
    limit_file.write_text("max\n")  # read at each scrape: a lifted limit disappears
    assert "process_memory_limit_bytes" not in registry.render()


def test_instrument_adds_process_metrics_and_the_machines_memory_limit() -> None:
    registry = glassbox.Registry()
    glassbox.instrument(Starlette(), service="svc", registry=registry, logs=False)
    samples = parse(registry.render())
    assert (value(samples, "process_resident_memory_bytes") or 0) > 0
    assert value(samples, "process_memory_limit_bytes") == cgroup_memory_limit()


def test_worker_families_describe_this_process() -> None:
    import os

    import psutil

    families = worker_families()
    me = psutil.Process(os.getpid())
    assert families["process_open_fds"]["values"][0][1][0] > 0
    assert families["process_start_time_seconds"]["values"][0][1][0] == me.create_time()
    assert families["process_cpu_seconds_total"]["type"] == "counter"
    modes = {name: fam["mode"] for name, fam in families.items()}
    assert modes["process_resident_memory_bytes"] == "sum"
    assert modes["process_open_fds"] == "max"
