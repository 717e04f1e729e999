"""`glassbox up`: the stack of ``monitoring/`` run for real on 127.0.0.1, no Docker.

Prometheus and Alertmanager come from PATH (the Debian packages ``prometheus`` and
``prometheus-alertmanager``) and run as supervised children. They read the rule files
and templates of the same ``monitoring/`` that production uses; only addresses
differ: a runtime ``prometheus.yml`` and ``alertmanager.yml`` under
``.glassbox/run/`` point at loopback ports, and every receiver delivers to the local
inbox unless ``real_receivers`` (then secrets are copied from their environment
variables or files into ``.glassbox/run/*/secrets/``, mode 0600). Data lives in
``.glassbox/data/`` and survives a restart.

When the disk of the data directory fills up, an event names it; when space is back,
Prometheus is restarted if it failed to write its WAL meanwhile (see
:meth:`LocalStack._repair_prometheus_wal`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from glassbox._files import write_atomic
from glassbox.exceptions import ConfigurationError
from glassbox.local.disk import SpaceWatch, check_space
from glassbox.local.supervisor import ChildSpec, Supervisor
from glassbox.stack.build import MANIFEST, render_stack, write_stack
from glassbox.stack.components import collect
from glassbox.stack.config import Secret, StackConfig, duration_seconds, load_config
from glassbox.stack.render.alertmanager import InboxTarget, alertmanager_yml
from glassbox.stack.render.prometheus import prometheus_yml

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = ["LocalPorts", "LocalStack", "find_binary"]

Event = Callable[[str, str], None]

_INSTALL = {
    "prometheus": "the Debian package 'prometheus' (apt-get install prometheus), or a"
    " release from https://prometheus.io/download/ on PATH",
    "alertmanager": "the Debian package 'prometheus-alertmanager', or a release from"
    " https://prometheus.io/download/ on PATH",
}


def find_binary(name: str) -> str:
    """The path of ``prometheus`` or ``alertmanager`` (Debian: prometheus-alertmanager)."""
    names = [name] if name != "alertmanager" else ["alertmanager", "prometheus-alertmanager"]
    for candidate in names:
        path = shutil.which(candidate)
        if path is not None:
            return path
    raise ConfigurationError(f"{name} is not installed: install {_INSTALL[name]}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class LocalPorts:
    """Loopback ports; 0 picks a free one."""

    prometheus: int = 9090
    alertmanager: int = 9093
    inbox: int = 9095
    smtp: int = 2525
    console: int = 9096

    def resolved(self) -> LocalPorts:
        return LocalPorts(
            *(
                p or _free_port()
                for p in (self.prometheus, self.alertmanager, self.inbox, self.smtp, self.console)
            )
        )


def _read_secret(secret: Secret, where: str) -> str:
    if secret.env is not None:
        value = os.environ.get(secret.env)
        if value is None:
            raise ConfigurationError(
                f"{where}: environment variable {secret.env} is not set (the secret is read"
                " from it; set it, or run without --real-receivers to use the inbox)"
            )
        return value
    assert secret.file is not None
    try:
        return secret.file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read {secret.file}: {exc.strerror}") from None


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)


@dataclass(slots=True)
class LocalStack:
    """Builds, runs and reloads the local stack for one ``glassbox.toml``."""

    config_path: Path
    state_dir: Path | None = None
    ports: LocalPorts = field(default_factory=LocalPorts)
    real_receivers: bool = False
    on_event: Event = field(default=lambda name, message: None)
    config: StackConfig | None = None
    supervisor: Supervisor | None = None
    inbox: Any = None
    store: Any = None
    console: Any = None
    space: SpaceWatch | None = None
    ready_seconds: dict[str, float] = field(default_factory=dict)
    _watch_stop: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    # -- paths ------------------------------------------------------------------------------

    @property
    def state(self) -> Path:
        return (self.state_dir or self.config_path.parent / ".glassbox").resolve()

    @property
    def run_dir(self) -> Path:
        return self.state / "run"

    @property
    def data_dir(self) -> Path:
        return self.state / "data"

    def output_dir(self, config: StackConfig) -> Path:
        out = Path(config.output)
        return (out if out.is_absolute() else self.config_path.parent / out).resolve()

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    # -- files ------------------------------------------------------------------------------

    def prepare(self) -> StackConfig:
        """Load the config, build ``monitoring/`` if it changed, write the runtime files."""
        config = load_config(self.config_path)
        out = self.output_dir(config)
        files = render_stack(config)
        if not self._up_to_date(out, files):
            write_stack(files, out)
            self.on_event("stack", f"built {out}")
        bundles = collect(
            config,
            prometheus_target=f"127.0.0.1:{self.ports.prometheus}",
            alertmanager_targets=(f"127.0.0.1:{self.ports.alertmanager}",),
        )
        prom: dict[str, Any] = yaml.safe_load(
            prometheus_yml(config, bundles, alertmanagers=[f"127.0.0.1:{self.ports.alertmanager}"])
        )
        prom["rule_files"] = [str(out / "prometheus" / "rules" / "*.yml")]
        run = self.run_dir
        write_atomic(
            run / "prometheus" / "prometheus.yml",
            yaml.safe_dump(prom, sort_keys=False),
            parents=True,
        )
        for remote in config.prometheus.remote_write:
            for name in ("basic_auth_password", "bearer_token"):
                secret = getattr(remote, name)
                if secret is not None:
                    _write_secret(
                        run / "prometheus" / "secrets" / f"{remote.name}_{name}",
                        _read_secret(secret, f"prometheus.remote_write {remote.name}.{name}"),
                    )
        for service in config.services:
            if service.metrics_token is not None:
                _write_secret(
                    run / "prometheus" / "secrets" / f"{service.name}_metrics_token",
                    _read_secret(service.metrics_token, f"services {service.name}.metrics_token"),
                )
        inbox = None
        if not self.real_receivers:
            inbox = InboxTarget(
                f"http://127.0.0.1:{self.ports.inbox}", "127.0.0.1", self.ports.smtp
            )
        am: dict[str, Any] = yaml.safe_load(alertmanager_yml(config, bundles, inbox=inbox))
        am["templates"] = [str(out / "alertmanager" / "templates" / "*.tmpl")]
        if self.real_receivers:
            for receiver in config.receivers:
                for name, secret in receiver.secrets().items():
                    _write_secret(
                        run / "alertmanager" / "secrets" / f"{receiver.name}_{name}",
                        _read_secret(secret, f"receivers {receiver.name}.{name}"),
                    )
        write_atomic(
            run / "alertmanager" / "alertmanager.yml",
            yaml.safe_dump(am, sort_keys=False),
            parents=True,
        )
        self.config = config
        return config

    @staticmethod
    def _up_to_date(out: Path, files: Mapping[str, str]) -> bool:
        if not (out / MANIFEST).is_file():
            return False
        for rel, text in files.items():
            path = out / rel
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                return False
        return True

    def specs(self, config: StackConfig) -> list[ChildSpec]:
        data, run, logs = self.data_dir, self.run_dir, self.state / "logs"
        evaluation = duration_seconds(config.prometheus.evaluation_interval)
        prom = [
            find_binary("prometheus"),
            f"--config.file={run / 'prometheus' / 'prometheus.yml'}",
            f"--storage.tsdb.path={data / 'prometheus'}",
            f"--storage.tsdb.retention.time={config.prometheus.retention_time}",
            f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
            "--web.enable-lifecycle",
            # re-send firing alerts soon after an Alertmanager restart (default: 1m)
            f"--rules.alert.resend-delay={max(2, int(2 * evaluation))}s",
        ]
        if config.prometheus.retention_size:
            prom.append(f"--storage.tsdb.retention.size={config.prometheus.retention_size}")
        am = [
            find_binary("alertmanager"),
            f"--config.file={run / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={data / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{self.ports.alertmanager}",
            "--cluster.listen-address=",  # no gossip port: nothing beyond loopback
        ]
        return [
            ChildSpec(
                "prometheus", prom, f"{self.prometheus_url}/-/ready", logs / "prometheus.log"
            ),
            ChildSpec(
                "alertmanager", am, f"{self.alertmanager_url}/-/ready", logs / "alertmanager.log"
            ),
        ]

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0, watch: bool = True) -> dict[str, float]:
        """Build, start the inbox and the children, wait until ready; seconds to ready.

        Raises ``OSError(ENOSPC)`` naming the state directory, before writing anything,
        when its disk is full.
        """
        self.ports = self.ports.resolved()
        check_space(self.state, "glassbox up")
        config = self.prepare()
        for sub in ("prometheus", "alertmanager"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        if not self.real_receivers:
            self.start_inbox()
        self.supervisor = Supervisor(self.specs(config), on_event=self.on_event)
        try:
            self.ready_seconds = self.supervisor.start(timeout=timeout)
        except BaseException:
            self._stop_inbox()
            raise
        try:
            self._start_console(config)
        except BaseException:
            self.stop()
            raise
        self.space = SpaceWatch(self.data_dir, self._space_changed).start()
        if watch:
            self._watcher = threading.Thread(
                target=self._watch_config, name="glassbox-config-watch", daemon=True
            )
            self._watcher.start()
        return self.ready_seconds

    def _start_console(self, config: StackConfig) -> None:
        """The console and its telemetry store, fed over OTLP/HTTP on the same port."""
        from starlette.applications import Starlette

        from glassbox.console.app import ConsoleServer, create_console
        from glassbox.console.otlp import otlp_routes
        from glassbox.console.store import TelemetryStore

        self.store = TelemetryStore(self.data_dir / "telemetry.sqlite")
        app = create_console(
            prometheus_url=self.prometheus_url,
            alertmanager_url=self.alertmanager_url,
            inbox=self.inbox,
            store=self.store,
            dashboards_dir=self.output_dir(config) / "grafana" / "dashboards",
            config=config,
        )
        # OTLP/HTTP (POST /v1/traces, /v1/logs) on the same port as the pages: one address
        # to set as OTEL_EXPORTER_OTLP_ENDPOINT in the services. The console itself only
        # answers GET and HEAD, so OTLP gets its own small app in front of it.
        otlp = Starlette(routes=list(otlp_routes(self.store)))
        paths = frozenset(route.path for route in otlp.routes if hasattr(route, "path"))

        async def both(scope: Scope, receive: Receive, send: Send) -> None:
            target = otlp if scope.get("path") in paths else app
            await target(scope, receive, send)

        self.console = ConsoleServer(both, port=self.ports.console).start()
        self.on_event("console", f"ready on {self.console.url}")

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.console}"

    def reload(self) -> None:
        """Rebuild from the config and tell Prometheus and Alertmanager to reload."""
        self.prepare()
        with httpx.Client(timeout=10) as client:
            for url in (self.prometheus_url, self.alertmanager_url):
                response = client.post(f"{url}/-/reload")
                if response.status_code != 200:
                    raise ConfigurationError(
                        f"{url}/-/reload answered {response.status_code}: {response.text.strip()}"
                    )

    def stop(self) -> None:
        """Stop everything; no child is left behind."""
        if self.space is not None:
            self.space.stop()
            self.space = None
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.console is not None:
            with contextlib.suppress(Exception):
                self.console.stop()
            self.console = None
        if self.supervisor is not None:
            self.supervisor.stop()
        self._stop_inbox()
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
            self.store = None

    def start_inbox(self) -> None:
        """Serve the inbox on its ports and store (again, after :meth:`stop_inbox`)."""
        if self.real_receivers:
            raise RuntimeError("no inbox: this stack delivers to the real receivers")
        if self.inbox is None:
            from glassbox.local.inbox import Inbox

            self.inbox = Inbox(
                self.data_dir / "inbox.sqlite",
                http_port=self.ports.inbox,
                smtp_port=self.ports.smtp,
            )
        self.inbox.start()
        self.on_event("inbox", f"ready on {self.inbox.http_url}")

    def stop_inbox(self) -> None:
        """Stop serving the inbox; its deliveries stay readable.

        Meanwhile Alertmanager's notifications fail and are retried; after
        :meth:`start_inbox` they arrive.
        """
        if self.inbox is not None and self.inbox.running:
            self.inbox.stop()
            self.on_event("inbox", "stopped")

    def restart_inbox(self) -> None:
        """Stop the inbox and serve it again on the same ports and store."""
        self.stop_inbox()
        self.start_inbox()

    def _stop_inbox(self) -> None:
        if self.inbox is not None:
            with contextlib.suppress(Exception):
                self.inbox.stop()
            self.inbox = None

    def _space_changed(self, full: bool, free: int) -> None:
        if full:
            self.on_event(
                "data",
                f"no space left on the disk of {self.data_dir} ({free // 1024} KiB free):"
                " Prometheus drops samples and the inbox refuses notifications (Alertmanager"
                " retries them) until space is freed",
            )
            return
        self.on_event(
            "data", f"space is back on the disk of {self.data_dir} ({free >> 20} MiB free)"
        )
        self._repair_prometheus_wal()

    def _repair_prometheus_wal(self) -> None:
        """Restart Prometheus if it failed to write its WAL, so that it repairs it now.

        A failed write can leave a torn record in the WAL; at its next start Prometheus
        drops everything written after it (prometheus/prometheus#13027). Restarting
        right away loses the seconds since space came back, not all data since.
        """
        if self.supervisor is None:
            return
        try:
            text = httpx.get(f"{self.prometheus_url}/metrics", timeout=5).text
        except httpx.HTTPError:
            return
        failed = next(
            (
                float(line.rpartition(" ")[2])
                for line in text.splitlines()
                if line.startswith("prometheus_tsdb_wal_writes_failed_total ")
            ),
            0.0,
        )
        if failed > 0:
            self.on_event(
                "prometheus",
                f"{failed:.0f} WAL writes failed while the disk was full; restarting it"
                " so that it repairs its WAL now",
            )
            self.supervisor.restart("prometheus")

    def _watch_config(self) -> None:
        def stamp() -> float:
            try:
                return self.config_path.stat().st_mtime
            except OSError:
                return 0.0

        seen = stamp()
        while not self._watch_stop.wait(1.0):
            now = stamp()
            if now == seen:
                continue
            seen = now
            try:
                self.reload()
            except (ConfigurationError, httpx.HTTPError, OSError) as exc:
                self.on_event("config", f"not reloaded, still running the previous one: {exc}")
            else:
                self.on_event("config", "reloaded")

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
