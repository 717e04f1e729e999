"""The monitoring plane watching itself: Prometheus and Alertmanager."""

from __future__ import annotations

from glassbox.stack.components._cases import const, counter, fire_and_quiet
from glassbox.stack.config import StackConfig
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
)

__all__ = ["ALERTMANAGER_JOB", "PROMETHEUS_JOB", "monitoring_bundle"]

PROMETHEUS_JOB = "prometheus"
ALERTMANAGER_JOB = "alertmanager"


def _alert(
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    job: str,
    fire: list[Series],
    quiet: list[Series],
    value: float,
) -> Alert:
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
        labels={"job": job, "instance": "localhost:9090"},
    )


def monitoring_bundle(
    config: StackConfig,
    *,
    prometheus_target: str = "localhost:9090",
    alertmanager_targets: tuple[str, ...] = ("alertmanager:9093",),
) -> Bundle:
    """Scrape jobs and alerts for Prometheus and Alertmanager themselves."""
    p = {"job": PROMETHEUS_JOB, "instance": "localhost:9090"}
    a = {"job": ALERTMANAGER_JOB, "instance": "localhost:9090"}
    pj, aj = f'job="{PROMETHEUS_JOB}"', f'job="{ALERTMANAGER_JOB}"'
    by = "job, instance"
    alerts = (
        _alert(
            "PrometheusConfigReloadFailed",
            f"max by ({by}) (prometheus_config_last_reload_successful{{{pj}}}) == 0",
            "10m",
            "warning",
            "Prometheus could not reload its configuration",
            "{{ $labels.instance }} runs an old configuration: the last reload failed.",
            PROMETHEUS_JOB,
            [const("prometheus_config_last_reload_successful", 0, 20, **p)],
            [const("prometheus_config_last_reload_successful", 1, 20, **p)],
            0,
        ),
        _alert(
            "PrometheusRuleEvaluationFailures",
            f"sum by ({by}) (increase(prometheus_rule_evaluation_failures_total{{{pj}}}[5m])) > 0",
            "10m",
            "critical",
            "Prometheus fails to evaluate rules",
            "{{ $labels.instance }} failed {{ $value | humanize }} rule evaluations in"
            " 5 minutes; alerts may be missed.",
            PROMETHEUS_JOB,
            [counter("prometheus_rule_evaluation_failures_total", 1, 20, rule_group="g", **p)],
            [const("prometheus_rule_evaluation_failures_total", 0, 20, rule_group="g", **p)],
            5,
        ),
        _alert(
            "PrometheusNotificationsFailing",
            f"sum by ({by}) (rate(prometheus_notifications_errors_total{{{pj}}}[5m]))"
            f" / sum by ({by}) (rate(prometheus_notifications_sent_total{{{pj}}}[5m])) > 0.01",
            "10m",
            "critical",
            "Prometheus cannot send alerts to Alertmanager",
            "{{ $labels.instance }} failed to send {{ $value | humanizePercentage }} of"
            " alerts to Alertmanager.",
            PROMETHEUS_JOB,
            [
                counter("prometheus_notifications_errors_total", 6, 20, alertmanager="am", **p),
                counter("prometheus_notifications_sent_total", 12, 20, alertmanager="am", **p),
            ],
            [
                const("prometheus_notifications_errors_total", 0, 20, alertmanager="am", **p),
                counter("prometheus_notifications_sent_total", 12, 20, alertmanager="am", **p),
            ],
            0.5,
        ),
        _alert(
            "PrometheusTargetScrapesFailing",
            f"sum by ({by}) (increase(prometheus_target_scrapes_exceeded_sample_limit_total"
            f"{{{pj}}}[5m])) > 0",
            "10m",
            "warning",
            "Prometheus drops scrapes over the sample limit",
            "{{ $labels.instance }} dropped {{ $value | humanize }} scrapes in 5 minutes"
            " because a target exposed too many series.",
            PROMETHEUS_JOB,
            [counter("prometheus_target_scrapes_exceeded_sample_limit_total", 1, 20, **p)],
            [const("prometheus_target_scrapes_exceeded_sample_limit_total", 0, 20, **p)],
            5,
        ),
        _alert(
            "AlertmanagerConfigReloadFailed",
            f"max by ({by}) (alertmanager_config_last_reload_successful{{{aj}}}) == 0",
            "10m",
            "warning",
            "Alertmanager could not reload its configuration",
            "{{ $labels.instance }} runs an old configuration: the last reload failed.",
            ALERTMANAGER_JOB,
            [const("alertmanager_config_last_reload_successful", 0, 20, **a)],
            [const("alertmanager_config_last_reload_successful", 1, 20, **a)],
            0,
        ),
        _alert(
            "AlertmanagerNotificationsFailing",
            f"sum by ({by}) (rate(alertmanager_notifications_failed_total{{{aj}}}[5m]))"
            f" / sum by ({by}) (rate(alertmanager_notifications_total{{{aj}}}[5m])) > 0.01",
            "10m",
            "critical",
            "Alertmanager cannot deliver notifications",
            "{{ $labels.instance }} failed {{ $value | humanizePercentage }} of its"
            " notifications; check the receivers' credentials and reachability.",
            ALERTMANAGER_JOB,
            [
                counter("alertmanager_notifications_failed_total", 3, 20, integration="slack", **a),
                counter("alertmanager_notifications_total", 12, 20, integration="slack", **a),
            ],
            [
                const("alertmanager_notifications_failed_total", 0, 20, integration="slack", **a),
                counter("alertmanager_notifications_total", 12, 20, integration="slack", **a),
            ],
            0.25,
        ),
    )
    dashboard = Dashboard(
        uid="glassbox-monitoring",
        title="Monitoring plane: Prometheus and Alertmanager",
        rows=(
            Row(
                "Prometheus and Alertmanager",
                (
                    Panel("Targets up", (Query("sum by (job) (up)", "{{job}}"),)),
                    Panel(
                        "Rule evaluation failures",
                        (
                            Query(
                                "sum(rate(prometheus_rule_evaluation_failures_total"
                                "[$__rate_interval]))",
                                "failures",
                            ),
                        ),
                        unit="ops",
                    ),
                    Panel(
                        "Notifications sent",
                        (
                            Query(
                                "sum by (integration) (rate(alertmanager_notifications_total"
                                "[$__rate_interval]))",
                                "{{integration}}",
                            ),
                        ),
                        unit="ops",
                    ),
                    Panel(
                        "Head series",
                        (Query("max(prometheus_tsdb_head_series)", "series"),),
                    ),
                ),
            ),
        ),
    )
    metrics = {
        "up": "gauge",
        "prometheus_config_last_reload_successful": "gauge",
        "prometheus_rule_evaluation_failures_total": "counter",
        "prometheus_notifications_errors_total": "counter",
        "prometheus_notifications_sent_total": "counter",
        "prometheus_target_scrapes_exceeded_sample_limit_total": "counter",
        "prometheus_tsdb_head_series": "gauge",
        "alertmanager_config_last_reload_successful": "gauge",
        "alertmanager_notifications_failed_total": "counter",
        "alertmanager_notifications_total": "counter",
    }
    return Bundle(
        name="monitoring",
        jobs=(
            ScrapeJob(PROMETHEUS_JOB, (prometheus_target,)),
            ScrapeJob(ALERTMANAGER_JOB, alertmanager_targets),
        ),
        groups=(RuleGroup("monitoring-alerts", alerts),),
        dashboards=(dashboard,),
        metrics=metrics,
    )
