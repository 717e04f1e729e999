"""Dependency bundles: alert settings reach expressions, severities and test cases."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from glassbox.stack.build import render_stack, write_stack
from glassbox.stack.components.dependencies import dependency_bundle
from glassbox.stack.config import StackConfig, duration_seconds, parse_config
from glassbox.stack.model import Alert, AlertCase, Bundle
from glassbox.stack.verify import verify_stack

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("amtool") is None,
    reason="promtool and amtool come from ./scripts/setup.sh",
)

#: Every kind with every alert setting away from its default.
TUNED: list[dict[str, Any]] = [
    {
        "name": "db",
        "kind": "postgres",
        "targets": ["127.0.0.1:9187"],
        "alerts": {
            "connections_ratio": 0.9,
            "connections_for": "20m",
            "connections_severity": "critical",
            "down_for": "1m",
            "target_down_for": "45s",
            "target_down_severity": "warning",
        },
    },
    {
        "name": "cache",
        "kind": "redis",
        "targets": ["127.0.0.1:9121"],
        "alerts": {
            "memory_ratio": 0.75,
            "memory_bytes": 1_000_000_000,
            "memory_for": "10m",
            "down_for": "1m",
        },
    },
    {
        "name": "docs",
        "kind": "mongodb",
        "targets": ["127.0.0.1:9216"],
        "alerts": {
            "connections_ratio": 0.9,
            "connections_severity": "critical",
            "connections_for": "2m",
            "down_for": "30m",
        },
    },
    {
        "name": "vectors",
        "kind": "qdrant",
        "targets": ["127.0.0.1:6333"],
        "alerts": {"down_for": "1h"},
    },
    {
        "name": "host",
        "kind": "node",
        "targets": ["127.0.0.1:9100"],
        "alerts": {
            "disk_free_warning": 0.15,
            "disk_free_critical": 0.1,
            "memory_ratio": 0.85,
            "cpu_ratio": 0.8,
            "for": "5m",
        },
    },
    {
        "name": "docker",
        "kind": "containers",
        "targets": ["127.0.0.1:8080"],
        "alerts": {"memory_ratio": 0.85, "cpu_ratio": 0.8, "for": "40m"},
    },
]


def config_with(dependencies: list[dict[str, Any]], **extra: Any) -> StackConfig:
    return parse_config(
        {
            "services": [{"name": "api", "targets": ["127.0.0.1:8000"]}],
            "receivers": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/"}],
            "dependencies": dependencies,
            **extra,
        }
    )


def bundle_of(dependency: dict[str, Any]) -> Bundle:
    config = config_with([dependency])
    return dependency_bundle(config, config.dependencies[0])


def alert(bundle: Bundle, name: str) -> Alert:
    (found,) = [a for a in bundle.alerts if a.name == name]
    return found


def values(case: AlertCase, metric: str, **labels: str) -> float:
    """The first sample of a case's series (every series here starts at its level)."""
    for series in case.series:
        name, _, inner = series.series.partition("{")
        if name == metric and all(f'{k}="{v}"' in inner for k, v in labels.items()):
            return float(re.split(r"[x+-]", series.values)[0])
    raise AssertionError(f"{metric} {labels} is not in case {case.name!r}")


def minutes(case: AlertCase) -> float:
    return duration_seconds(case.eval_time) / 60


def test_no_alerts_table_means_the_defaults() -> None:
    for kind, port in (("postgres", 9187), ("redis", 9121), ("node", 9100), ("containers", 8080)):
        plain = {"name": "x", "kind": kind, "targets": [f"127.0.0.1:{port}"]}
        explicit = {**plain, "alerts": {"target_down_for": "2m"}}
        assert bundle_of(plain) == bundle_of(explicit), kind
    postgres = bundle_of({"name": "db", "kind": "postgres", "targets": ["127.0.0.1:9187"]})
    connections = alert(postgres, "PostgresTooManyConnections")
    assert connections.expr.endswith("> 0.8")
    assert (connections.severity, connections.for_) == ("warning", "5m")
    target = alert(postgres, "DependencyTargetDown")
    assert (target.severity, target.for_) == ("critical", "2m")


def test_postgres_settings_reach_expression_severity_and_cases() -> None:
    bundle = bundle_of(TUNED[0])
    connections = alert(bundle, "PostgresTooManyConnections")
    assert connections.expr.endswith("> 0.9")
    assert (connections.severity, connections.for_) == ("critical", "20m")
    fires, quiet = connections.cases
    used = "pg_stat_database_numbackends"
    assert values(fires, used) / values(fires, "pg_settings_max_connections") > 0.9
    assert values(quiet, used) / values(quiet, "pg_settings_max_connections") < 0.9
    assert minutes(fires) >= 20 + 1  # evaluated once the hold time has passed
    assert fires.firing[0].value == pytest.approx(0.95)
    down = alert(bundle, "PostgresDown")
    assert down.for_ == "1m"
    assert "for 1 minute." in down.description
    target = alert(bundle, "DependencyTargetDown")
    assert (target.severity, target.for_) == ("warning", "45s")
    assert "for 45 seconds;" in target.description


def test_redis_ratio_and_absolute_bound() -> None:
    bundle = bundle_of(TUNED[1])
    near = alert(bundle, "RedisMemoryNearMaxmemory")
    assert "> 0.75 and on" in near.expr
    fires, quiet = near.cases
    used, limit = "redis_memory_used_bytes", "redis_memory_max_bytes"
    assert values(fires, used) / values(fires, limit) > 0.75
    assert values(quiet, limit) == 0  # no maxmemory: quiet whatever the use
    high = alert(bundle, "RedisMemoryHigh")
    assert high.expr == (
        'max by (dependency, instance) (redis_memory_used_bytes{dependency="cache"}) > 1000000000'
    )
    fires, quiet = high.cases
    assert values(fires, used) > 1e9 > values(quiet, used)
    assert "more than 1GB" in high.description
    assert high.for_ == "10m"
    without = bundle_of({"name": "cache", "kind": "redis", "targets": ["127.0.0.1:9121"]})
    assert "RedisMemoryHigh" not in [a.name for a in without.alerts]


def test_mongodb_connections() -> None:
    bundle = bundle_of(TUNED[2])
    connections = alert(bundle, "MongodbTooManyConnections")
    assert connections.expr.endswith("> 0.9")
    assert (connections.severity, connections.for_) == ("critical", "2m")
    fires, quiet = connections.cases
    conns = "mongodb_ss_connections"
    for case, above in ((fires, True), (quiet, False)):
        current = values(case, conns, conn_type="current")
        share = current / (current + values(case, conns, conn_type="available"))
        assert (share > 0.9) is above
    down = alert(bundle, "MongodbDown")
    assert down.for_ == "30m"
    assert minutes(down.cases[0]) >= 30 + 1


def test_qdrant_down_for_has_no_exporter_alert() -> None:
    bundle = bundle_of(TUNED[3])
    assert [a.name for a in bundle.alerts] == ["QdrantDown"]
    assert alert(bundle, "QdrantDown").for_ == "1h"
    assert "for 1 hour." in alert(bundle, "QdrantDown").description


def test_node_tiers_ratios_and_one_hold_time() -> None:
    bundle = bundle_of(TUNED[4])
    names = [a.name for a in bundle.alerts]
    assert "NodeDiskSpaceLow" in names
    free, size = "node_filesystem_avail_bytes", "node_filesystem_size_bytes"
    for name, threshold, severity in (
        ("NodeDiskAlmostFull", 0.1, "critical"),
        ("NodeDiskSpaceLow", 0.15, "warning"),
    ):
        disk = alert(bundle, name)
        assert disk.expr.endswith(f"< {threshold}")
        assert (disk.severity, disk.for_) == (severity, "5m")
        fires, quiet = disk.cases
        assert values(fires, free) / values(fires, size) < threshold
        assert values(quiet, free) / values(quiet, size) > threshold
    memory = alert(bundle, "NodeMemoryHigh")
    assert memory.expr.endswith("> 0.85")
    fires, quiet = memory.cases
    total, available = "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"
    assert 1 - values(fires, available) / values(fires, total) > 0.85
    assert 1 - values(quiet, available) / values(quiet, total) < 0.85
    assert alert(bundle, "NodeCPUHigh").expr.endswith("> 0.8")
    for name in ("NodeMemoryHigh", "NodeCPUHigh", "NodeLoadHigh"):
        assert alert(bundle, name).for_ == "5m"
    assert alert(bundle, "NodeDiskWillFillIn24h").for_ == "30m"  # a trend, not a level
    plain = bundle_of({"name": "host", "kind": "node", "targets": ["127.0.0.1:9100"]})
    assert "NodeDiskSpaceLow" not in [a.name for a in plain.alerts]
    assert [alert(plain, n).for_ for n in ("NodeMemoryHigh", "NodeCPUHigh")] == ["10m", "15m"]


def test_containers_cpu_against_the_quota() -> None:
    bundle = bundle_of(TUNED[5])
    cpu = alert(bundle, "ContainerCPUNearLimit")
    assert "container_spec_cpu_quota" in cpu.expr
    assert "> 0.8 and on (dependency, instance, name)" in cpu.expr
    assert cpu.for_ == "40m"
    assert [c.name for c in cpu.cases] == ["near the quota", "well within the quota", "no quota"]
    assert [len(c.firing) for c in cpu.cases] == [1, 0, 0]
    assert all(minutes(c) >= 40 + 5 for c in cpu.cases)
    assert bundle.metrics["container_spec_cpu_quota"] == "gauge"
    assert alert(bundle, "ContainerMemoryNearLimit").expr.count("> 0.85") == 1
    plain = bundle_of({"name": "docker", "kind": "containers", "targets": ["127.0.0.1:8080"]})
    assert "ContainerCPUNearLimit" not in [a.name for a in plain.alerts]


def test_dashboards_read_the_real_exporter_metrics() -> None:
    config = config_with(TUNED)
    queries = " ".join(
        q.expr
        for dep in config.dependencies
        for d in dependency_bundle(config, dep).dashboards
        for row in d.rows
        for panel in row.panels
        for q in panel.queries
    )
    counters = (
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "mongodb_ss_opcounters",
        "pg_stat_database_blks_hit",
        "pg_stat_database_blks_read",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
        "node_disk_read_bytes_total",
        "node_disk_written_bytes_total",
    )
    known: dict[str, str] = {}
    for dep in config.dependencies:
        known |= dependency_bundle(config, dep).metrics
    for metric in counters:
        assert f"rate({metric}{{" in queries, metric
        assert known[metric] == "counter", metric
    assert "max by (instance, datname) (pg_database_size_bytes{" in queries
    assert known["pg_database_size_bytes"] == "gauge"


@pytest.fixture(scope="module")
def tuned_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[StackConfig, Path]:
    deployed = [
        {"name": "pg", "kind": "postgres", "deploy": True, "dsn": {"env": "PG_DSN"}},
        {"name": "node", "kind": "node", "deploy": True},
    ]
    config = config_with(TUNED + deployed, kubernetes={"labels": {"team": "kalki"}})
    directory = tmp_path_factory.mktemp("tuned") / "monitoring"
    write_stack(render_stack(config), directory)
    return config, directory


@needs_promtool
def test_tuned_settings_verify_end_to_end(tuned_stack: tuple[StackConfig, Path]) -> None:
    """promtool runs every case; compose and Kubernetes pass their schemas."""
    config, directory = tuned_stack
    steps = verify_stack(config, directory)
    assert {s.name: s.problems for s in steps if not s.ok} == {}
    tests = next(s for s in steps if s.name.startswith("promtool test rules"))
    alerts = sum(len(a.cases) for d in config.dependencies for a in _alerts(config, d.name))
    assert int(tests.detail.split()[0]) >= alerts


def _alerts(config: StackConfig, name: str) -> tuple[Alert, ...]:
    dep = next(d for d in config.dependencies if d.name == name)
    return dependency_bundle(config, dep).alerts


@needs_promtool
def test_the_cases_follow_the_configured_threshold(
    tuned_stack: tuple[StackConfig, Path], tmp_path: Path
) -> None:
    """A rule whose threshold drifts from glassbox.toml fails its own firing case."""
    config, built = tuned_stack
    stack = tmp_path / "monitoring"
    shutil.copytree(built, stack)
    rules = stack / "prometheus/rules/dependency-db.yml"
    text = rules.read_text()
    assert text.count("> 0.9\n") == 1
    rules.write_text(text.replace("> 0.9\n", "> 0.97\n"))
    failed = {s.name: s.problems for s in verify_stack(config, stack) if not s.ok}
    (problems,) = [v for k, v in failed.items() if k.startswith("promtool test rules")]
    assert "PostgresTooManyConnections: fires" in problems[0]
    assert "MongodbTooManyConnections" not in problems[0]


def test_dashboards_of_the_tuned_stack_are_valid_json(
    tuned_stack: tuple[StackConfig, Path],
) -> None:
    _, directory = tuned_stack
    board = json.loads((directory / "grafana/dashboards/glassbox-system.json").read_text())
    titles = [p.get("title") for p in board["panels"]]
    assert {"Network traffic", "Disk I/O"} <= set(titles)
