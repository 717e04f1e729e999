"""Several real worker processes (gunicorn, uvicorn --workers): one correct total."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, port_open, wait_for
from tests.metrics.helpers import parse, series_of, value

ROOT = Path(__file__).resolve().parents[2]
# this tree's sources, not whichever glassbox the interpreter has installed
PYTHONPATH = os.pathsep.join((str(ROOT / "src"), str(ROOT)))
pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _send(port: int, n: int) -> set[str]:
    pids = set()
    for i in range(n):
        # a new connection each time, so requests spread over the workers
        r = httpx.get(f"http://127.0.0.1:{port}/items/{i}", headers={"connection": "close"})
        assert r.status_code == 200
        pids.add(r.text)
    return pids


def _scrape(port: int) -> dict:  # type: ignore[type-arg]
    return parse(httpx.get(f"http://127.0.0.1:{port}/metrics").text)


def _total(port: int) -> float:
    samples = _scrape(port)
    return (
        value(samples, "http_requests_total", method="GET", route="/items/{item_id}", status="200")
        or 0
    )


def _start(cmd: list[str], env: dict[str, str], processes: list) -> subprocess.Popen[bytes]:  # type: ignore[type-arg]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    processes.append(proc)
    return proc


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_workers_report_correct_totals_and_keep_killed_workers_counts(
    server: str,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    port = free_port()
    workers = 3
    env = {"PYTHONPATH": PYTHONPATH}
    if server == "gunicorn":
        # explicit directory; the uvicorn case relies on auto-detection
        env["GLASSBOX_MULTIPROCESS_DIR"] = str(tmp_path / "mp")
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "tests.metrics.mp_app:app",
            "-w",
            str(workers),
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-b",
            f"127.0.0.1:{port}",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.metrics.mp_app:app",
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ]
    master = _start(cmd, env, processes)
    wait_for(lambda: port_open(port), 30, f"{server} to listen")
    wait_for(lambda: len(_children(master.pid)) >= workers, 30, "workers to start")

    served_by = _send(port, 150)
    assert len(served_by) >= 2, "requests should reach several workers"
    wait_for(lambda: _total(port) == 150, 10, "all workers' counts to reach /metrics")
    samples = _scrape(port)
    assert value(samples, "jobs_total") == 150

    directory = (
        tmp_path / "mp" if server == "gunicorn" else Path("/tmp") / f"glassbox-mp-{master.pid}"
    )
    victim = int(sorted(served_by)[0])
    wait_for((directory / f"worker-{victim}.json").exists, 10, "victim's snapshot")
    wait_for(
        lambda: any(s.get("pid") == str(victim) for s in series_of(_scrape(port), "worker_up")),
        10,
        "victim's gauge",
    )
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in _children(master.pid), 10, "the killed worker to go")

    # counts survive the kill; the dead worker's gauge is gone
    wait_for(
        lambda: not any(s.get("pid") == str(victim) for s in series_of(_scrape(port), "worker_up")),
        10,
        "dead worker's gauge to be dropped",
    )
    assert _total(port) == 150
    _send(port, 50)
    wait_for(lambda: _total(port) == 200, 10, "new requests to be counted")
    files = sorted(p.name for p in directory.glob("*.json"))
    assert f"worker-{victim}.json" not in files
    assert "archive.json" in files
    assert len(files) <= workers + 1


def _rss_sum(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def _matches_live_workers(port: int, master: int) -> bool:
    """Reported RSS within 10 % of the live workers' sum, start time the youngest's."""
    import psutil

    live = _children(master)
    samples = _scrape(port)
    rss = value(samples, "process_resident_memory_bytes") or 0
    started = value(samples, "process_start_time_seconds") or 0
    youngest = max(psutil.Process(p).create_time() for p in live)
    return abs(rss - _rss_sum(live)) < 0.1 * _rss_sum(live) and abs(started - youngest) < 0.05


def test_workers_expose_process_metrics_of_the_live_workers(
    processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from glassbox.health.checks.system import cgroup_memory_limit

    port, workers = free_port(), 2
    cmd = [
        sys.executable, "-m", "gunicorn", "tests.metrics.mp_process_app:app",
        "-w", str(workers), "-k", "uvicorn.workers.UvicornWorker", "-b", f"127.0.0.1:{port}",
    ]  # fmt: skip
    env = {"PYTHONPATH": PYTHONPATH, "GLASSBOX_MULTIPROCESS_DIR": str(tmp_path / "mp")}
    master = _start(cmd, env, processes)
    wait_for(lambda: port_open(port), 30, "gunicorn to listen")
    wait_for(lambda: len(_children(master.pid)) >= workers, 30, "workers to start")
    wait_for(
        lambda: len(list((tmp_path / "mp").glob("worker-*.json"))) >= workers,
        30,
        "every worker's snapshot",
    )
    wait_for(lambda: _matches_live_workers(port, master.pid), 15, "RSS summed over the workers")
    samples = _scrape(port)
    assert (value(samples, "process_open_fds") or 0) > 0
    assert (value(samples, "process_max_fds") or 0) >= (value(samples, "process_open_fds") or 0)
    assert value(samples, "process_memory_limit_bytes") == cgroup_memory_limit()
    assert ("python_info", frozenset()) not in samples  # python_info carries labels
    assert any(name == "python_info" for name, _ in samples)
    cpu_before = value(samples, "process_cpu_seconds_total") or 0
    assert cpu_before > 0

    victim = _children(master.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in _children(master.pid), 10, "the killed worker to go")
    # the dead worker's memory and start time leave the totals; its CPU seconds stay
    wait_for(lambda: _matches_live_workers(port, master.pid), 30, "dead worker dropped")
    assert (value(_scrape(port), "process_cpu_seconds_total") or 0) >= cpu_before
