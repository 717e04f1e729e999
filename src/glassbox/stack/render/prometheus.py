"""``prometheus.yml``, the rule files and their promtool tests.

Paths inside ``prometheus.yml`` are relative to its own directory (Prometheus resolves
them so), which lets the same file run under compose, Kubernetes or ``glassbox up``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from glassbox.stack.config import RemoteWrite, StackConfig
from glassbox.stack.model import Alert, AlertCase, Bundle, Recording, RuleGroup
from glassbox.stack.render._yaml import dump
from glassbox.stack.templates import expand

__all__ = [
    "alert_annotations",
    "alert_rule",
    "remote_write_secret",
    "render_prometheus",
    "rule_file",
    "rule_group",
]

#: Evaluation interval of the generated promtool tests whose series are per minute.
TEST_INTERVAL = "60s"


def remote_write_secret(remote: RemoteWrite, field: str) -> str:
    """Where Prometheus reads a remote_write secret, relative to prometheus.yml."""
    return f"secrets/{remote.name}_{field}"


def alert_annotations(config: StackConfig, alert: Alert) -> dict[str, str]:
    return {
        "summary": alert.summary,
        "description": alert.description,
        "runbook_url": f"{config.runbook_url.rstrip('/')}/{alert.name}.md",
    }


def alert_rule(config: StackConfig, alert: Alert) -> dict[str, Any]:
    """One alerting rule in the rule-file format."""
    return {
        "alert": alert.name,
        "expr": alert.expr,
        "for": alert.for_,
        "labels": {"severity": alert.severity, **dict(alert.labels)},
        "annotations": alert_annotations(config, alert),
    }


def _recording(rule: Recording) -> dict[str, Any]:
    out: dict[str, Any] = {"record": rule.record, "expr": rule.expr}
    if rule.labels:
        out["labels"] = dict(rule.labels)
    return out


def rule_group(config: StackConfig, group: RuleGroup) -> dict[str, Any]:
    out: dict[str, Any] = {"name": group.name}
    if group.interval:
        out["interval"] = group.interval
    out["rules"] = [
        alert_rule(config, r) if isinstance(r, Alert) else _recording(r) for r in group.rules
    ]
    return out


def rule_file(config: StackConfig, groups: Sequence[RuleGroup]) -> str:
    return dump({"groups": [rule_group(config, g) for g in groups]})


def _test_case(config: StackConfig, alert: Alert, case: AlertCase) -> dict[str, Any]:
    exp_alerts = []
    for expected in case.firing:
        labels = {**dict(expected.labels), "severity": alert.severity, **dict(alert.labels)}
        notes = alert_annotations(config, alert)
        notes["description"] = expand(alert.description, labels, expected.value)
        exp_alerts.append({"exp_labels": labels, "exp_annotations": notes})
    return {
        "name": f"{alert.name}: {case.name}",
        "interval": case.interval,
        "input_series": [{"series": s.series, "values": s.values} for s in case.series],
        "alert_rule_test": [
            {"eval_time": case.eval_time, "alertname": alert.name, "exp_alerts": exp_alerts}
        ],
    }


def test_files(config: StackConfig, bundle: Bundle) -> dict[str, str]:
    """promtool tests: every alert of the bundle, firing and quiet cases.

    Cases sampled every minute go to ``<bundle>.test.yml``; cases over days, sampled
    more sparsely, to ``<bundle>.<interval>.test.yml`` evaluated at that interval.
    """
    by_interval: dict[str, list[dict[str, Any]]] = {}
    for alert in bundle.alerts:
        for case in alert.cases:
            by_interval.setdefault(case.interval, []).append(_test_case(config, alert, case))
    files = {}
    for interval, tests in by_interval.items():
        suffix = "" if interval == TEST_INTERVAL else f".{interval}"
        files[f"prometheus/tests/{bundle.name}{suffix}.test.yml"] = dump(
            {
                "rule_files": [f"../rules/{bundle.name}.yml"],
                "evaluation_interval": interval,
                # recordings before the alerts that read them, at every step (promtool
                # otherwise orders groups at random, and a 10m step outlives the 5m
                # lookback, so an alert could read nothing)
                "group_eval_order": [g.name for g in bundle.groups],
                "tests": tests,
            }
        )
    return files


def _remote_write(remote: RemoteWrite) -> dict[str, Any]:
    out: dict[str, Any] = {"name": remote.name, "url": remote.url}
    if remote.tenant:
        out["headers"] = {"X-Scope-OrgID": remote.tenant}
    if remote.basic_auth_username is not None:
        out["basic_auth"] = {
            "username": remote.basic_auth_username,
            "password_file": remote_write_secret(remote, "basic_auth_password"),
        }
    if remote.bearer_token is not None:
        out["authorization"] = {"credentials_file": remote_write_secret(remote, "bearer_token")}
    out["queue_config"] = {"max_samples_per_send": 2000, "batch_send_deadline": "5s"}
    if remote.kind == "victoriametrics":
        # VictoriaMetrics accepts the Prometheus remote-write protocol as is.
        out["send_exemplars"] = False
    return out


def prometheus_yml(
    config: StackConfig,
    bundles: Sequence[Bundle],
    *,
    alertmanagers: Sequence[str] = ("alertmanager:9093",),
) -> str:
    p = config.prometheus
    doc: dict[str, Any] = {
        "global": {
            "scrape_interval": p.scrape_interval,
            "evaluation_interval": p.evaluation_interval,
        }
    }
    if p.external_labels:
        doc["global"]["external_labels"] = dict(sorted(p.external_labels.items()))
    doc["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    doc["rule_files"] = ["rules/*.yml"]
    jobs = []
    for bundle in bundles:
        for job in bundle.jobs:
            entry: dict[str, Any] = {"job_name": job.name}
            if job.scrape_interval:
                entry["scrape_interval"] = job.scrape_interval
            if job.metrics_path != "/metrics":
                entry["metrics_path"] = job.metrics_path
            if job.scheme != "http":
                entry["scheme"] = job.scheme
            if job.credentials_file:
                entry["authorization"] = {"credentials_file": job.credentials_file}
            static: dict[str, Any] = {"targets": list(job.targets)}
            if job.labels:
                static["labels"] = dict(job.labels)
            entry["static_configs"] = [static]
            jobs.append(entry)
    doc["scrape_configs"] = jobs
    if p.remote_write:
        doc["remote_write"] = [_remote_write(r) for r in p.remote_write]
    return dump(doc)


def render_prometheus(
    config: StackConfig,
    bundles: Sequence[Bundle],
    *,
    alertmanagers: Sequence[str] = ("alertmanager:9093",),
) -> dict[str, str]:
    """``prometheus/prometheus.yml``, ``prometheus/rules/*.yml``, ``prometheus/tests/*``."""
    files = {
        "prometheus/prometheus.yml": prometheus_yml(config, bundles, alertmanagers=alertmanagers)
    }
    for bundle in bundles:
        if not bundle.groups:
            continue
        files[f"prometheus/rules/{bundle.name}.yml"] = rule_file(config, bundle.groups)
        files.update(test_files(config, bundle))
    return files
