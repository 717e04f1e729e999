"""`glassbox up` as a command: prints its URLs, and SIGTERM stops every child."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.conftest import free_port, wait_for
from tests.local.conftest import needs_stack

pytestmark = needs_stack

CONFIG = """\
[[services]]
name = "shop"
targets = ["127.0.0.1:9"]

[[receivers]]
name = "team-slack"
kind = "slack"
api_url = { env = "NOT_NEEDED_WITH_THE_INBOX" }
"""


def children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_up_prints_urls_and_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "glassbox.toml").write_text(CONFIG)
    ports = [free_port() for _ in range(5)]
    log = tmp_path / "up.log"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "glassbox", "up", "-c", "glassbox.toml",
            "--prometheus-port", str(ports[0]), "--alertmanager-port", str(ports[1]),
            "--inbox-port", str(ports[2]), "--smtp-port", str(ports[3]),
            "--console-port", str(ports[4]),
        ],
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: "Ctrl-C stops everything" in log.read_text(), 30, "glassbox up ready")
        text = log.read_text()
        assert f"Prometheus    http://127.0.0.1:{ports[0]}" in text
        assert f"Alertmanager  http://127.0.0.1:{ports[1]}" in text
        assert f"inbox         http://127.0.0.1:{ports[2]}/api/deliveries" in text
        assert f"console       http://127.0.0.1:{ports[4]}" in text
        assert httpx.get(f"http://127.0.0.1:{ports[4]}/", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/-/ready", timeout=5).status_code == 200
        children = children_of(proc.pid)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "prometheus" in names
        assert "alertmanager" in names
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "stopping" in log.read_text()
        for child in children:
            assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert (tmp_path / ".glassbox" / "data" / "prometheus").is_dir()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
