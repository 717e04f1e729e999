"""Supervised child processes: start, wait until ready, restart with backoff, stop.

Each child runs in its own process group and is asked (``PR_SET_PDEATHSIG``) to get
SIGTERM if glassbox dies, so no orphan outlives ``glassbox up`` even after a SIGKILL.
A child that exits while the supervisor runs is restarted after an exponential
backoff (reset once it has stayed up for a minute); restart() stops one child and
starts it again at once; stop() sends SIGTERM to each process group and SIGKILL to
whatever is left after the grace period.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import httpx

__all__ = ["ChildSpec", "Supervisor", "SupervisorError"]

State = Literal["starting", "ready", "restarting", "stopped", "failed"]
Event = Callable[[str, str], None]

_PR_SET_PDEATHSIG = 1


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class SupervisorError(RuntimeError):
    """A child could not be started or did not become ready in time."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run one child: its command, readiness URL and log file."""

    name: str
    argv: Sequence[str]
    ready_url: str | None
    log_path: Path
    cwd: Path | None = None
    env: dict[str, str] | None = None


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    state: State = "starting"
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = 0.5
    next_start: float = 0.0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Runs children, keeps them running, stops them all."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        on_event: Event | None = None,
        max_backoff: float = 30.0,
        poll_interval: float = 0.2,
    ) -> None:
        self._children = {spec.name: _Child(spec) for spec in specs}
        self._on_event = on_event or (lambda name, message: None)
        self._max_backoff = max_backoff
        self._poll = poll_interval
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> dict[str, float]:
        """Start every child and wait until each is ready; seconds to ready by name."""
        began = time.monotonic()
        for child in self._children.values():
            self._spawn(child)
        ready: dict[str, float] = {}
        deadline = began + timeout
        pending = set(self._children)
        with httpx.Client(timeout=1.0) as client:
            while pending:
                for name in sorted(pending):
                    child = self._children[name]
                    if child.proc is not None and child.proc.poll() is not None:
                        self.stop()
                        raise SupervisorError(
                            f"{name} exited with status {child.proc.returncode} while starting;"
                            f" see {child.spec.log_path}"
                        )
                    if self._is_ready(client, child):
                        child.state = "ready"
                        ready[name] = time.monotonic() - began
                        pending.discard(name)
                        self._on_event(name, f"ready in {ready[name]:.2f} s")
                if pending and time.monotonic() > deadline:
                    self.stop()
                    raise SupervisorError(
                        f"{', '.join(sorted(pending))} not ready after {timeout:.0f} s; see"
                        f" {', '.join(str(self._children[n].spec.log_path) for n in pending)}"
                    )
                if pending:
                    time.sleep(0.05)
        self._thread = threading.Thread(target=self._watch, name="glassbox-supervisor", daemon=True)
        self._thread.start()
        return ready

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every child's process group; SIGKILL what is left after ``grace``."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            children = list(self._children.values())
        for child in children:
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait(5)
            child.state = "stopped"
            if child.log is not None:
                child.log.close()
                child.log = None

    def restart(self, name: str, grace: float = 10.0) -> None:
        """Stop one child (SIGTERM, SIGKILL after ``grace``) and start it again at once.

        Not counted as a crash: no backoff. Returns once the new process runs; it is
        ready when :meth:`state` says so.
        """
        child = self._children[name]
        with self._lock:
            if self._stopping.is_set():
                return
            child.state = "restarting"
            child.next_start = math.inf  # the watcher leaves it to us meanwhile
            proc = child.proc
        if proc is not None:
            _terminate(proc, grace)
        with self._lock:
            if self._stopping.is_set():
                return
            self._spawn(child)
            child.restarts += 1
        self._on_event(name, f"restarted on request (restart #{child.restarts})")

    # -- queries --------------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        proc = self._children[name].proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def state(self, name: str) -> State:
        return self._children[name].state

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    # -- internals ------------------------------------------------------------------------

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        if child.log is None:
            child.log = spec.log_path.open("ab")
        try:
            child.proc = subprocess.Popen(
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=child.log,
                stderr=subprocess.STDOUT,
                cwd=spec.cwd,
                env=spec.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no locks taken
            )
        except OSError as exc:
            raise SupervisorError(f"cannot start {spec.name} ({spec.argv[0]}): {exc}") from None
        child.started_at = time.monotonic()
        child.state = "starting"

    def _is_ready(self, client: httpx.Client, child: _Child) -> bool:
        url = child.spec.ready_url
        if url is None:
            return child.proc is not None and child.proc.poll() is None
        try:
            return client.get(url).status_code == 200
        except httpx.HTTPError:
            return False

    def _watch(self) -> None:
        with httpx.Client(timeout=1.0) as client:
            while not self._stopping.wait(self._poll):
                for child in list(self._children.values()):
                    with self._lock:  # restart() changes a child only under the lock
                        self._check(client, child)

    def _check(self, client: httpx.Client, child: _Child) -> None:
        now = time.monotonic()
        proc = child.proc
        if child.state == "restarting":
            if now >= child.next_start and not self._stopping.is_set():
                self._spawn(child)
                child.restarts += 1
                self._on_event(child.spec.name, f"restarted (restart #{child.restarts})")
            return
        if proc is not None and proc.poll() is not None:
            child.exits.append(proc.returncode)
            if now - child.started_at > 60:
                child.backoff = 0.5
            child.state = "restarting"
            child.next_start = now + child.backoff
            self._on_event(
                child.spec.name,
                f"exited with status {proc.returncode}; restarting in {child.backoff:.1f} s",
            )
            child.backoff = min(child.backoff * 2, self._max_backoff)
            return
        if child.state == "starting" and self._is_ready(client, child):
            child.state = "ready"
            self._on_event(child.spec.name, "ready")
