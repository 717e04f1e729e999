"""Dependency bundles: PostgreSQL, Redis, MongoDB, Qdrant, the node, containers.

Each is scraped through its exporter (never the server's own port) and labelled
``dependency="<name>"``. Every alert aggregates ``by (dependency, instance)`` on both
sides of a comparison, so the two sides always carry the same labels. Thresholds,
hold times and severities come from the dependency's ``[dependencies.alerts]``
(:data:`glassbox.stack.config.ALERT_SETTINGS`), and so do the test cases: each
firing case sits beyond the configured threshold and each quiet case short of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from glassbox.stack.components._cases import (
    case,
    const,
    counter,
    expect,
    fire_and_quiet,
    samples,
)
from glassbox.stack.config import (
    ContainerAlerts,
    Dependency,
    DependencyAlerts,
    MongodbAlerts,
    NodeAlerts,
    PostgresAlerts,
    QdrantAlerts,
    RedisAlerts,
    StackConfig,
    TargetDownAlerts,
    duration_seconds,
)
from glassbox.stack.model import (
    Alert,
    Bundle,
    Dashboard,
    Panel,
    Query,
    Row,
    RuleGroup,
    ScrapeJob,
    Series,
    Variable,
)
from glassbox.stack.templates import humanize

__all__ = ["dependency_bundle", "system_dashboard_kinds"]

BY = "dependency, instance"
IDLE = 'mode="idle"'
PICKED = 'instance=~"$instance"'
INSTANCE = "10.0.0.5:9100"
GIB = 1024**3
#: Interfaces and block devices of the host itself, not of containers or loops.
NETWORK_DEVICES = 'device!~"lo|veth.+|docker.+|br-.+"'
DISK_DEVICES = 'device!~"loop.+|ram.+"'

_A = TypeVar("_A", bound=DependencyAlerts)


def _settings(dep: Dependency, kind: type[_A]) -> _A:
    alerts = dep.alerts
    if not isinstance(alerts, kind):  # the config model pairs each kind with its settings
        raise TypeError(f"{dep.name}: {type(alerts).__name__} is not {kind.__name__}")
    return alerts


def _lab(dep: Dependency) -> dict[str, str]:
    return {"dependency": dep.name, "instance": INSTANCE, "job": dep.name}


def _sel(dep: Dependency, extra: str = "") -> str:
    return f'{{dependency="{dep.name}"{", " + extra if extra else ""}}}'


def _num(value: float) -> str:
    """A threshold as PromQL reads it: ``0.8``, ``1073741824``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _spoken(duration: str) -> str:
    """``2m`` as ``2 minutes``; durations without a plain reading stay as written."""
    seconds = duration_seconds(duration)
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0 and seconds / size < (60 if size < 3600 else 49):
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return duration


def _at(for_: str, at: int, lookback: int = 0) -> int:
    """Minute of a case's evaluation: ``at``, later when a long hold time needs it."""
    return max(at, lookback + samples(duration_seconds(for_), 60) + 2)


def _beyond(share: float) -> float:
    """A share between ``share`` and 1: where a ratio alert fires."""
    return round((share + 1) / 2, 6)


def _short_of(share: float, usual: float) -> float:
    """``usual`` if it is below ``share`` (where a ratio alert stays quiet), else half of it."""
    return usual if usual < share else round(share / 2, 6)


def _gauge_alert(
    dep: Dependency,
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    fire: list[Series],
    quiet: list[Series],
    value: float,
    at: int = 20,
) -> Alert:
    """An alert with one firing and one quiet case, labelled (dependency, instance)."""
    return fire_and_quiet(
        name,
        expr,
        for_,
        severity,
        summary,
        description,
        fire=fire,
        quiet=quiet,
        value=value,
        labels={"dependency": dep.name, "instance": INSTANCE},
        at=at,
    )


def _down(dep: Dependency, metric: str, what: str, for_: str) -> Alert:
    at = _at(for_, 20)
    return _gauge_alert(
        dep,
        f"{what}Down",
        f"max by ({BY}) ({metric}{_sel(dep)}) == 0",
        for_,
        "critical",
        f"{what} is down",
        f"{what} {{{{ $labels.dependency }}}} at {{{{ $labels.instance }}}} has not"
        f" answered its exporter for {_spoken(for_)}.",
        [const(metric, 0, at, **_lab(dep))],
        [const(metric, 1, at, **_lab(dep))],
        0,
        at=at,
    )


def _target_down(dep: Dependency, a: TargetDownAlerts) -> Alert:
    """A dead exporter reports nothing, so its own "server down" gauge goes silent."""
    for_ = a.target_down_for
    at = _at(for_, 20)
    return _gauge_alert(
        dep,
        "DependencyTargetDown",
        f"max by ({BY}) (up{_sel(dep)}) == 0",
        for_,
        a.target_down_severity,
        "Prometheus cannot scrape a dependency's exporter",
        "The exporter of {{ $labels.dependency }} at {{ $labels.instance }} has not"
        f" answered a scrape for {_spoken(for_)}; its own alerts cannot fire meanwhile.",
        [const("up", 0, at, **_lab(dep))],
        [const("up", 1, at, **_lab(dep))],
        0,
        at=at,
    )


def _hit_ratio(hits: str, misses: str, selector: str) -> str:
    """hits / (hits + misses), per instance, over the dashboard's rate interval."""

    def rate(metric: str) -> str:
        return f"sum by (instance) (rate({metric}{selector}[$__rate_interval]))"

    return f"{rate(hits)} / ({rate(hits)} + {rate(misses)})"


def _postgres(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    a = _settings(dep, PostgresAlerts)
    lab = _lab(dep)
    conns = "pg_stat_database_numbackends"
    maxc = "pg_settings_max_connections"
    ratio = a.connections_ratio
    at = _at(a.connections_for, 20)
    alerts = [
        _down(dep, "pg_up", "Postgres", a.down_for),
        _gauge_alert(
            dep,
            "PostgresTooManyConnections",
            f"sum by ({BY}) ({conns}{_sel(dep)}) / max by ({BY}) ({maxc}{_sel(dep)})"
            f" > {_num(ratio)}",
            a.connections_for,
            a.connections_severity,
            "PostgreSQL is close to max_connections",
            "{{ $labels.dependency }} uses {{ $value | humanizePercentage }} of max_connections.",
            [
                const(conns, round(_beyond(ratio) * 100), at, datname="app", **lab),
                const(maxc, 100, at, **lab),
            ],
            [
                const(conns, math.floor(_short_of(ratio, 0.1) * 100), at, datname="app", **lab),
                const(maxc, 100, at, **lab),
            ],
            round(_beyond(ratio) * 100) / 100,
            at=at,
        ),
        _gauge_alert(
            dep,
            "PostgresDeadlocks",
            f"sum by ({BY}) (increase(pg_stat_database_deadlocks{_sel(dep)}[10m])) > 5",
            "2m",
            "warning",
            "PostgreSQL reports deadlocks",
            "{{ $labels.dependency }} had {{ $value | humanize }} deadlocks in 10 minutes.",
            [counter("pg_stat_database_deadlocks", 1, 20, datname="app", **lab)],
            [const("pg_stat_database_deadlocks", 3, 20, datname="app", **lab)],
            10,
        ),
        _gauge_alert(
            dep,
            "PostgresLongTransaction",
            f"max by ({BY}) (pg_stat_activity_max_tx_duration{_sel(dep)}) > 300",
            "5m",
            "warning",
            "A PostgreSQL transaction has been open for more than 5 minutes",
            "The longest transaction on {{ $labels.dependency }} has run for"
            " {{ $value | humanizeDuration }}.",
            [const("pg_stat_activity_max_tx_duration", 600, 20, datname="app", **lab)],
            [const("pg_stat_activity_max_tx_duration", 2, 20, datname="app", **lab)],
            600,
        ),
    ]
    s = _sel(dep, PICKED)
    panels = [
        Panel(
            "PostgreSQL up",
            (Query(f"max by (instance) (pg_up{s})", "{{instance}}"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Connections used",
            (
                Query(
                    f"sum by (instance) ({conns}{s}) / max by (instance) ({maxc}{s})",
                    "{{instance}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Transactions per second",
            (
                Query(
                    f"sum by (instance) (rate(pg_stat_database_xact_commit{s}[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Database size",
            (
                Query(
                    f"max by (instance, datname) (pg_database_size_bytes{s})",
                    "{{instance}} {{datname}}",
                ),
            ),
            unit="bytes",
        ),
        Panel(
            "Cache hit ratio",
            (
                Query(
                    _hit_ratio("pg_stat_database_blks_hit", "pg_stat_database_blks_read", s),
                    "{{instance}}",
                ),
            ),
            unit="percentunit",
            description="Blocks found in shared buffers per block read.",
        ),
    ]
    metrics = {
        "pg_up": "gauge",
        conns: "gauge",
        maxc: "gauge",
        "pg_stat_database_deadlocks": "counter",
        "pg_stat_activity_max_tx_duration": "gauge",
        "pg_stat_database_xact_commit": "counter",
        "pg_database_size_bytes": "gauge",
        "pg_stat_database_blks_hit": "counter",
        "pg_stat_database_blks_read": "counter",
    }
    return alerts, panels, metrics


def _redis(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    a = _settings(dep, RedisAlerts)
    lab = _lab(dep)
    used, limit = "redis_memory_used_bytes", "redis_memory_max_bytes"
    ratio = a.memory_ratio
    at = _at(a.memory_for, 20)
    alerts = [
        _down(dep, "redis_up", "Redis", a.down_for),
        _gauge_alert(
            dep,
            "RedisMemoryNearMaxmemory",
            # Only where maxmemory is set: 0 means unlimited, and x / 0 is +Inf.
            f"max by ({BY}) ({used}{_sel(dep)}) / max by ({BY}) ({limit}{_sel(dep)})"
            f" > {_num(ratio)} and on ({BY}) max by ({BY}) ({limit}{_sel(dep)}) > 0",
            a.memory_for,
            "warning",
            "Redis is close to maxmemory",
            "{{ $labels.dependency }} uses {{ $value | humanizePercentage }} of maxmemory;"
            " keys will be evicted or writes refused.",
            [const(used, _beyond(ratio) * GIB, at, **lab), const(limit, GIB, at, **lab)],
            # maxmemory unset (0): no alert however much memory is used
            [const(used, _beyond(ratio) * GIB, at, **lab), const(limit, 0, at, **lab)],
            _beyond(ratio) * GIB / GIB,
            at=at,
        ),
    ]
    if a.memory_bytes is not None:
        most = a.memory_bytes
        alerts.append(
            _gauge_alert(
                dep,
                "RedisMemoryHigh",
                f"max by ({BY}) ({used}{_sel(dep)}) > {most}",
                a.memory_for,
                "warning",
                "Redis uses more memory than its configured bound",
                f"{{{{ $labels.dependency }}}} uses {{{{ $value | humanize }}}}B of memory,"
                f" more than {humanize(most)}B.",
                [const(used, 2 * most, at, **lab)],
                [const(used, most // 2, at, **lab)],
                2 * most,
                at=at,
            )
        )
    alerts += [
        _gauge_alert(
            dep,
            "RedisTooManyClients",
            f"max by ({BY}) (redis_connected_clients{_sel(dep)})"
            f" / max by ({BY}) (redis_config_maxclients{_sel(dep)}) > 0.9",
            "5m",
            "warning",
            "Redis is close to maxclients",
            "{{ $labels.dependency }} has {{ $value | humanizePercentage }} of maxclients"
            " connected.",
            [
                const("redis_connected_clients", 950, 20, **lab),
                const("redis_config_maxclients", 1000, 20, **lab),
            ],
            [
                const("redis_connected_clients", 10, 20, **lab),
                const("redis_config_maxclients", 1000, 20, **lab),
            ],
            0.95,
        ),
        _gauge_alert(
            dep,
            "RedisRejectedConnections",
            f"sum by ({BY}) (increase(redis_rejected_connections_total{_sel(dep)}[5m])) > 0",
            "2m",
            "warning",
            "Redis rejects connections",
            "{{ $labels.dependency }} rejected {{ $value | humanize }} connections in 5 minutes.",
            [counter("redis_rejected_connections_total", 2, 20, **lab)],
            [const("redis_rejected_connections_total", 7, 20, **lab)],
            10,
        ),
    ]
    s = _sel(dep, PICKED)
    panels = [
        Panel(
            "Redis up",
            (Query(f"max by (instance) (redis_up{s})", "{{instance}}"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Memory used", (Query(f"max by (instance) ({used}{s})", "{{instance}}"),), unit="bytes"
        ),
        Panel(
            "Commands per second",
            (
                Query(
                    f"sum by (instance) (rate(redis_commands_processed_total{s}"
                    "[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Connected clients",
            (Query(f"max by (instance) (redis_connected_clients{s})", "{{instance}}"),),
        ),
        Panel(
            "Keyspace hit ratio",
            (
                Query(
                    _hit_ratio("redis_keyspace_hits_total", "redis_keyspace_misses_total", s),
                    "{{instance}}",
                ),
            ),
            unit="percentunit",
            description="Key lookups that found their key.",
        ),
    ]
    metrics = {
        "redis_up": "gauge",
        used: "gauge",
        limit: "gauge",
        "redis_connected_clients": "gauge",
        "redis_config_maxclients": "gauge",
        "redis_rejected_connections_total": "counter",
        "redis_commands_processed_total": "counter",
        "redis_keyspace_hits_total": "counter",
        "redis_keyspace_misses_total": "counter",
    }
    return alerts, panels, metrics


def _mongodb(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    a = _settings(dep, MongodbAlerts)
    lab = _lab(dep)
    conns = "mongodb_ss_connections"
    current, available = 'conn_type="current"', 'conn_type="available"'
    ratio = a.connections_ratio
    at = _at(a.connections_for, 20)
    busy = round(_beyond(ratio) * 1000)
    idle = math.floor(_short_of(ratio, 0.01) * 1000)
    alerts = [
        _down(dep, "mongodb_up", "Mongodb", a.down_for),
        _gauge_alert(
            dep,
            "MongodbTooManyConnections",
            f"max by ({BY}) ({conns}{_sel(dep, current)})"
            f" / (max by ({BY}) ({conns}{_sel(dep, current)})"
            f" + max by ({BY}) ({conns}{_sel(dep, available)})) > {_num(ratio)}",
            a.connections_for,
            a.connections_severity,
            "MongoDB is close to its connection limit",
            "{{ $labels.dependency }} uses {{ $value | humanizePercentage }} of its connections.",
            [
                const(conns, busy, at, conn_type="current", **lab),
                const(conns, 1000 - busy, at, conn_type="available", **lab),
            ],
            [
                const(conns, idle, at, conn_type="current", **lab),
                const(conns, 1000 - idle, at, conn_type="available", **lab),
            ],
            busy / 1000,
            at=at,
        ),
    ]
    s = _sel(dep, PICKED)
    panels = [
        Panel(
            "MongoDB up",
            (Query(f"max by (instance) (mongodb_up{s})", "{{instance}}"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Connections",
            (Query(f"max by (instance, conn_type) ({conns}{s})", "{{instance}} {{conn_type}}"),),
        ),
        Panel(
            "Operations per second",
            (
                Query(
                    f"sum by (instance, legacy_op_type) (rate(mongodb_ss_opcounters{s}"
                    "[$__rate_interval]))",
                    "{{instance}} {{legacy_op_type}}",
                ),
            ),
            unit="ops",
        ),
    ]
    metrics = {"mongodb_up": "gauge", conns: "gauge", "mongodb_ss_opcounters": "counter"}
    return alerts, panels, metrics


def _qdrant(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    a = _settings(dep, QdrantAlerts)
    alerts = [_down(dep, "up", "Qdrant", a.down_for)]
    s = _sel(dep, PICKED)
    panels = [
        Panel(
            "Qdrant up",
            (Query(f"max by (instance) (up{s})", "{{instance}}"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Qdrant REST responses",
            (
                Query(
                    f"sum by (instance) (rate(rest_responses_total{s}[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
            unit="reqps",
        ),
    ]
    return alerts, panels, {"rest_responses_total": "counter"}


def _disk_free(
    dep: Dependency, name: str, free: float, for_: str, severity: str, summary: str
) -> Alert:
    """The root filesystem's free share below ``free`` (of a 100 GiB disk in the cases)."""
    fs = 'fstype!~"tmpfs|overlay|squashfs", mountpoint="/"'
    avail, size = "node_filesystem_avail_bytes", "node_filesystem_size_bytes"
    fslab = {**_lab(dep), "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
    at = _at(for_, 20)
    percent = round(free * 100, 6)
    low = math.floor(percent / 2)  # GiB of 100: below the threshold
    high = max(50, min(100, math.floor(percent) + 1))  # above it
    return _gauge_alert(
        dep,
        name,
        f"max by ({BY}) ({avail}{_sel(dep, fs)}) / max by ({BY}) ({size}{_sel(dep, fs)})"
        f" < {_num(free)}",
        for_,
        severity,
        summary,
        "Only {{ $value | humanizePercentage }} of the root filesystem of"
        " {{ $labels.instance }} is free.",
        [const(avail, low * GIB, at, **fslab), const(size, 100 * GIB, at, **fslab)],
        [const(avail, high * GIB, at, **fslab), const(size, 100 * GIB, at, **fslab)],
        low * GIB / (100 * GIB),
        at=at,
    )


def _node(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    a = _settings(dep, NodeAlerts)
    lab = _lab(dep)
    fs = 'fstype!~"tmpfs|overlay|squashfs", mountpoint="/"'
    avail, size = "node_filesystem_avail_bytes", "node_filesystem_size_bytes"
    fslab = {**lab, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
    total_mem, avail_mem = "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"
    cpu = "node_cpu_seconds_total"
    memory_for, cpu_for, load_for = a.for_ or "10m", a.for_ or "15m", a.for_ or "15m"
    memory_at = _at(memory_for, 20)
    cpu_at, load_at = _at(cpu_for, 25, lookback=5), _at(load_for, 25)
    cpu_n, load_n = max(30, cpu_at), max(30, load_at)
    used = _beyond(a.memory_ratio)
    spare = round((1 - used) * 10, 4)  # GiB available of 10
    quiet_spare = round((1 - _short_of(a.memory_ratio, 0.4)) * 10, 4)
    alerts = [
        _gauge_alert(
            dep,
            "NodeDiskWillFillIn24h",
            f"max by ({BY}) (predict_linear({avail}{_sel(dep, fs)}[6h], 86400)) < 0"
            f" and on ({BY}) max by ({BY}) ({avail}{_sel(dep, fs)})"
            f" / max by ({BY}) ({size}{_sel(dep, fs)}) < 0.2",
            "30m",
            "warning",
            "The root disk will fill within 24 hours",
            "At the current rate the root filesystem of {{ $labels.instance }} fills within"
            " 24 hours.",
            # 10 GiB left of 100 GiB, shrinking by 100 MiB a minute
            [
                Series(f"{avail}{{{_labels(fslab)}}}", f"{10 * GIB}-{100 * 1024**2}x80"),
                const(size, 100 * GIB, 80, **fslab),
            ],
            [const(avail, 60 * GIB, 80, **fslab), const(size, 100 * GIB, 80, **fslab)],
            _predict(10 * GIB, -100 * 1024**2, 70),
            at=70,
        ),
        _disk_free(
            dep,
            "NodeDiskAlmostFull",
            a.disk_free_critical,
            a.for_ or "5m",
            "critical",
            "The root disk is almost full",
        ),
    ]
    if a.disk_free_warning is not None:
        alerts.append(
            _disk_free(
                dep,
                "NodeDiskSpaceLow",
                a.disk_free_warning,
                a.for_ or "10m",
                "warning",
                "The root disk is running out of space",
            )
        )
    alerts += [
        _gauge_alert(
            dep,
            "NodeMemoryHigh",
            f"1 - max by ({BY}) ({avail_mem}{_sel(dep)}) / max by ({BY}) ({total_mem}{_sel(dep)})"
            f" > {_num(a.memory_ratio)}",
            memory_for,
            "warning",
            "The node is running out of memory",
            "{{ $labels.instance }} uses {{ $value | humanizePercentage }} of its memory.",
            [
                const(avail_mem, spare * GIB, memory_at, **lab),
                const(total_mem, 10 * GIB, memory_at, **lab),
            ],
            [
                const(avail_mem, quiet_spare * GIB, memory_at, **lab),
                const(total_mem, 10 * GIB, memory_at, **lab),
            ],
            1 - spare * GIB / (10 * GIB),
            at=memory_at,
        ),
        _gauge_alert(
            dep,
            "NodeCPUHigh",
            f"1 - avg by ({BY}) (rate({cpu}{_sel(dep, IDLE)}[5m])) > {_num(a.cpu_ratio)}",
            cpu_for,
            "warning",
            "The node's CPUs are busy",
            "The CPUs of {{ $labels.instance }} are {{ $value | humanizePercentage }} busy.",
            # never idle: busy 1.0, above any ratio; always idle: busy 0
            [const(cpu, 0, cpu_n, cpu="0", mode="idle", **lab)],
            [counter(cpu, 60, cpu_n, cpu="0", mode="idle", **lab)],
            1.0,
            at=cpu_at,
        ),
        _gauge_alert(
            dep,
            "NodeLoadHigh",
            f"max by ({BY}) (node_load5{_sel(dep)}) / count by ({BY}) ({cpu}{_sel(dep, IDLE)}) > 2",
            load_for,
            "warning",
            "The node's load is high for its CPU count",
            "{{ $labels.instance }} has a 5-minute load of {{ $value | humanize }} per CPU.",
            [
                const("node_load5", 8, load_n, **lab),
                const(cpu, 1, load_n, cpu="0", mode="idle", **lab),
                const(cpu, 1, load_n, cpu="1", mode="idle", **lab),
            ],
            [
                const("node_load5", 1, load_n, **lab),
                const(cpu, 1, load_n, cpu="0", mode="idle", **lab),
            ],
            4,
            at=load_at,
        ),
    ]
    s = _sel(dep, PICKED)
    net = _sel(dep, f"{NETWORK_DEVICES}, {PICKED}")
    disk = _sel(dep, f"{DISK_DEVICES}, {PICKED}")
    panels = [
        Panel(
            "CPU busy",
            (
                Query(
                    f"1 - avg by (instance) (rate({cpu}{_sel(dep, IDLE + ', ' + PICKED)}"
                    "[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Memory used",
            (
                Query(
                    f"1 - max by (instance) ({avail_mem}{s}) / max by (instance) ({total_mem}{s})",
                    "{{instance}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel(
            "Root disk free",
            (
                Query(
                    f"max by (instance) ({avail}{_sel(dep, fs + ', ' + PICKED)})"
                    f" / max by (instance) ({size}{_sel(dep, fs + ', ' + PICKED)})",
                    "{{instance}}",
                ),
            ),
            unit="percentunit",
        ),
        Panel("Load (5m)", (Query(f"max by (instance) (node_load5{s})", "{{instance}}"),)),
        Panel(
            "Network traffic",
            (
                Query(
                    "sum by (instance) (rate(node_network_receive_bytes_total"
                    f"{net}[$__rate_interval]))",
                    "{{instance}} received",
                ),
                Query(
                    "sum by (instance) (rate(node_network_transmit_bytes_total"
                    f"{net}[$__rate_interval]))",
                    "{{instance}} sent",
                ),
            ),
            unit="Bps",
            description="Bytes per second on the host's interfaces, loopback and bridges left out.",
        ),
        Panel(
            "Disk I/O",
            (
                Query(
                    f"sum by (instance) (rate(node_disk_read_bytes_total{disk}[$__rate_interval]))",
                    "{{instance}} read",
                ),
                Query(
                    "sum by (instance) (rate(node_disk_written_bytes_total"
                    f"{disk}[$__rate_interval]))",
                    "{{instance}} written",
                ),
            ),
            unit="Bps",
        ),
    ]
    metrics = {
        avail: "gauge",
        size: "gauge",
        total_mem: "gauge",
        avail_mem: "gauge",
        cpu: "counter",
        "node_load5": "gauge",
        "node_network_receive_bytes_total": "counter",
        "node_network_transmit_bytes_total": "counter",
        "node_disk_read_bytes_total": "counter",
        "node_disk_written_bytes_total": "counter",
    }
    return alerts, panels, metrics


def _containers(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    a = _settings(dep, ContainerAlerts)
    lab = {**_lab(dep), "name": "api"}
    ws, lim = "container_memory_working_set_bytes", "container_spec_memory_limit_bytes"
    usage = "container_cpu_usage_seconds_total"
    quota, period = "container_spec_cpu_quota", "container_spec_cpu_period"
    by = f"{BY}, name"
    named = 'name!=""'
    labels = {"dependency": dep.name, "instance": INSTANCE, "name": "api"}
    memory_for, throttled_for = a.for_ or "5m", a.for_ or "15m"
    memory_at = _at(memory_for, 15)
    memory_n = max(20, memory_at)
    throttled_at = _at(throttled_for, 25, lookback=5)
    throttled_n = max(30, throttled_at)
    used = _beyond(a.memory_ratio)
    alerts = [
        Alert(
            "ContainerMemoryNearLimit",
            f"max by ({by}) ({ws}{_sel(dep, named)}) / max by ({by}) ({lim}{_sel(dep, named)})"
            f" > {_num(a.memory_ratio)} and on ({by}) max by ({by}) ({lim}{_sel(dep, named)}) > 0",
            memory_for,
            "warning",
            "A container is close to its memory limit",
            "Container {{ $labels.name }} on {{ $labels.instance }} uses"
            " {{ $value | humanizePercentage }} of its memory limit.",
            cases=(
                case(
                    "near the limit",
                    [const(ws, used * GIB, memory_n, **lab), const(lim, GIB, memory_n, **lab)],
                    memory_at,
                    expect(used * GIB / GIB, **labels),
                ),
                case(
                    "no limit",
                    [const(ws, used * GIB, memory_n, **lab), const(lim, 0, memory_n, **lab)],
                    memory_at,
                ),
            ),
            expr_labels=("dependency", "instance", "name"),
        ),
    ]
    if a.cpu_ratio is not None:
        cpu_for = a.for_ or "15m"
        at = _at(cpu_for, 25, lookback=5)
        n = max(30, at)
        busy = _beyond(a.cpu_ratio)  # of a half-core quota
        alerts.append(
            Alert(
                "ContainerCPUNearLimit",
                f"sum by ({by}) (rate({usage}{_sel(dep, named)}[5m]))"
                f" / (max by ({by}) ({quota}{_sel(dep, named)})"
                f" / max by ({by}) ({period}{_sel(dep, named)}))"
                f" > {_num(a.cpu_ratio)}"
                f" and on ({by}) max by ({by}) ({quota}{_sel(dep, named)}) > 0",
                cpu_for,
                "warning",
                "A container uses most of its CPU quota",
                "Container {{ $labels.name }} on {{ $labels.instance }} uses"
                " {{ $value | humanizePercentage }} of its CPU quota.",
                cases=(
                    case(
                        "near the quota",
                        [
                            counter(usage, round(busy * 0.5 * 60, 6), n, **lab),
                            const(quota, 50000, n, **lab),
                            const(period, 100000, n, **lab),
                        ],
                        at,
                        expect(busy, **labels),
                    ),
                    case(
                        "well within the quota",
                        [
                            counter(usage, round(_short_of(a.cpu_ratio, 0.1) * 30, 6), n, **lab),
                            const(quota, 50000, n, **lab),
                            const(period, 100000, n, **lab),
                        ],
                        at,
                    ),
                    case(
                        "no quota",
                        [
                            counter(usage, 60, n, **lab),
                            const(quota, -1, n, **lab),
                            const(period, 100000, n, **lab),
                        ],
                        at,
                    ),
                ),
                expr_labels=("dependency", "instance", "name"),
            )
        )
    throttled = "container_cpu_cfs_throttled_periods_total"
    alerts.append(
        Alert(
            "ContainerCPUThrottled",
            f"sum by ({by}) (rate({throttled}{_sel(dep, named)}[5m]))"
            f" / sum by ({by}) (rate(container_cpu_cfs_periods_total{_sel(dep, named)}[5m]))"
            " > 0.25",
            throttled_for,
            "warning",
            "A container is CPU-throttled",
            "Container {{ $labels.name }} on {{ $labels.instance }} was throttled in"
            " {{ $value | humanizePercentage }} of its CPU periods.",
            cases=(
                case(
                    "throttled",
                    [
                        counter(throttled, 30, throttled_n, **lab),
                        counter("container_cpu_cfs_periods_total", 60, throttled_n, **lab),
                    ],
                    throttled_at,
                    expect(0.5, **labels),
                ),
                case(
                    "not throttled",
                    [
                        const(throttled, 0, throttled_n, **lab),
                        counter("container_cpu_cfs_periods_total", 60, throttled_n, **lab),
                    ],
                    throttled_at,
                ),
            ),
            expr_labels=("dependency", "instance", "name"),
        )
    )
    s = _sel(dep, f"{named}, {PICKED}")
    panels = [
        Panel("Container memory", (Query(f"max by (name) ({ws}{s})", "{{name}}"),), unit="bytes"),
        Panel(
            "Container CPU",
            (
                Query(
                    f"sum by (name) (rate({usage}{s}[$__rate_interval]))",
                    "{{name}}",
                ),
            ),
            unit="short",
        ),
    ]
    metrics = {
        ws: "gauge",
        lim: "gauge",
        "container_cpu_cfs_throttled_periods_total": "counter",
        "container_cpu_cfs_periods_total": "counter",
        usage: "counter",
    }
    if a.cpu_ratio is not None:
        metrics |= {quota: "gauge", period: "gauge"}
    return alerts, panels, metrics


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))


def _predict(start: float, per_minute: float, at: int) -> float:
    """predict_linear(avail[6h], 86400) at minute ``at`` for a linear series."""
    now = start + per_minute * at
    return now + per_minute / 60 * 86400


_KINDS: dict[str, Callable[[Dependency], tuple[list[Alert], list[Panel], dict[str, str]]]] = {
    "postgres": _postgres,
    "redis": _redis,
    "mongodb": _mongodb,
    "qdrant": _qdrant,
    "node": _node,
    "containers": _containers,
}

_SYSTEM = frozenset({"node", "containers"})


def system_dashboard_kinds() -> frozenset[str]:
    """Dependency kinds shown on the system dashboard (others on the dependencies one)."""
    return _SYSTEM


def dependency_bundle(config: StackConfig, dep: Dependency) -> Bundle:
    """Scrape job, alerts and a dashboard row for one dependency."""
    alerts, panels, metrics = _KINDS[dep.kind](dep)
    metrics.setdefault("up", "gauge")
    if isinstance(dep.alerts, TargetDownAlerts):  # Qdrant has no exporter: QdrantDown reads up
        alerts.insert(0, _target_down(dep, dep.alerts))
    system = dep.kind in _SYSTEM
    dashboard = Dashboard(
        uid="glassbox-system" if system else "glassbox-dependencies",
        title="System: nodes and containers" if system else "Dependencies",
        variables=(Variable("instance", "instance", 'up{dependency!=""}'),),
        rows=(Row(f"{dep.name} ({dep.kind})", tuple(panels)),),
    )
    return Bundle(
        name=f"dependency-{dep.name}",
        jobs=(
            ScrapeJob(
                name=dep.name,
                targets=dep.targets,
                metrics_path=dep.metrics_path,
                labels=(("dependency", dep.name),),
            ),
        ),
        groups=(RuleGroup(f"{dep.name}-alerts", tuple(alerts)),),
        dashboards=(dashboard,),
        metrics=metrics,
    )
