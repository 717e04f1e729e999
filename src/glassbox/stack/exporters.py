"""The exporters glassbox runs for ``[[dependencies]] deploy = true``.

One neutral description per kind (pinned image, port, arguments, read-only host
mounts, where the connection setting goes) that the compose and Kubernetes renderers
both write out. The exporter's name is :func:`glassbox.stack.config.exporter_service`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from glassbox.stack.config import EXPORTERS, Dependency

__all__ = [
    "CADVISOR_IMAGE",
    "MONGODB_EXPORTER_IMAGE",
    "NODE_EXPORTER_IMAGE",
    "POSTGRES_EXPORTER_IMAGE",
    "REDIS_EXPORTER_IMAGE",
    "Exporter",
    "HostMount",
    "exporter",
]

POSTGRES_EXPORTER_IMAGE: Final = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
REDIS_EXPORTER_IMAGE: Final = "oliver006/redis_exporter:v1.74.0"
MONGODB_EXPORTER_IMAGE: Final = "percona/mongodb_exporter:0.45.0"
NODE_EXPORTER_IMAGE: Final = "prom/node-exporter:v1.9.1"
#: ghcr.io tags carry no "v"; releases before 0.53 are on gcr.io/cadvisor/cadvisor.
CADVISOR_IMAGE: Final = "ghcr.io/google/cadvisor:0.54.1"


@dataclass(frozen=True, slots=True)
class HostMount:
    """A host directory the exporter reads, mounted read-only."""

    name: str
    host: str
    path: str


@dataclass(frozen=True, slots=True)
class Exporter:
    """How one dependency's exporter runs.

    ``connection_env`` is the variable the exporter reads its connection secret from
    (``connection_key`` names that secret's key). Where ``has_shell`` is set the image has
    ``/bin/sh``, so a launcher can read the secret from a mounted file into the variable
    (``binary`` is then what it execs); otherwise the variable is set directly.
    ``per_node`` exporters watch the machine they run on: one per host.
    """

    kind: str
    image: str
    port: int
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    connection_env: str | None = None
    connection_key: str | None = None
    binary: str | None = None
    has_shell: bool = False
    mounts: tuple[HostMount, ...] = ()
    per_node: bool = False
    #: The node exporter sees the host's processes (and, in Kubernetes, its network).
    host_pid: bool = False
    #: Kubernetes memory request and limit.
    memory: tuple[str, str] = ("32Mi", "256Mi")


_NODE_MOUNTS = (
    HostMount("proc", "/proc", "/host/proc"),
    HostMount("sys", "/sys", "/host/sys"),
    HostMount("root", "/", "/host/root"),
)
_CADVISOR_MOUNTS = (
    HostMount("rootfs", "/", "/rootfs"),
    HostMount("var-run", "/var/run", "/var/run"),
    HostMount("sys", "/sys", "/sys"),
    HostMount("docker", "/var/lib/docker", "/var/lib/docker"),
    HostMount("disk", "/dev/disk", "/dev/disk"),
)


def exporter(dep: Dependency) -> Exporter:
    """The exporter a deployed dependency runs (raises ValueError for Qdrant)."""
    port = EXPORTERS[dep.kind][1]
    if dep.kind == "postgres":
        return Exporter(
            "postgres",
            POSTGRES_EXPORTER_IMAGE,
            port,
            connection_env="DATA_SOURCE_NAME",
            connection_key="dsn",
            binary="/bin/postgres_exporter",
            has_shell=True,  # busybox base image
        )
    if dep.kind == "redis":
        return Exporter(
            "redis", REDIS_EXPORTER_IMAGE, port, env=(("REDIS_ADDR", f"redis://{dep.address}"),)
        )
    if dep.kind == "mongodb":
        # scratch image: no shell, and the exporter reads no file, so the URI is a variable
        return Exporter(
            "mongodb",
            MONGODB_EXPORTER_IMAGE,
            port,
            connection_env="MONGODB_URI",
            connection_key="uri",
            # without it the exporter serves only mongodb_up: the connection and
            # opcounter series (mongodb_ss_*) come from the diagnostic-data collector
            args=("--collector.diagnosticdata",),
        )
    if dep.kind == "node":
        return Exporter(
            "node",
            NODE_EXPORTER_IMAGE,
            port,
            args=(
                "--path.procfs=/host/proc",
                "--path.sysfs=/host/sys",
                "--path.rootfs=/host/root",
                "--collector.filesystem.mount-points-exclude="
                "^/(dev|proc|sys|run|var/lib/docker/.+|var/lib/kubelet/.+)($|/)",
            ),
            mounts=_NODE_MOUNTS,
            per_node=True,
            host_pid=True,
        )
    if dep.kind == "containers":
        return Exporter(
            "containers",
            CADVISOR_IMAGE,
            port,
            args=("--store_container_labels=false", "--housekeeping_interval=10s"),
            mounts=_CADVISOR_MOUNTS,
            per_node=True,
            memory=("400Mi", "2Gi"),  # what cAdvisor's own DaemonSet asks for
        )
    raise ValueError(f"{dep.kind} has no exporter glassbox deploys")
