"""The supervisor: ready checks, restarts with backoff, stop, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from glassbox.local.supervisor import ChildSpec, Supervisor, SupervisorError
from tests.conftest import free_port, wait_for

SERVER = textwrap.dedent(
    """
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/ready" else 404)
            self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def server_spec(tmp_path: Path, name: str = "web") -> ChildSpec:
    port = free_port()
    return ChildSpec(
        name,
        [sys.executable, "-c", SERVER, str(port)],
        f"http://127.0.0.1:{port}/ready",
        tmp_path / f"{name}.log",
    )


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_ready_then_restarted_after_a_crash_then_stopped(tmp_path: Path) -> None:
    events: list[tuple[str, str]] = []
    supervisor = Supervisor([server_spec(tmp_path)], on_event=lambda n, m: events.append((n, m)))
    ready = supervisor.start(timeout=20)
    try:
        assert set(ready) == {"web"}
        first = supervisor.pid("web")
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: supervisor.restarts("web") == 1, 20, "a restart")
        wait_for(lambda: supervisor.state("web") == "ready", 20, "ready again")
        second = supervisor.pid("web")
        assert second is not None
        assert second != first
        assert any("exited with status -9; restarting in 0.5 s" in m for _, m in events)
    finally:
        supervisor.stop()
    assert gone(second)
    assert supervisor.state("web") == "stopped"


def test_a_child_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    spec = ChildSpec(
        "broken",
        [sys.executable, "-c", "import sys; print('bad flag'); sys.exit(3)"],
        "http://127.0.0.1:9/ready",
        tmp_path / "broken.log",
    )
    with pytest.raises(
        SupervisorError, match=r"broken exited with status 3 while starting; see .*broken\.log"
    ):
        Supervisor([spec]).start(timeout=20)
    assert "bad flag" in (tmp_path / "broken.log").read_text()


def test_not_ready_in_time_stops_everything(tmp_path: Path) -> None:
    slow = ChildSpec(
        "never-ready",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        f"http://127.0.0.1:{free_port()}/ready",
        tmp_path / "slow.log",
    )
    supervisor = Supervisor([slow])
    with pytest.raises(SupervisorError, match="never-ready not ready after 1 s"):
        supervisor.start(timeout=1)
    proc = supervisor._children["never-ready"].proc
    assert proc is not None
    assert proc.poll() is not None


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL of glassbox itself leaves no orphan (PR_SET_PDEATHSIG)."""
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from glassbox.local.supervisor import ChildSpec, Supervisor
        spec = ChildSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"],
                         None, Path({str(tmp_path)!r}) / "sleeper.log")
        s = Supervisor([spec])
        s.start(timeout=10)
        Path({str(pid_file)!r}).write_text(str(s.pid("sleeper")))
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text() != "", 20, "the child pid")
        child = int(pid_file.read_text())
        assert not gone(child)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: gone(child), 10, "the orphaned child to exit")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_restart_on_request_starts_it_again_at_once(tmp_path: Path) -> None:
    events: list[tuple[str, str]] = []
    supervisor = Supervisor([server_spec(tmp_path)], on_event=lambda n, m: events.append((n, m)))
    supervisor.start(timeout=20)
    try:
        first = supervisor.pid("web")
        assert first is not None
        supervisor.restart("web")
        second = supervisor.pid("web")
        assert second is not None
        assert second != first
        assert gone(first)
        assert supervisor.restarts("web") == 1
        wait_for(lambda: supervisor.state("web") == "ready", 20, "ready again")
        assert ("web", "restarted on request (restart #1)") in events
        assert not any("exited" in m for _, m in events)  # not taken for a crash
    finally:
        supervisor.stop()
    assert gone(second)
