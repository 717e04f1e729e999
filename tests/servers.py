"""Real Redis and PostgreSQL servers on free loopback ports, stopped by PID."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import free_port, port_open, wait_for


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: scripts/setup.sh installs Debian's postgresql"
        )
    return found[-1].parent


class Server:
    """A server process we start, kill and restart on a fixed loopback port."""

    stop_signal = signal.SIGTERM

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def preexec(self) -> Callable[[], None] | None:
        return None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=self.preexec(),  # noqa: PLW1509 - drops root for PostgreSQL only
        )
        wait_for(lambda: port_open(self.port), 30, f"{self.name} on port {self.port}")

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits for the port to close."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        wait_for(lambda: not port_open(self.port), 10, f"{self.name} to stop")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


class RedisServer(Server):
    def __init__(self, workdir: Path) -> None:
        super().__init__("redis", free_port())
        self.workdir = workdir

    def command(self) -> list[str]:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed: scripts/setup.sh installs it")
        return [
            exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class PostgresServer(Server):
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to leave

    def __init__(self, workdir: Path) -> None:
        super().__init__("postgres", free_port())
        self.workdir = workdir
        self.data = workdir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            self._uid, self._gid = user.pw_uid, user.pw_gid
            os.chown(workdir, self._uid, self._gid)
        done = subprocess.run(
            [
                str(_pg_bin() / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "glassbox",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=False,
            capture_output=True,
            text=True,
            preexec_fn=self.preexec(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")

    def preexec(self) -> Callable[[], None] | None:
        if not self._as_postgres:
            return None
        uid, gid = self._uid, self._gid

        def drop() -> None:
            os.setgid(gid)
            os.setuid(uid)

        return drop

    def command(self) -> list[str]:
        return [
            str(_pg_bin() / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.workdir}",
            "-c",
            "fsync=off",
        ]

    @property
    def dsn(self) -> str:
        return f"postgresql://glassbox@127.0.0.1:{self.port}/postgres"
