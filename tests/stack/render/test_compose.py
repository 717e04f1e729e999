"""compose.yaml: pinned images, loopback-only ports, secrets never inline; check_compose."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import yaml

from glassbox.stack.config import StackConfig, parse_config
from glassbox.stack.exporters import (
    CADVISOR_IMAGE,
    MONGODB_EXPORTER_IMAGE,
    NODE_EXPORTER_IMAGE,
    POSTGRES_EXPORTER_IMAGE,
    REDIS_EXPORTER_IMAGE,
)
from glassbox.stack.render.compose import (
    ALERTMANAGER_IMAGE,
    GRAFANA_FALLBACK_IMAGE,
    PROMETHEUS_IMAGE,
    check_compose,
    grafana_image,
    render_compose,
    secret_env_vars,
)
from glassbox.stack.render.logs import (
    ALLOY_IMAGE,
    JAEGER_IMAGE,
    LOKI_IMAGE,
    TEMPO_IMAGE,
    render_logs,
)

#: Secret values planted in the environment; no generated file may contain them.
PLANTED = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/planted-slack-secret",
    "PAGERDUTY_ROUTING_KEY": "planted-pagerduty-routing-key",
    "CHECKOUT_METRICS_TOKEN": "planted-metrics-token",
    "GRAFANA_ADMIN_PASSWORD": "planted-grafana-password",
}

STACK: dict[str, Any] = {
    "project": "shop",
    "environment": "production",
    "prometheus": {
        "scrape_interval": "30s",
        "evaluation_interval": "30s",
        "retention_time": "30d",
        "retention_size": "50GB",
        "remote_write": [
            {
                "name": "mimir",
                "kind": "mimir",
                "url": "https://mimir.example.com/api/v1/push",
                "tenant": "shop",
                "basic_auth_username": "shop",
                "basic_auth_password": {"file": "secrets/mimir_password"},
            }
        ],
    },
    "services": [
        {
            "name": "checkout-api",
            "targets": ["host.docker.internal:8000", "10.0.0.12:8000"],
            "metrics_token": {"env": "CHECKOUT_METRICS_TOKEN"},
            "slos": [{"name": "availability", "kind": "availability", "objective": 99.9}],
        },
        {"name": "worker", "targets": ["host.docker.internal:8001"], "metrics_path": "/m"},
    ],
    "dependencies": [{"name": "db", "kind": "postgres", "targets": ["db-exporter:9187"]}],
    "receivers": [
        {
            "name": "ops-slack",
            "kind": "slack",
            "api_url": {"env": "SLACK_WEBHOOK_URL"},
            "channel": "#ops",
        },
        {"name": "oncall", "kind": "pagerduty", "routing_key": {"env": "PAGERDUTY_ROUTING_KEY"}},
    ],
    "routing": {"routes": [{"severity": "critical", "receivers": ["oncall", "ops-slack"]}]},
}


def stack_config(monkeypatch: pytest.MonkeyPatch | None = None) -> StackConfig:
    """A realistic glassbox.toml; with ``monkeypatch``, the secrets are in the environment."""
    if monkeypatch is not None:
        for name, value in PLANTED.items():
            monkeypatch.setenv(name, value)
    return parse_config(STACK)


def assert_no_planted_secret(files: dict[str, str]) -> None:
    for path, text in files.items():
        for name, value in PLANTED.items():
            assert value not in text, f"{path} contains the value of {name}"


@pytest.fixture
def compose(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    text = render_compose(stack_config(monkeypatch))["compose.yaml"]
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def test_services_and_pinned_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert list(services) == ["prometheus", "alertmanager", "grafana", "loki", "tempo", "alloy"]
    assert services["prometheus"]["image"] == PROMETHEUS_IMAGE == "prom/prometheus:v2.55.1"
    assert services["alertmanager"]["image"] == ALERTMANAGER_IMAGE == "prom/alertmanager:v0.28.1"
    assert services["loki"]["image"] == LOKI_IMAGE
    assert services["tempo"]["image"] == TEMPO_IMAGE
    assert services["alloy"]["image"] == ALLOY_IMAGE
    assert services["grafana"]["image"] == grafana_image()
    for name, service in services.items():
        repo, _, tag = service["image"].rpartition(":")
        assert repo, name
        assert tag not in ("", "latest"), name
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"][0] == "CMD", name
    assert compose["name"] == "shop"


def test_jaeger_takes_tempos_place_and_passes_the_compose_check() -> None:
    config = parse_config({**STACK, "tracing": {"backend": "jaeger"}})
    text = render_compose(config)["compose.yaml"]
    assert check_compose(text) == []
    document = yaml.safe_load(text)
    services = document["services"]
    assert list(services) == ["prometheus", "alertmanager", "grafana", "loki", "jaeger", "alloy"]
    jaeger = services["jaeger"]
    assert jaeger["image"] == JAEGER_IMAGE
    assert jaeger["command"] == ["--config", "/etc/jaeger/jaeger.yml"]
    assert jaeger["ports"] == ["127.0.0.1:16686:16686"]
    assert "./jaeger/jaeger.yml:/etc/jaeger/jaeger.yml:ro" in jaeger["volumes"]
    assert "jaeger-data:/tmp" in jaeger["volumes"]
    assert "jaeger" in services["grafana"]["depends_on"]
    assert "jaeger" in services["alloy"]["depends_on"]
    assert "tempo-data" not in document["volumes"]
    assert "jaeger-data" in document["volumes"]
    # the files compose mounts are the ones glassbox writes
    assert "jaeger/jaeger.yml" in render_logs(config)


def test_grafana_image_follows_the_grafana_renderer() -> None:
    try:
        module = importlib.import_module("glassbox.stack.render.grafana")
    except ModuleNotFoundError:
        assert grafana_image() == GRAFANA_FALLBACK_IMAGE
    else:
        assert grafana_image() == module.GRAFANA_IMAGE


def test_every_port_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    published = []
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert isinstance(port, str)
            host, host_port, container_port = port.split(":")
            assert host == "127.0.0.1"
            published.append(int(host_port))
            assert host_port == container_port
    assert sorted(published) == [3000, 3100, 3200, 4317, 4318, 9090, 9093, 12345]


def test_prometheus_flags_and_mounts(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert prometheus["command"] == [
        "--config.file=/etc/prometheus/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        "--storage.tsdb.retention.time=30d",
        "--storage.tsdb.retention.size=50GB",
        "--web.enable-lifecycle",
    ]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]
    assert "prometheus-data:/prometheus" in prometheus["volumes"]


def test_retention_size_is_left_out_when_unset() -> None:
    data = {**STACK, "prometheus": {"retention_time": "7d"}}
    document = yaml.safe_load(render_compose(parse_config(data))["compose.yaml"])
    flags = document["services"]["prometheus"]["command"]
    assert "--storage.tsdb.retention.time=7d" in flags
    assert not any(f.startswith("--storage.tsdb.retention.size") for f in flags)


def test_config_files_are_mounted_read_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith(("./", "/")):
                assert volume.endswith(":ro"), f"{name}: {volume}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


def test_secrets_come_from_env_or_file_and_are_mounted_where_configs_read_them(
    compose: dict[str, Any],
) -> None:
    secrets = compose["secrets"]
    assert secrets == {
        "grafana_admin_password": {"environment": "GRAFANA_ADMIN_PASSWORD"},
        "alertmanager_ops-slack_api_url": {"environment": "SLACK_WEBHOOK_URL"},
        "alertmanager_oncall_routing_key": {"environment": "PAGERDUTY_ROUTING_KEY"},
        # relative to glassbox.toml, seen from monitoring/ where compose.yaml lives
        "prometheus_mimir_basic_auth_password": {"file": "../secrets/mimir_password"},
        "prometheus_checkout-api_metrics_token": {"environment": "CHECKOUT_METRICS_TOKEN"},
    }
    services = compose["services"]
    assert services["alertmanager"]["secrets"] == [
        {
            "source": "alertmanager_ops-slack_api_url",
            "target": "/etc/alertmanager/secrets/ops-slack_api_url",
        },
        {
            "source": "alertmanager_oncall_routing_key",
            "target": "/etc/alertmanager/secrets/oncall_routing_key",
        },
    ]
    assert services["prometheus"]["secrets"] == [
        {
            "source": "prometheus_mimir_basic_auth_password",
            "target": "/etc/prometheus/secrets/mimir_basic_auth_password",
        },
        {
            "source": "prometheus_checkout-api_metrics_token",
            "target": "/etc/prometheus/secrets/checkout-api_metrics_token",
        },
    ]
    grafana = services["grafana"]
    assert grafana["secrets"] == ["grafana_admin_password"]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_secret_paths_match_the_alertmanager_and_prometheus_renderers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alertmanager = importlib.import_module("glassbox.stack.render.alertmanager")
    prometheus = importlib.import_module("glassbox.stack.render.prometheus")
    config = stack_config(monkeypatch)
    document = yaml.safe_load(render_compose(config)["compose.yaml"])
    am_targets = {s["target"] for s in document["services"]["alertmanager"]["secrets"]}
    for receiver in config.receivers:
        for field in receiver.secrets():
            relative = alertmanager.receiver_secret(receiver, field)
            assert f"/etc/alertmanager/{relative}" in am_targets
    prom_targets = {s["target"] for s in document["services"]["prometheus"]["secrets"]}
    for remote in config.prometheus.remote_write:
        relative = prometheus.remote_write_secret(remote, "basic_auth_password")
        assert f"/etc/prometheus/{relative}" in prom_targets
    service = importlib.import_module("glassbox.stack.components.service")
    for svc in config.services:
        if svc.metrics_token is not None:
            assert f"/etc/prometheus/{service.token_file(svc)}" in prom_targets


def test_no_secret_value_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    config = stack_config(monkeypatch)
    files = {**render_compose(config), **render_logs(config)}
    assert_no_planted_secret(files)
    header = files["compose.yaml"].split("\nname:", 1)[0]
    for name in PLANTED:
        assert f"#   {name}" in header
    assert secret_env_vars(config) == sorted(PLANTED)


def test_render_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    assert render_compose(stack_config(monkeypatch)) == render_compose(stack_config())


def test_generated_compose_passes_the_spec_and_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_compose(render_compose(stack_config(monkeypatch))["compose.yaml"]) == []


def _planted(change: Any) -> list[str]:
    document = yaml.safe_load(render_compose(stack_config())["compose.yaml"])
    change(document)
    return check_compose(yaml.safe_dump(document, sort_keys=False))


def _set(path: list[Any], value: Any) -> Any:
    def change(document: dict[str, Any]) -> None:
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set(["services", "grafana", "ports", 0], "0.0.0.0:3000:3000"), "bound to 0.0.0.0"),
        (_set(["services", "grafana", "ports", 0], "3000:3000"), "every interface"),
        (_set(["services", "grafana", "ports", 0], "3000"), "every interface"),
        (
            _set(["services", "grafana", "ports", 0], {"target": 3000, "published": 3000}),
            "host_ip",
        ),
        (_set(["services", "loki", "image"], "grafana/loki:latest"), "moving tag 'latest'"),
        (_set(["services", "loki", "image"], "grafana/loki"), "no tag"),
        (
            _set(["services", "grafana", "environment", "GF_SECURITY_ADMIN_PASSWORD"], "hunter2"),
            "inline secret",
        ),
        (
            _set(["services", "alloy", "environment"], ["SLACK_TOKEN=xoxb-1"]),
            "inline secret",
        ),
        (
            _set(["services", "alloy", "environment"], {"REMOTE": "https://u:p@mimir.example"}),
            "user:password",
        ),
        (_set(["services", "prometheus", "healthcheck", "interval"], 15), "not of type"),
        (_set(["services", "prometheus", "bogus"], 1), "bogus"),
        (_set(["secrets", "inline"], {"content": "hunter2"}), "secrets"),
    ],
)
def test_check_compose_catches_planted_defects(change: Any, expected: str) -> None:
    problems = _planted(change)
    assert any(expected in p for p in problems), problems


def test_check_compose_rejects_what_is_not_compose() -> None:
    assert check_compose("services: [") != []
    assert check_compose("- a\n- b\n") == [
        "compose.yaml: not a mapping of services, volumes, secrets"
    ]
    assert any("no services" in p for p in check_compose("name: x\n"))


def test_loopback_ipv6_and_digests_are_accepted() -> None:
    def change(document: dict[str, Any]) -> None:
        document["services"]["grafana"]["ports"] = ["[::1]:3000:3000"]
        document["services"]["loki"]["image"] = "grafana/loki@sha256:" + "a" * 64

    assert _planted(change) == []


#: Every kind glassbox deploys an exporter for, plus one it only scrapes.
DEPLOYED: list[dict[str, Any]] = [
    {"name": "db", "kind": "postgres", "deploy": True, "dsn": {"env": "PG_DSN"}},
    {"name": "cache", "kind": "redis", "deploy": True, "address": "redis:6379"},
    {"name": "docs", "kind": "mongodb", "deploy": True, "uri": {"env": "MONGODB_URI"}},
    {"name": "host", "kind": "node", "deploy": True},
    {"name": "docker", "kind": "containers", "deploy": True},
    {"name": "ext", "kind": "redis", "targets": ["10.0.0.7:9121"]},
]
DEPLOYED_SECRETS = {
    "PG_DSN": "postgresql://monitor:planted-pg-password@db:5432/app",
    "MONGODB_URI": "mongodb://monitor:planted-mongo-password@docs:27017",
}


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, Any]]:
    for name, value in {**PLANTED, **DEPLOYED_SECRETS}.items():
        monkeypatch.setenv(name, value)
    text = render_compose(parse_config({**STACK, "dependencies": DEPLOYED}))["compose.yaml"]
    return text, yaml.safe_load(text)


def test_deployed_exporters_are_pinned_and_unpublished(
    deployed: tuple[str, dict[str, Any]],
) -> None:
    text, document = deployed
    services = document["services"]
    images = {name: services[name]["image"] for name in services if name.endswith("-exporter")}
    assert images == {
        "db-exporter": POSTGRES_EXPORTER_IMAGE,
        "cache-exporter": REDIS_EXPORTER_IMAGE,
        "docs-exporter": MONGODB_EXPORTER_IMAGE,
        "host-exporter": NODE_EXPORTER_IMAGE,
        "docker-exporter": CADVISOR_IMAGE,
    }
    for name in images:
        assert "ports" not in services[name], name  # Prometheus scrapes on the network
        assert services[name]["restart"] == "unless-stopped"
    assert check_compose(text) == []
    for value in DEPLOYED_SECRETS.values():
        assert value not in text
    header = text.split("\nname:", 1)[0]
    assert "#   PG_DSN" in header
    assert "#   MONGODB_URI" in header


def test_postgres_dsn_is_a_compose_secret_read_by_the_launcher(
    deployed: tuple[str, dict[str, Any]],
) -> None:
    _, document = deployed
    assert document["secrets"]["exporter_db_dsn"] == {"environment": "PG_DSN"}
    db = document["services"]["db-exporter"]
    assert db["secrets"] == [
        {"source": "exporter_db_dsn", "target": "/run/secrets/exporter_db_dsn"}
    ]
    assert "environment" not in db
    shell, flag, script, _ = db["entrypoint"]
    assert (shell, flag) == ("/bin/sh", "-c")
    # $$ is Compose's escape: the container's shell sees $(cat ...) and "$@"
    assert script == (
        'DATA_SOURCE_NAME="$$(cat /run/secrets/exporter_db_dsn)" exec /bin/postgres_exporter "$$@"'
    )


def test_connection_settings_of_redis_and_mongodb(deployed: tuple[str, dict[str, Any]]) -> None:
    _, document = deployed
    services = document["services"]
    assert services["cache-exporter"]["environment"] == {"REDIS_ADDR": "redis://redis:6379"}
    # the exporter reads no file and its image has no shell: the variable, never its value
    assert services["docs-exporter"]["environment"] == {
        "MONGODB_URI": "${MONGODB_URI:?set MONGODB_URI (see glassbox.toml)}"
    }
    assert "ext-exporter" not in services
    # without the diagnostic-data collector it serves mongodb_up and nothing the rules use
    assert services["docs-exporter"]["command"] == ["--collector.diagnosticdata"]


def test_host_exporters_mount_the_host_read_only(deployed: tuple[str, dict[str, Any]]) -> None:
    _, document = deployed
    node = document["services"]["host-exporter"]
    assert node["volumes"] == ["/proc:/host/proc:ro", "/sys:/host/sys:ro", "/:/host/root:ro"]
    assert node["pid"] == "host"
    assert "--path.rootfs=/host/root" in node["command"]
    # a literal $ in an argument is escaped from Compose's interpolation
    (exclude,) = [c for c in node["command"] if c.startswith("--collector.filesystem")]
    assert exclude.endswith("($$|/)")
    cadvisor = document["services"]["docker-exporter"]
    assert all(v.endswith(":ro") for v in cadvisor["volumes"])
    assert "/var/lib/docker:/var/lib/docker:ro" in cadvisor["volumes"]
    assert "privileged" not in cadvisor
