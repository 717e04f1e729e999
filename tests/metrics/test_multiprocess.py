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
    env = {"PYTHONPATH": str(ROOT)}
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
