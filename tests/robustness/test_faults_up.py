"""Faults injected into a running `glassbox up`, and what each one loses (the goal: nothing).

The full disk is a tmpfs of its own, mounted under the test's temporary directory
(root or CAP_SYS_ADMIN is needed; the tests skip otherwise).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from glassbox.console.store import LogRecord, TelemetryStore
from glassbox.local.inbox import Inbox

DISK_SIZE = "64m"
ROOT = Path(__file__).resolve().parents[2]

QUIET = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[services]]
name = "ghost"
targets = ["127.0.0.1:9"]

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own: filling it fills nothing else."""
    where = tmp_path / "disk"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk refuses even 64 bytes; its path."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 64):
            chunk = b"\0" * size
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return ballast


def webhook(name: str) -> dict[str, object]:
    return {
        "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": name, "severity": "critical"}}],
    }


def test_the_inbox_on_a_full_disk_refuses_clearly_and_keeps_its_store(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused with a 5xx (so Alertmanager retries), one clear line, store intact."""
    store = small_disk / "inbox.sqlite"
    with Inbox(store) as inbox, httpx.Client(base_url=inbox.http_url, timeout=10) as http:
        assert http.post("/webhook/hooks", json=webhook("Before")).status_code == 200
        ballast = fill(small_disk)
        with caplog.at_level(logging.ERROR, logger="glassbox.inbox"):
            assert http.post("/webhook/hooks", json=webhook("Lost")).status_code == 500
            slack = http.post("/slack/chat", json={"text": "[FIRING:1] Lost"})
            assert (slack.status_code, slack.text) == (500, "rollup_error")
            with (
                smtplib.SMTP(*inbox.smtp_address, timeout=10) as smtp,
                pytest.raises(smtplib.SMTPDataError) as refused,
            ):
                smtp.sendmail("a@example.org", ["mail@inbox"], b"Subject: x\r\n\r\nx\r\n")
            assert refused.value.smtp_code == 451
        lines = [r.getMessage() for r in caplog.records if r.name == "glassbox.inbox"]
        assert len(lines) == 3, lines
        for line in lines:
            assert "no space left on device" in line, line
            assert str(store) in line, line
        assert all(r.exc_info is None for r in caplog.records), "a traceback for a full disk"
        ballast.unlink()
        assert http.post("/webhook/hooks", json=webhook("After")).status_code == 200
        assert [d.alertnames for d in inbox.deliveries()] == [("After",), ("Before",)]
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (2,)


def test_up_on_a_full_disk_names_it_and_writes_nothing(small_disk: Path) -> None:
    config = small_disk / "glassbox.toml"
    config.write_text(QUIET)
    fill(small_disk)
    ports = [f"--{name}-port=0" for name in ("prometheus", "alertmanager", "inbox", "smtp")]
    up = subprocess.run(
        [sys.executable, "-m", "glassbox", "up", "-c", str(config), *ports, "--console-port=0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=False,
    )
    assert up.returncode == 2, up.stderr
    assert f"no space left on the disk of {small_disk / '.glassbox'}" in up.stderr, up.stderr
    assert "Traceback" not in up.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast", "glassbox.toml"]


def test_the_telemetry_store_on_a_full_disk_keeps_what_it_had(small_disk: Path) -> None:
    """Exports refused while full do not count: no log is pruned early afterwards."""
    store = TelemetryStore(small_disk / "telemetry.sqlite", max_logs=100)
    try:

        def logs(n: int, message: str) -> list[LogRecord]:
            return [LogRecord(time_ns=time.time_ns(), service="s", message=message)] * n

        store.add_logs(logs(50, "before"))
        ballast = fill(small_disk)
        for _ in range(10):
            with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
                store.add_logs(logs(10, "refused"))
        ballast.unlink()
        store.add_logs(logs(40, "after"))
        found = store.search_logs(limit=1000)
        assert len(found) == 90
        assert sum(r.message == "before" for r in found) == 50
    finally:
        store.close()
