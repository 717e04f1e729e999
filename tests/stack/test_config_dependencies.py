"""glassbox.toml: [dependencies.alerts], deployed exporters and [kubernetes]."""

from __future__ import annotations

import re
import tomllib
from importlib.resources import files
from typing import Any

import pytest

from glassbox.exceptions import ConfigurationError
from glassbox.stack.config import (
    ContainerAlerts,
    NodeAlerts,
    PostgresAlerts,
    QdrantAlerts,
    RedisAlerts,
    parse_config,
)

STARTER = files("glassbox.stack").joinpath("starter.toml").read_text(encoding="utf-8")


def starter(*dependencies: dict[str, Any], **top: Any) -> dict[str, Any]:
    data = tomllib.loads(STARTER)
    data["dependencies"] += list(dependencies)
    data.update(top)
    return data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigurationError) as info:
        parse_config(data, source="glassbox.toml")
    return str(info.value)


def test_each_kind_gets_its_own_settings_with_todays_defaults() -> None:
    config = parse_config(
        starter(
            {"name": "vectors", "kind": "qdrant", "targets": ["qdrant:6333"]},
            {"name": "docker", "kind": "containers", "targets": ["cadvisor:8080"]},
        )
    )
    by_name = {d.name: d.alerts for d in config.dependencies}
    assert by_name["db"] == PostgresAlerts()
    assert isinstance(by_name["cache"], RedisAlerts)
    assert isinstance(by_name["host"], NodeAlerts)
    assert isinstance(by_name["vectors"], QdrantAlerts)
    assert isinstance(by_name["docker"], ContainerAlerts)
    db = PostgresAlerts()
    assert (db.connections_ratio, db.down_for, db.connections_severity) == (0.8, "2m", "warning")
    node = NodeAlerts()
    assert (node.disk_free_critical, node.disk_free_warning, node.for_) == (0.05, None, None)


def test_settings_are_read_from_toml() -> None:
    text = STARTER.replace(
        'targets = ["127.0.0.1:9100"]         # node_exporter',
        'targets = ["127.0.0.1:9100"]\n\n[dependencies.alerts]\n'
        'disk_free_warning = 0.15\ndisk_free_critical = 0.1\nfor = "5m"\n'
        'target_down_severity = "critical"\n',
    )
    (host,) = [d for d in parse_config(tomllib.loads(text)).dependencies if d.kind == "node"]
    assert host.alerts == NodeAlerts.model_validate(
        {"disk_free_warning": 0.15, "disk_free_critical": 0.1, "for": "5m"}
    )
    assert host.hold_times == {"target_down_for": "2m", "for": "5m"}


def test_a_key_of_another_kind_names_the_dependency_and_the_allowed_keys() -> None:
    data = starter()
    data["dependencies"][0]["alerts"] = {"memory_ratio": 0.5}
    message = error_of(data)
    assert "glassbox.toml: dependencies[0]: alerts.memory_ratio is not an alert setting" in message
    assert "postgres dependency 'db'" in message
    assert (
        "connections_for, connections_ratio, connections_severity, down_for, target_down_for,"
        " target_down_severity" in message
    )
    data = starter({"name": "v", "kind": "qdrant", "targets": ["q:6333"], "alerts": {"for": "5m"}})
    assert "a qdrant dependency takes down_for" in error_of(data)


def test_bad_values_name_the_setting() -> None:
    data = starter()
    data["dependencies"][1]["alerts"] = {"memory_ratio": 1.5, "memory_bytes": 0}
    message = error_of(data)
    assert "dependencies[1]: alerts.memory_ratio: Input should be less than 1" in message
    assert "alerts.memory_bytes: Input should be greater than 0" in message
    assert "(dependency 'cache')" in message
    data = starter()
    data["dependencies"][0]["alerts"] = {"connections_severity": "page"}
    assert "alerts.connections_severity: Input should be 'critical', 'warning'" in error_of(data)


def test_disk_warning_must_come_before_critical() -> None:
    data = starter()
    data["dependencies"][2]["alerts"] = {"disk_free_warning": 0.05, "disk_free_critical": 0.1}
    message = error_of(data)
    assert "dependencies[2]: alerts: disk_free_warning (0.05) must be above" in message
    assert "disk_free_critical (0.1)" in message


def test_hold_times_need_two_evaluations() -> None:
    data = starter()
    data["dependencies"][2]["alerts"] = {"for": "20s"}
    message = error_of(data)
    assert "dependencies[2].alerts.for: 20s is shorter than two evaluation intervals" in message
    data = starter()
    data["dependencies"][0]["alerts"] = {"target_down_for": "0s"}
    assert "alerts.target_down_for: '0s' must be longer than zero" in error_of(data)


def test_deploy_defaults_the_target_to_the_exporter_it_runs() -> None:
    deployed = {"name": "pg", "kind": "postgres", "deploy": True, "dsn": {"env": "PG_DSN"}}
    config = parse_config(starter(deployed, {"name": "node", "kind": "node", "deploy": True}))
    pg, node = config.dependencies[-2:]
    assert pg.targets == ("pg-exporter:9187",)
    assert pg.dsn is not None
    assert pg.dsn.env == "PG_DSN"
    assert node.targets == ("node-exporter:9100",)
    message = error_of(starter({**deployed, "targets": ["db:9187"]}))
    assert "deploy = true runs the exporter as 'pg-exporter'" in message
    assert "'pg-exporter:9187'" in message


@pytest.mark.parametrize(
    ("dependency", "expected"),
    [
        (
            {"name": "pg", "kind": "postgres", "deploy": True},
            "runs postgres_exporter, which needs dsn = { env = 'PG_DSN' }",
        ),
        (
            {"name": "pg", "kind": "postgres", "deploy": True, "dsn": "postgresql://u:p@db/x"},
            "dependencies[3].dsn: secrets are never written inline",
        ),
        ({"name": "r", "kind": "redis", "deploy": True}, "needs address = 'redis:6379'"),
        (
            {"name": "r", "kind": "redis", "deploy": True, "address": "redis"},
            "'redis' is not a scrape target",
        ),
        (
            {"name": "r", "kind": "redis", "targets": ["r:9121"], "address": "redis:6379"},
            "address is used only when glassbox runs the exporter: add deploy = true",
        ),
        (
            {"name": "r", "kind": "redis", "deploy": True, "dsn": {"env": "X"}},
            "dsn is a setting of a deployed postgres exporter; a redis dependency takes address",
        ),
        (
            {"name": "n", "kind": "node", "deploy": True, "uri": {"env": "X"}},
            "a node dependency needs no connection setting",
        ),
        (
            {"name": "m", "kind": "mongodb", "deploy": True, "uri": {"file": "/run/secrets/m"}},
            "mongodb_exporter reads its URI only from the environment",
        ),
        (
            {"name": "q", "kind": "qdrant", "targets": ["q:6333"], "deploy": True},
            "qdrant serves its own /metrics, so there is no exporter to deploy",
        ),
    ],
)
def test_deploy_settings_are_checked(dependency: dict[str, Any], expected: str) -> None:
    assert expected in error_of(starter(dependency))


def test_kubernetes_namespace_and_labels() -> None:
    config = parse_config(starter())
    assert config.kubernetes.namespace == "monitoring"
    assert config.kubernetes.labels == {}
    config = parse_config(
        starter(kubernetes={"namespace": "kalki", "labels": {"team": "kalki", "a.b/c": "d"}})
    )
    assert config.kubernetes.labels == {"team": "kalki", "a.b/c": "d"}
    for kubernetes, expected in (
        ({"namespace": "Kalki_NS"}, "kubernetes.namespace: 'Kalki_NS' is not a Kubernetes"),
        ({"labels": {"team": "kal ki"}}, "team: 'kal ki' is not a Kubernetes label value"),
        ({"labels": {"-team": "x"}}, "'-team' is not a Kubernetes label key"),
        ({"labels": {"app.kubernetes.io/part-of": "x"}}, "is set by glassbox itself"),
        ({"labelz": {}}, "kubernetes.labelz: unknown setting"),
    ):
        assert expected in error_of(starter(kubernetes=kubernetes)), kubernetes


def test_the_starters_commented_dependency_settings_load() -> None:
    """Uncommented, the settings the starter documents are valid as written."""
    block = STARTER[STARTER.index("# Dependencies are scraped") : STARTER.index("[[receivers]]")]
    lines = []
    for line in block.splitlines():
        setting = re.match(r"^# ((\[|\w+ = ).*)$", line)
        lines.append(setting.group(1) if setting else line)
    text = STARTER.replace(block, "\n".join(lines) + "\n")
    text = text.replace('targets = ["127.0.0.1:9187"]', "", 1)  # deploy = true brings its own
    config = parse_config(tomllib.loads(text))
    db, cache, host = config.dependencies
    assert (db.deploy, db.targets) == (True, ("db-exporter:9187",))
    assert db.alerts == PostgresAlerts()
    assert isinstance(cache.alerts, RedisAlerts)
    assert cache.alerts.memory_bytes == 1_000_000_000
    assert isinstance(host.alerts, NodeAlerts)
    assert (host.alerts.disk_free_warning, host.alerts.for_) == (0.15, "5m")
    assert config.kubernetes.labels == {"team": "shop"}


@pytest.mark.parametrize("kind", [[], {}, 5, None])
def test_a_kind_of_the_wrong_type_is_a_clear_error(kind: object) -> None:
    error = error_of(starter({"name": "db", "kind": kind, "targets": ["127.0.0.1:9187"]}))
    assert "dependencies[3].kind: Input should be" in error


def test_an_odd_setting_name_is_quoted_in_the_error() -> None:
    dependency = {"name": "db", "kind": "postgres", "targets": ["127.0.0.1:9187"]}
    error = error_of(starter({**dependency, "alerts": {"\n": 1}}))
    assert "alerts.'\\n' is not an alert setting of postgres dependency 'db'" in error
    assert all(line.startswith("glassbox.toml: ") for line in error.splitlines()), error
