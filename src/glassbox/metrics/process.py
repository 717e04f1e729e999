"""Process metrics of the service: one process, or several workers behind one ``/metrics``.

One process uses prometheus_client's ``ProcessCollector``. With several workers each
worker adds its own values to the snapshot it writes (see ``multiprocess.py``), and the
scrape combines the live workers' values without a ``pid`` label, so the series stay the
same while workers come and go (gunicorn's ``max_requests``, crashes):

- ``process_resident_memory_bytes``: the sum; a container's memory limit holds for all
  workers together, so the sum is what gets compared with ``process_memory_limit_bytes``.
- ``process_cpu_seconds_total``: the sum, dead workers' seconds kept up to their last
  flush, so the counter never goes down (a drop would read as a reset to ``rate()``).
- ``process_open_fds``: the largest; ``process_max_fds``: the smallest. The limit is per
  process, so the fullest worker is the one at risk.
- ``process_start_time_seconds``: the latest, that of the youngest worker, so a worker
  restart shows as a change.

Dead workers' gauges are dropped. The master process (gunicorn's arbiter, uvicorn's
supervisor) serves no requests and is not counted.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator
from typing import Any

from glassbox.metrics.catalogue import PROCESS_MEMORY_LIMIT

__all__ = ["MemoryLimitCollector", "worker_families"]


def _family(kind: str, help: str, value: float, mode: str | None = None) -> dict[str, Any]:
    """One metric in the snapshot format of ``multiprocess.snapshot``."""
    return {
        "type": kind,
        "help": help,
        "labels": [],
        "mode": mode,
        "buckets": [],
        "values": [[[], [value]]],
    }


def worker_families() -> dict[str, dict[str, Any]]:
    """This process's resource use, as snapshot families merged across workers."""
    import psutil

    proc = psutil.Process()
    with proc.oneshot():
        rss = proc.memory_info().rss
        cpu = proc.cpu_times()
        created = proc.create_time()
        fds = proc.num_fds()
    out = {
        "process_resident_memory_bytes": _family(
            "gauge", "Resident memory size in bytes, summed over the live workers.", rss, "sum"
        ),
        "process_cpu_seconds_total": _family(
            "counter", "Total user and system CPU time of all workers in seconds.",
            cpu.user + cpu.system,
        ),
        "process_open_fds": _family(
            "gauge", "Open file descriptors of the worker with the most.", fds, "max"
        ),
        "process_start_time_seconds": _family(
            "gauge", "Start time of the youngest worker since unix epoch in seconds.",
            created, "max",
        ),
    }  # fmt: skip
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        out["process_max_fds"] = _family(
            "gauge", "Maximum number of open file descriptors (the lowest worker limit).",
            soft, "min",
        )  # fmt: skip
    return out


class MemoryLimitCollector:
    """``process_memory_limit_bytes``: the cgroup (container) memory limit, when one is set.

    Read at every scrape (the limit can be changed on a live container); nothing is
    exposed without a limit, so ``rss / limit`` is never computed against "unlimited".
    """

    def __init__(self, read: Callable[[], int | None] | None = None) -> None:
        if read is None:
            from glassbox.health.checks.system import cgroup_memory_limit

            read = cgroup_memory_limit
        self._read = read

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        limit = self._read()
        if limit is not None:
            yield GaugeMetricFamily(PROCESS_MEMORY_LIMIT.name, PROCESS_MEMORY_LIMIT.help, limit)
