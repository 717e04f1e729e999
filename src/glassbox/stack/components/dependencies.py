"""Dependency bundles: PostgreSQL, Redis, MongoDB, Qdrant, the node, containers.

Each is scraped through its exporter (never the server's own port) and labelled
``dependency="<name>"``. Every alert aggregates ``by (dependency, instance)`` on both
sides of a comparison, so the two sides always carry the same labels.
"""

from __future__ import annotations

from collections.abc import Callable

from glassbox.stack.components._cases import case, const, counter, expect, fire_and_quiet
from glassbox.stack.config import Dependency, StackConfig
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

__all__ = ["dependency_bundle", "system_dashboard_kinds"]

BY = "dependency, instance"
IDLE = 'mode="idle"'
PICKED = 'instance=~"$instance"'
INSTANCE = "10.0.0.5:9100"


def _lab(dep: Dependency) -> dict[str, str]:
    return {"dependency": dep.name, "instance": INSTANCE, "job": dep.name}


def _sel(dep: Dependency, extra: str = "") -> str:
    return f'{{dependency="{dep.name}"{", " + extra if extra else ""}}}'


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


def _down(dep: Dependency, metric: str, what: str) -> Alert:
    return _gauge_alert(
        dep,
        f"{what}Down",
        f"max by ({BY}) ({metric}{_sel(dep)}) == 0",
        "2m",
        "critical",
        f"{what} is down",
        f"{what} {{{{ $labels.dependency }}}} at {{{{ $labels.instance }}}} has not"
        " answered its exporter for 2 minutes.",
        [const(metric, 0, 20, **_lab(dep))],
        [const(metric, 1, 20, **_lab(dep))],
        0,
    )


def _postgres(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    lab = _lab(dep)
    conns = "pg_stat_database_numbackends"
    maxc = "pg_settings_max_connections"
    alerts = [
        _down(dep, "pg_up", "Postgres"),
        _gauge_alert(
            dep,
            "PostgresTooManyConnections",
            f"sum by ({BY}) ({conns}{_sel(dep)}) / max by ({BY}) ({maxc}{_sel(dep)}) > 0.8",
            "5m",
            "warning",
            "PostgreSQL is close to max_connections",
            "{{ $labels.dependency }} uses {{ $value | humanizePercentage }} of max_connections.",
            [const(conns, 90, 20, datname="app", **lab), const(maxc, 100, 20, **lab)],
            [const(conns, 10, 20, datname="app", **lab), const(maxc, 100, 20, **lab)],
            0.9,
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
    ]
    metrics = {
        "pg_up": "gauge",
        conns: "gauge",
        maxc: "gauge",
        "pg_stat_database_deadlocks": "counter",
        "pg_stat_activity_max_tx_duration": "gauge",
        "pg_stat_database_xact_commit": "counter",
    }
    return alerts, panels, metrics


def _redis(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    lab = _lab(dep)
    used, limit = "redis_memory_used_bytes", "redis_memory_max_bytes"
    gib = 1024**3
    alerts = [
        _down(dep, "redis_up", "Redis"),
        _gauge_alert(
            dep,
            "RedisMemoryNearMaxmemory",
            # Only where maxmemory is set: 0 means unlimited, and x / 0 is +Inf.
            f"max by ({BY}) ({used}{_sel(dep)}) / max by ({BY}) ({limit}{_sel(dep)}) > 0.9"
            f" and on ({BY}) max by ({BY}) ({limit}{_sel(dep)}) > 0",
            "5m",
            "warning",
            "Redis is close to maxmemory",
            "{{ $labels.dependency }} uses {{ $value | humanizePercentage }} of maxmemory;"
            " keys will be evicted or writes refused.",
            [const(used, 0.95 * gib, 20, **lab), const(limit, gib, 20, **lab)],
            # maxmemory unset (0): no alert however much memory is used
            [const(used, 0.95 * gib, 20, **lab), const(limit, 0, 20, **lab)],
            0.95,
        ),
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
    ]
    metrics = {
        "redis_up": "gauge",
        used: "gauge",
        limit: "gauge",
        "redis_connected_clients": "gauge",
        "redis_config_maxclients": "gauge",
        "redis_rejected_connections_total": "counter",
        "redis_commands_processed_total": "counter",
    }
    return alerts, panels, metrics


def _mongodb(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    lab = _lab(dep)
    conns = "mongodb_ss_connections"
    current, available = 'conn_type="current"', 'conn_type="available"'
    alerts = [
        _down(dep, "mongodb_up", "Mongodb"),
        _gauge_alert(
            dep,
            "MongodbTooManyConnections",
            f"max by ({BY}) ({conns}{_sel(dep, current)})"
            f" / (max by ({BY}) ({conns}{_sel(dep, current)})"
            f" + max by ({BY}) ({conns}{_sel(dep, available)})) > 0.8",
            "5m",
            "warning",
            "MongoDB is close to its connection limit",
            "{{ $labels.dependency }} uses {{ $value | humanizePercentage }} of its connections.",
            [
                const(conns, 900, 20, conn_type="current", **lab),
                const(conns, 100, 20, conn_type="available", **lab),
            ],
            [
                const(conns, 10, 20, conn_type="current", **lab),
                const(conns, 990, 20, conn_type="available", **lab),
            ],
            0.9,
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
    ]
    return alerts, panels, {"mongodb_up": "gauge", conns: "gauge"}


def _qdrant(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    alerts = [_down(dep, "up", "Qdrant")]
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


def _node(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    lab = _lab(dep)
    fs = 'fstype!~"tmpfs|overlay|squashfs", mountpoint="/"'
    avail, size = "node_filesystem_avail_bytes", "node_filesystem_size_bytes"
    fslab = {**lab, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
    gib = 1024**3
    total_mem, avail_mem = "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"
    cpu = "node_cpu_seconds_total"
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
                Series(f"{avail}{{{_labels(fslab)}}}", f"{10 * gib}-{100 * 1024**2}x80"),
                const(size, 100 * gib, 80, **fslab),
            ],
            [const(avail, 60 * gib, 80, **fslab), const(size, 100 * gib, 80, **fslab)],
            _predict(10 * gib, -100 * 1024**2, 70),
            at=70,
        ),
        _gauge_alert(
            dep,
            "NodeDiskAlmostFull",
            f"max by ({BY}) ({avail}{_sel(dep, fs)}) / max by ({BY}) ({size}{_sel(dep, fs)})"
            " < 0.05",
            "5m",
            "critical",
            "The root disk is almost full",
            "Only {{ $value | humanizePercentage }} of the root filesystem of"
            " {{ $labels.instance }} is free.",
            [const(avail, 2 * gib, 20, **fslab), const(size, 100 * gib, 20, **fslab)],
            [const(avail, 50 * gib, 20, **fslab), const(size, 100 * gib, 20, **fslab)],
            0.02,
        ),
        _gauge_alert(
            dep,
            "NodeMemoryHigh",
            f"1 - max by ({BY}) ({avail_mem}{_sel(dep)}) / max by ({BY}) ({total_mem}{_sel(dep)})"
            " > 0.9",
            "10m",
            "warning",
            "The node is running out of memory",
            "{{ $labels.instance }} uses {{ $value | humanizePercentage }} of its memory.",
            [const(avail_mem, 0.5 * gib, 20, **lab), const(total_mem, 10 * gib, 20, **lab)],
            [const(avail_mem, 6 * gib, 20, **lab), const(total_mem, 10 * gib, 20, **lab)],
            0.95,
        ),
        _gauge_alert(
            dep,
            "NodeCPUHigh",
            f"1 - avg by ({BY}) (rate({cpu}{_sel(dep, IDLE)}[5m])) > 0.9",
            "15m",
            "warning",
            "The node's CPUs are busy",
            "The CPUs of {{ $labels.instance }} are {{ $value | humanizePercentage }} busy.",
            [const(cpu, 0, 30, cpu="0", mode="idle", **lab)],
            [counter(cpu, 60, 30, cpu="0", mode="idle", **lab)],
            1.0,
            at=25,
        ),
        _gauge_alert(
            dep,
            "NodeLoadHigh",
            f"max by ({BY}) (node_load5{_sel(dep)}) / count by ({BY}) ({cpu}{_sel(dep, IDLE)}) > 2",
            "15m",
            "warning",
            "The node's load is high for its CPU count",
            "{{ $labels.instance }} has a 5-minute load of {{ $value | humanize }} per CPU.",
            [
                const("node_load5", 8, 30, **lab),
                const(cpu, 1, 30, cpu="0", mode="idle", **lab),
                const(cpu, 1, 30, cpu="1", mode="idle", **lab),
            ],
            [const("node_load5", 1, 30, **lab), const(cpu, 1, 30, cpu="0", mode="idle", **lab)],
            4,
            at=25,
        ),
    ]
    s = _sel(dep, PICKED)
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
    ]
    metrics = {
        avail: "gauge",
        size: "gauge",
        total_mem: "gauge",
        avail_mem: "gauge",
        cpu: "counter",
        "node_load5": "gauge",
    }
    return alerts, panels, metrics


def _containers(dep: Dependency) -> tuple[list[Alert], list[Panel], dict[str, str]]:
    lab = {**_lab(dep), "name": "api"}
    ws, lim = "container_memory_working_set_bytes", "container_spec_memory_limit_bytes"
    gib = 1024**3
    by = f"{BY}, name"
    named = 'name!=""'
    alerts = [
        Alert(
            "ContainerMemoryNearLimit",
            f"max by ({by}) ({ws}{_sel(dep, named)}) / max by ({by}) ({lim}{_sel(dep, named)})"
            f" > 0.9 and on ({by}) max by ({by}) ({lim}{_sel(dep, named)}) > 0",
            "5m",
            "warning",
            "A container is close to its memory limit",
            "Container {{ $labels.name }} on {{ $labels.instance }} uses"
            " {{ $value | humanizePercentage }} of its memory limit.",
            cases=(
                case(
                    "near the limit",
                    [const(ws, 0.95 * gib, 20, **lab), const(lim, gib, 20, **lab)],
                    15,
                    expect(0.95, dependency=dep.name, instance=INSTANCE, name="api"),
                ),
                case("no limit", [const(ws, 0.95 * gib, 20, **lab), const(lim, 0, 20, **lab)], 15),
            ),
            expr_labels=("dependency", "instance", "name"),
        ),
        Alert(
            "ContainerCPUThrottled",
            f"sum by ({by}) (rate(container_cpu_cfs_throttled_periods_total{_sel(dep, named)}[5m]))"
            f" / sum by ({by}) (rate(container_cpu_cfs_periods_total{_sel(dep, named)}[5m]))"
            " > 0.25",
            "15m",
            "warning",
            "A container is CPU-throttled",
            "Container {{ $labels.name }} on {{ $labels.instance }} was throttled in"
            " {{ $value | humanizePercentage }} of its CPU periods.",
            cases=(
                case(
                    "throttled",
                    [
                        counter("container_cpu_cfs_throttled_periods_total", 30, 30, **lab),
                        counter("container_cpu_cfs_periods_total", 60, 30, **lab),
                    ],
                    25,
                    expect(0.5, dependency=dep.name, instance=INSTANCE, name="api"),
                ),
                case(
                    "not throttled",
                    [
                        const("container_cpu_cfs_throttled_periods_total", 0, 30, **lab),
                        counter("container_cpu_cfs_periods_total", 60, 30, **lab),
                    ],
                    25,
                ),
            ),
            expr_labels=("dependency", "instance", "name"),
        ),
    ]
    s = _sel(dep, f"{named}, {PICKED}")
    panels = [
        Panel("Container memory", (Query(f"max by (name) ({ws}{s})", "{{name}}"),), unit="bytes"),
        Panel(
            "Container CPU",
            (
                Query(
                    f"sum by (name) (rate(container_cpu_usage_seconds_total{s}[$__rate_interval]))",
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
        "container_cpu_usage_seconds_total": "counter",
    }
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
    if dep.kind != "qdrant":  # Qdrant has no exporter: QdrantDown already reads up
        # A dead exporter reports nothing, so its own "server down" gauge goes silent.
        alerts.insert(
            0,
            _gauge_alert(
                dep,
                "DependencyTargetDown",
                f"max by ({BY}) (up{_sel(dep)}) == 0",
                "2m",
                "critical",
                "Prometheus cannot scrape a dependency's exporter",
                "The exporter of {{ $labels.dependency }} at {{ $labels.instance }} has not"
                " answered a scrape for 2 minutes; its own alerts cannot fire meanwhile.",
                [const("up", 0, 20, **_lab(dep))],
                [const("up", 1, 20, **_lab(dep))],
                0,
            ),
        )
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
