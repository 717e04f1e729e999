"""kubernetes/: ServiceMonitors, PrometheusRules, dashboard ConfigMaps, the Alertmanager
Secret and the kustomization; check_kubernetes against Kubernetes' and the operator's
schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from glassbox.stack.build import merge_dashboards
from glassbox.stack.components import collect
from glassbox.stack.config import StackConfig, parse_config
from glassbox.stack.model import Alert, Recording, RuleGroup
from glassbox.stack.render.alertmanager import render_alertmanager
from glassbox.stack.render.grafana import render_grafana
from glassbox.stack.render.kubernetes import (
    ALERTMANAGER_CONFIG_SECRET,
    ALERTMANAGER_SECRETS,
    KUSTOMIZATION,
    check_kubernetes,
    exporter_secret,
    metrics_token_secret,
    render_kubernetes,
)
from glassbox.stack.render.prometheus import render_prometheus
from glassbox.stack.schemas import SCHEMA_DIR_ENV, schema_dir
from tests.stack.render.test_compose import (
    DEPLOYED,
    DEPLOYED_SECRETS,
    PLANTED,
    STACK,
    assert_no_planted_secret,
    stack_config,
)

crd_schema = pytest.mark.skipif(
    schema_dir() is None or shutil.which("node") is None,
    reason="the Prometheus Operator CRD schema (npm, .cache/schemas) or Node.js is missing;"
    " scripts/setup.sh installs it",
)


def _render(config: StackConfig, **overrides: Any) -> tuple[dict[str, str], list[RuleGroup]]:
    bundles = collect(config)
    groups = [g for b in bundles for g in b.groups]
    alertmanager = render_alertmanager(config, bundles)
    grafana = render_grafana(
        merge_dashboards(bundles), scrape_interval=config.prometheus.scrape_interval
    )
    arguments: dict[str, Any] = {
        "groups": groups,
        "dashboards": {k: v for k, v in grafana.items() if k.endswith(".json")},
        "alertmanager_yml": alertmanager["alertmanager/alertmanager.yml"],
        "alertmanager_templates": {k: v for k, v in alertmanager.items() if k.endswith(".tmpl")},
    }
    arguments.update(overrides)
    return render_kubernetes(config, **arguments), groups


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], list[RuleGroup]]:
    return _render(stack_config(monkeypatch))


@pytest.fixture
def files(rendered: tuple[dict[str, str], list[RuleGroup]]) -> dict[str, str]:
    return rendered[0]


def _objects(files: dict[str, str], kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for path, text in files.items():
        doc = yaml.safe_load(text)
        if doc.get("kind") == kind:
            out[path] = doc
    return out


def test_layout_and_kustomization_lists_every_file(files: dict[str, str]) -> None:
    assert all(p.startswith("kubernetes/") for p in files)
    kustomization = yaml.safe_load(files[KUSTOMIZATION])
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["namespace"] == "monitoring"
    listed = [f"kubernetes/{r}" for r in kustomization["resources"]]
    assert sorted(listed) == sorted(p for p in files if p != KUSTOMIZATION)
    assert len(set(listed)) == len(listed)
    assert listed[0] == "kubernetes/alertmanager-secret.yaml"
    kinds = [yaml.safe_load(files[p])["kind"] for p in listed]
    # stable order: Secret, what scrapes (and deployed exporters), PrometheusRules, dashboards
    rank = {"Secret": 0, "ServiceMonitor": 1, "ScrapeConfig": 1, "PrometheusRule": 2}
    rank |= {"Deployment": 1, "DaemonSet": 1, "Service": 1, "ConfigMap": 3}
    assert [rank[k] for k in kinds] == sorted(rank[k] for k in kinds)
    for path in listed:
        assert yaml.safe_load(files[path])["metadata"]["namespace"] == "monitoring"


def test_render_is_deterministic(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
    again, _ = _render(stack_config(monkeypatch))
    assert again == files


def test_one_service_monitor_per_service(files: dict[str, str]) -> None:
    monitors = _objects(files, "ServiceMonitor")
    assert sorted(monitors) == [
        "kubernetes/servicemonitors/checkout-api.yaml",
        "kubernetes/servicemonitors/worker.yaml",
    ]
    checkout = monitors["kubernetes/servicemonitors/checkout-api.yaml"]
    assert checkout["apiVersion"] == "monitoring.coreos.com/v1"
    assert checkout["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "checkout-api"}
    }
    [endpoint] = checkout["spec"]["endpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": metrics_token_secret("checkout-api"), "key": "token"},
    }
    assert {"targetLabel": "service", "replacement": "checkout-api", "action": "replace"} in (
        endpoint["relabelings"]
    )
    [worker] = monitors["kubernetes/servicemonitors/worker.yaml"]["spec"]["endpoints"]
    assert worker["path"] == "/m"
    assert "authorization" not in worker


def test_a_service_scrape_interval_reaches_its_service_monitor() -> None:
    data = json.loads(json.dumps(STACK))
    data["services"][1]["scrape_interval"] = "10s"
    data["services"][1]["alerts"] = {"window": "1m"}
    monitors = _objects(_render(parse_config(data))[0], "ServiceMonitor")
    [worker] = monitors["kubernetes/servicemonitors/worker.yaml"]["spec"]["endpoints"]
    [checkout] = monitors["kubernetes/servicemonitors/checkout-api.yaml"]["spec"]["endpoints"]
    assert (worker["interval"], checkout["interval"]) == ("10s", "30s")


def _group_from_yaml(data: dict[str, Any]) -> RuleGroup:
    rules: list[Alert | Recording] = []
    for rule in data["rules"]:
        labels = dict(rule.get("labels", {}))
        if "alert" in rule:
            severity = labels.pop("severity")
            rules.append(
                Alert(
                    name=rule["alert"],
                    expr=rule["expr"],
                    for_=rule["for"],
                    severity=severity,
                    summary=rule["annotations"]["summary"],
                    description=rule["annotations"]["description"],
                    labels=tuple(labels.items()),
                )
            )
        else:
            rules.append(Recording(rule["record"], rule["expr"], tuple(labels.items())))
    return RuleGroup(data["name"], tuple(rules), data.get("interval"))


def _comparable(group: RuleGroup) -> RuleGroup:
    """A group without what a rule file does not carry (test cases, expression labels)."""
    rules: list[Alert | Recording] = [
        Alert(r.name, r.expr, r.for_, r.severity, r.summary, r.description, labels=r.labels)
        if isinstance(r, Alert)
        else r
        for r in group.rules
    ]
    return RuleGroup(group.name, tuple(rules), group.interval)


def test_prometheus_rules_round_trip_to_the_groups_given(
    rendered: tuple[dict[str, str], list[RuleGroup]],
) -> None:
    files, groups = rendered
    assert len(groups) > 5
    rules = _objects(files, "PrometheusRule")
    assert len(rules) == len(groups)
    found = []
    for doc in rules.values():
        [group] = doc["spec"]["groups"]
        found.append(_group_from_yaml(group))
        for rule in group["rules"]:
            if "alert" in rule:
                url = rule["annotations"]["runbook_url"]
                assert url.endswith(f"/{rule['alert']}.md")
    assert sorted(found, key=lambda g: g.name) == sorted(
        (_comparable(g) for g in groups), key=lambda g: g.name
    )


def test_prometheus_rules_equal_the_rule_files(monkeypatch: pytest.MonkeyPatch) -> None:
    config = stack_config(monkeypatch)
    files, _ = _render(config)
    in_files = [
        g
        for path, text in render_prometheus(config, collect(config)).items()
        if path.startswith("prometheus/rules/")
        for g in yaml.safe_load(text)["groups"]
    ]
    in_kubernetes = [doc["spec"]["groups"][0] for doc in _objects(files, "PrometheusRule").values()]
    key = lambda g: g["name"]  # noqa: E731
    assert sorted(in_kubernetes, key=key) == sorted(in_files, key=key)


def test_dashboards_are_config_maps_for_the_grafana_sidecar(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, str]
) -> None:
    maps = _objects(files, "ConfigMap")
    assert maps
    for path, doc in maps.items():
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        [(key, text)] = doc["data"].items()
        uid = key.removesuffix(".json")
        assert json.loads(text)["uid"] == uid
        assert path.startswith("kubernetes/dashboards/")
    # keys may be uids as well as file paths
    config = stack_config(monkeypatch)
    by_uid, _ = _render(config, dashboards={"glassbox-x": '{"uid": "glassbox-x"}'})
    [only] = _objects(by_uid, "ConfigMap").values()
    assert only["metadata"]["name"] == "glassbox-dashboard-x"
    assert only["data"] == {"glassbox-x.json": '{"uid": "glassbox-x"}'}


def test_alertmanager_config_secret(files: dict[str, str]) -> None:
    [secret] = _objects(files, "Secret").values()
    assert secret["metadata"]["name"] == ALERTMANAGER_CONFIG_SECRET == "alertmanager-glassbox"
    data = secret["stringData"]
    assert sorted(data) == ["alertmanager.yaml", "glassbox.tmpl"]
    config = yaml.safe_load(data["alertmanager.yaml"])
    assert config["templates"] == ["/etc/alertmanager/config/*.tmpl"]
    files_read = sorted(
        v
        for receiver in config["receivers"]
        for configs in receiver.values()
        if isinstance(configs, list)
        for c in configs
        for k, v in c.items()
        if k.endswith("_file")
    )
    base = f"/etc/alertmanager/secrets/{ALERTMANAGER_SECRETS}"
    assert files_read == [f"{base}/oncall_routing_key", f"{base}/ops-slack_api_url"]


def test_no_secret_value_is_written(files: dict[str, str]) -> None:
    assert_no_planted_secret(files)


def test_bad_namespace_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="namespace"):
        _render(stack_config(monkeypatch), namespace="Monitoring_NS")


# --------------------------------------------------------------------------- checks


def _edit(files: dict[str, str], path: str, change: Any) -> dict[str, str]:
    doc = yaml.safe_load(files[path])
    change(doc)
    return {**files, path: yaml.safe_dump(doc, sort_keys=False)}


SM = "kubernetes/servicemonitors/checkout-api.yaml"


@crd_schema
def test_generated_manifests_pass_every_schema(files: dict[str, str]) -> None:
    assert check_kubernetes(files) == []


def test_generated_manifests_pass_without_the_crd_schema(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SCHEMA_DIR_ENV, str(tmp_path))
    problems = check_kubernetes(files)
    assert len(problems) == 1
    assert "CRD schema, which is unavailable" in problems[0]
    assert SCHEMA_DIR_ENV in problems[0]
    assert check_kubernetes(files, require_crd_schema=False) == []


@crd_schema
def test_crd_schema_catches_a_wrong_field_type(files: dict[str, str]) -> None:
    def wrong_type(doc: dict[str, Any]) -> None:
        doc["spec"]["endpoints"][0]["honorLabels"] = "yes"

    problems = check_kubernetes(_edit(files, SM, wrong_type))
    assert problems == [
        "kubernetes/servicemonitors/checkout-api.yaml: ServiceMonitor glassbox-checkout-api:"
        " spec.endpoints[0].honorLabels: must be boolean"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["spec"]["endpoints"][0].update(interval=15), "spec.endpoints[0].interval"),
        (lambda d: d["spec"].update(endpoints="http"), "spec.endpoints"),
        (lambda d: d["spec"].update(selector="checkout-api"), "spec.selector"),
        (lambda d: d["spec"]["endpoints"][0].update(path="metrics"), "must start with '/'"),
    ],
)
def test_service_monitor_structure_errors_are_found_with_or_without_schema(
    files: dict[str, str], change: Any, expected: str
) -> None:
    problems = check_kubernetes(_edit(files, SM, change), require_crd_schema=False)
    assert any(expected in p for p in problems), problems


def test_prometheus_rule_structure_errors(files: dict[str, str]) -> None:
    path = next(p for p in files if p.startswith("kubernetes/prometheusrules/"))

    def break_rules(doc: dict[str, Any]) -> None:
        rules = doc["spec"]["groups"][0]["rules"]
        rules[0]["expr"] = ""
        rules[0]["frequency"] = "5m"
        rules.append({"alert": "X", "record": "y", "expr": "up"})

    problems = check_kubernetes(_edit(files, path, break_rules), require_crd_schema=False)
    text = "\n".join(problems)
    assert "rules[0].expr: must be a non-empty PromQL string" in text
    assert "rules[0].frequency: unknown field" in text
    assert "needs exactly one of alert and record" in text


def test_core_kinds_are_validated_strictly(files: dict[str, str]) -> None:
    path = next(p for p in files if p.startswith("kubernetes/dashboards/"))
    problems = check_kubernetes(
        _edit(files, path, lambda d: d.update(data={"a.json": 1}, immutible=True)),
        require_crd_schema=False,
    )
    assert any("ConfigMap" in p and path in p for p in problems), problems
    secret = "kubernetes/alertmanager-secret.yaml"
    problems = check_kubernetes(
        _edit(files, secret, lambda d: d.update(stringdata={"x": "y"})), require_crd_schema=False
    )
    assert any("stringdata" in p for p in problems), problems


def test_kustomization_must_list_every_file(files: dict[str, str]) -> None:
    extra = {**files, "kubernetes/servicemonitors/extra.yaml": files[SM]}
    problems = check_kubernetes(extra, require_crd_schema=False)
    assert "kubernetes/kustomization.yaml: does not list kubernetes/servicemonitors/extra.yaml" in (
        problems
    )
    missing = {k: v for k, v in files.items() if k != SM}
    problems = check_kubernetes(missing, require_crd_schema=False)
    assert any(
        "lists kubernetes/servicemonitors/checkout-api.yaml, which does not exist" in p
        for p in problems
    )


def test_alertmanager_secret_without_its_templates_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files, _ = _render(stack_config(monkeypatch), alertmanager_templates=None)
    problems = check_kubernetes(files, require_crd_schema=False)
    assert len(problems) == 1
    assert "matches no key of this Secret" in problems[0]


def test_names_with_underscores_become_dns_names() -> None:
    services = [
        {"name": "billing_worker", "targets": ["b:9000"], "metrics_token": {"env": "BILLING_TOKEN"}}
    ]
    files, _ = _render(parse_config({**STACK, "services": services}))
    monitor = yaml.safe_load(files["kubernetes/servicemonitors/billing_worker.yaml"])
    assert monitor["metadata"]["name"] == "glassbox-billing-worker"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "billing_worker"
    }
    credentials = monitor["spec"]["endpoints"][0]["authorization"]["credentials"]
    assert credentials["name"] == "glassbox-billing-worker-metrics-token"
    assert check_kubernetes(files, require_crd_schema=False) == []


# --------------------------------------------------------------------------- dependencies


def test_each_dependency_is_scraped_with_its_dependency_label(files: dict[str, str]) -> None:
    """A dependency glassbox does not run: a ScrapeConfig of its configured targets."""
    (scrape,) = _objects(files, "ScrapeConfig").values()
    assert scrape["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert scrape["metadata"]["name"] == "glassbox-db"
    spec = scrape["spec"]
    assert spec["staticConfigs"] == [
        {"targets": ["db-exporter:9187"], "labels": {"dependency": "db"}}
    ]
    assert spec["metricsPath"] == "/metrics"
    assert spec["scrapeInterval"] == "30s"
    assert spec["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": "db"}]


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in {**PLANTED, **DEPLOYED_SECRETS}.items():
        monkeypatch.setenv(name, value)
    kubernetes = {"namespace": "kalki-monitoring", "labels": {"team": "kalki"}}
    config = parse_config({**STACK, "dependencies": DEPLOYED, "kubernetes": kubernetes})
    return _render(config)[0]


def test_deployed_exporters_run_as_workloads_with_a_service_monitor(
    deployed: dict[str, str],
) -> None:
    workloads = {**_objects(deployed, "Deployment"), **_objects(deployed, "DaemonSet")}
    assert sorted(workloads) == [
        "kubernetes/exporters/cache-deployment.yaml",
        "kubernetes/exporters/db-deployment.yaml",
        "kubernetes/exporters/docker-daemonset.yaml",
        "kubernetes/exporters/docs-deployment.yaml",
        "kubernetes/exporters/host-daemonset.yaml",
    ]
    services = _objects(deployed, "Service")
    monitors = _objects(deployed, "ServiceMonitor")
    for name in ("db", "cache", "docs", "host", "docker"):
        kind = "daemonset" if name in ("host", "docker") else "deployment"
        workload = workloads[f"kubernetes/exporters/{name}-{kind}.yaml"]
        pods = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"] == pods
        service = services[f"kubernetes/exporters/{name}-service.yaml"]
        assert service["spec"]["selector"] == pods
        assert service["spec"]["ports"][0]["targetPort"] == "metrics"
        monitor = monitors[f"kubernetes/servicemonitors/{name}-exporter.yaml"]
        assert monitor["spec"]["selector"]["matchLabels"] == pods
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == "metrics"
        assert {"action": "replace", "targetLabel": "dependency", "replacement": name} in (
            endpoint["relabelings"]
        )
    # the one dependency glassbox does not run is scraped where glassbox.toml says
    (scrape,) = _objects(deployed, "ScrapeConfig").values()
    assert scrape["spec"]["staticConfigs"][0]["targets"] == ["10.0.0.7:9121"]


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_exporter_connections_come_from_secrets(deployed: dict[str, str]) -> None:
    db = _container(yaml.safe_load(deployed["kubernetes/exporters/db-deployment.yaml"]))
    assert db["env"] == [
        {
            "name": "DATA_SOURCE_NAME",
            "valueFrom": {"secretKeyRef": {"name": exporter_secret("db"), "key": "dsn"}},
        }
    ]
    assert exporter_secret("db") == "glassbox-db-exporter"
    docs = _container(yaml.safe_load(deployed["kubernetes/exporters/docs-deployment.yaml"]))
    assert docs["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "glassbox-docs-exporter",
        "key": "uri",
    }
    cache = _container(yaml.safe_load(deployed["kubernetes/exporters/cache-deployment.yaml"]))
    assert cache["env"] == [{"name": "REDIS_ADDR", "value": "redis://redis:6379"}]
    assert_no_planted_secret(deployed)
    for value in DEPLOYED_SECRETS.values():
        assert not [p for p, text in deployed.items() if value in text]


def test_node_exporter_reads_the_host_read_only(deployed: dict[str, str]) -> None:
    node = yaml.safe_load(deployed["kubernetes/exporters/host-daemonset.yaml"])
    pod = node["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["hostNetwork"] is True
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65534}
    assert {v["hostPath"]["path"] for v in pod["volumes"]} == {"/proc", "/sys", "/"}
    assert all(m["readOnly"] for m in _container(node)["volumeMounts"])
    monitor = yaml.safe_load(deployed["kubernetes/servicemonitors/host-exporter.yaml"])
    assert {
        "action": "replace",
        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
        "targetLabel": "instance",
    } in monitor["spec"]["endpoints"][0]["relabelings"]


def test_namespace_and_labels_of_the_kubernetes_table(deployed: dict[str, str]) -> None:
    kustomization = yaml.safe_load(deployed[KUSTOMIZATION])
    assert kustomization["namespace"] == "kalki-monitoring"
    for path, text in deployed.items():
        if path == KUSTOMIZATION:
            continue
        metadata = yaml.safe_load(text)["metadata"]
        assert metadata["namespace"] == "kalki-monitoring", path
        assert metadata["labels"]["team"] == "kalki", path
        assert metadata["labels"]["app.kubernetes.io/part-of"] == "glassbox", path
    kinds = {yaml.safe_load(t)["kind"] for p, t in deployed.items() if p != KUSTOMIZATION}
    assert {"ServiceMonitor", "PrometheusRule", "ScrapeConfig"} <= kinds
    # an explicit namespace still wins over the table
    config = parse_config({**STACK, "kubernetes": {"namespace": "kalki-monitoring"}})
    files, _ = _render(config, namespace="elsewhere")
    assert yaml.safe_load(files[KUSTOMIZATION])["namespace"] == "elsewhere"


@crd_schema
def test_deployed_exporters_pass_every_schema(deployed: dict[str, str]) -> None:
    assert check_kubernetes(deployed) == []


def test_scrape_config_structure_errors_are_found_with_or_without_schema(
    files: dict[str, str],
) -> None:
    path = "kubernetes/scrapeconfigs/db.yaml"

    def change(doc: dict[str, Any]) -> None:
        doc["spec"]["staticConfigs"][0]["targets"] = ["http://db-exporter:9187/metrics"]
        doc["spec"]["scrapeInterval"] = "30 seconds"

    problems = check_kubernetes(_edit(files, path, change), require_crd_schema=False)
    assert any("'http://db-exporter:9187/metrics' is not host:port" in p for p in problems)
    assert any("spec.scrapeInterval: '30 seconds' is not a duration" in p for p in problems)
