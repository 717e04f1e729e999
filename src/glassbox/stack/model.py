"""The neutral model every component returns and every renderer reads.

A component (the service, its SLOs, PostgreSQL, Redis, the node, ...) is one bundle:
its scrape jobs, its recording rules and alerts (each alert with the promtool cases
that make it fire and keep it quiet) and its dashboard rows. Renderers only turn
bundles into files (``prometheus.yml``, rule files, Grafana JSON, Kubernetes objects),
so adding a dependency kind means adding one component, not editing every renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "Alert",
    "AlertCase",
    "Bundle",
    "Dashboard",
    "Expected",
    "Panel",
    "Query",
    "Recording",
    "Row",
    "RuleGroup",
    "ScrapeJob",
    "Series",
    "Variable",
]

Severity = Literal["critical", "warning", "info"]


@dataclass(frozen=True, slots=True)
class ScrapeJob:
    """One Prometheus scrape job."""

    name: str
    targets: tuple[str, ...]
    metrics_path: str = "/metrics"
    scheme: str = "http"
    labels: tuple[tuple[str, str], ...] = ()
    #: Path of a file holding a bearer token (``authorization.credentials_file``).
    credentials_file: str | None = None
    scrape_interval: str | None = None


@dataclass(frozen=True, slots=True)
class Series:
    """An input series of a promtool test: ``'metric{a="b"}'`` and ``'0+10x60'``."""

    series: str
    values: str


@dataclass(frozen=True, slots=True)
class Expected:
    """One alert expected to be firing: its labels (beyond the alert's own) and value.

    ``value`` is what the alert's expression evaluates to on the case's series; the
    renderer expands the description template with it, so a case proves the value too.
    """

    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class AlertCase:
    """A promtool case: on these series, at ``eval_time``, exactly ``firing`` fire."""

    name: str
    series: tuple[Series, ...]
    eval_time: str
    firing: tuple[Expected, ...] = ()
    interval: str = "1m"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alerting rule with its annotations and test cases.

    ``summary`` is static text; ``description`` is a Go template that may use
    ``{{ $labels.<name> }}`` and ``{{ $value }}`` with ``humanize``,
    ``humanizePercentage`` or ``humanizeDuration``.
    """

    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str
    labels: tuple[tuple[str, str], ...] = ()
    cases: tuple[AlertCase, ...] = ()
    #: The labels the alert carries from its expression (checked against inhibit rules).
    expr_labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Recording:
    """A recording rule."""

    record: str
    expr: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RuleGroup:
    """A Prometheus rule group (one evaluation loop)."""

    name: str
    rules: tuple[Alert | Recording, ...]
    interval: str | None = None

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return tuple(r for r in self.rules if isinstance(r, Alert))

    @property
    def recordings(self) -> tuple[Recording, ...]:
        return tuple(r for r in self.rules if isinstance(r, Recording))

    def labelled(self, labels: Mapping[str, str]) -> RuleGroup:
        """The group with ``labels`` added to every alert (recording rules unchanged)."""
        if not labels:
            return self
        rules = tuple(
            replace(r, labels=(*r.labels, *sorted(labels.items()))) if isinstance(r, Alert) else r
            for r in self.rules
        )
        return replace(self, rules=rules)


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL query of a panel, with its legend (``{{route}}``)."""

    expr: str
    legend: str = ""


@dataclass(frozen=True, slots=True)
class Panel:
    """A dashboard panel.

    ``unit`` is a Grafana unit id (``reqps``, ``percentunit``, ``s``, ``bytes``,
    ``short``). ``kind`` picks the visualisation. ``thresholds`` are (value, colour)
    steps above the base colour.
    """

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat", "gauge", "table"] = "timeseries"
    description: str = ""
    thresholds: tuple[tuple[float, str], ...] = ()
    width: int = 12
    height: int = 8


@dataclass(frozen=True, slots=True)
class Row:
    """A titled row of panels."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class Variable:
    """A dashboard template variable fed by ``label_values(<metric>, <label>)``."""

    name: str
    label: str
    metric: str
    multi: bool = True
    include_all: bool = True


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A dashboard: a fixed uid, its variables and rows."""

    uid: str
    title: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    tags: tuple[str, ...] = ("glassbox",)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Bundle:
    """What one component contributes to the stack."""

    name: str
    jobs: tuple[ScrapeJob, ...] = ()
    groups: tuple[RuleGroup, ...] = ()
    dashboards: tuple[Dashboard, ...] = ()
    #: Metric names (without _bucket/_sum/_count suffixes) the component's sources emit,
    #: with their types; verify checks every rule and dashboard query against these.
    metrics: dict[str, str] = field(default_factory=dict)

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return tuple(a for g in self.groups for a in g.alerts)

    def labelled(self, labels: Mapping[str, str]) -> Bundle:
        """The bundle with ``labels`` added to every alert."""
        return replace(self, groups=tuple(g.labelled(labels) for g in self.groups))
