"""The ``glassbox.toml`` model: what to monitor, what to promise, whom to tell.

:func:`load_config` reads and validates the file. Every error names the file, the
field (``services[0].slos[1].threshold``) and the fix, and nothing is generated from a
file that did not validate. Secrets are never accepted inline: a receiver names the
environment variable or the file that holds each secret.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import promql_parser as pp
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from glassbox.exceptions import ConfigurationError
from glassbox.metrics.catalogue import (
    DEFAULT_BUCKETS,
    RedCatalogue,
    check_buckets,
    check_metric_name,
    le_label,
    red_catalogue,
)
from glassbox.stack.matchers import Matcher, label_name, parse_matcher

__all__ = [
    "ALERT_SETTINGS",
    "DEFAULT_CONFIG_NAME",
    "RESERVED_ALERT_LABELS",
    "ContainerAlerts",
    "Dependency",
    "DependencyAlerts",
    "Inhibit",
    "Kubernetes",
    "LatencyAlert",
    "Logs",
    "Message",
    "MongodbAlerts",
    "NodeAlerts",
    "PostgresAlerts",
    "Prometheus",
    "QdrantAlerts",
    "Receiver",
    "RedisAlerts",
    "RemoteWrite",
    "Route",
    "Routing",
    "Secret",
    "Selector",
    "Service",
    "ServiceAlerts",
    "ServiceRecording",
    "ServiceRule",
    "Slo",
    "StackConfig",
    "TargetDownAlerts",
    "Tracing",
    "duration_seconds",
    "exporter_service",
    "load_config",
]

DEFAULT_CONFIG_NAME = "glassbox.toml"

_DURATION_RE = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?\Z")
#: Milliseconds per unit, in the order of the duration syntax.
_UNITS = (
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)
#: Prometheus keeps durations in signed 64-bit nanoseconds (about 292 years).
_MAX_DURATION_MS = (2**63 - 1) // 1_000_000
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*\Z")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_TARGET_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:_]+:\d{1,5}\Z")


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus duration (``30s``, ``5m``, ``1h30m``, ``28d``)."""
    match = _DURATION_RE.match(value)
    if not value or match is None:
        raise ValueError(
            f"{value!r} is not a Prometheus duration: use a number and a unit, for example"
            " '30s', '5m', '1h30m' or '28d' (units y, w, d, h, m, s, ms)"
        )
    groups = match.groups()
    total = 0
    for index, (_, millis) in enumerate(_UNITS):
        number = groups[index * 2 + 1]
        if number:
            # past 20 digits no unit fits (and int() of a huge digit string is slow)
            total += int(number) * millis if len(number) <= 20 else _MAX_DURATION_MS + 1
    if total > _MAX_DURATION_MS:
        raise ValueError(f"{value[:40]!r} is too long: Prometheus durations end at about 292 years")
    return total / 1000


def _duration(value: str) -> str:
    duration_seconds(value)
    return value


def _positive_duration(value: str) -> str:
    if duration_seconds(value) <= 0:
        raise ValueError(f"{value!r} must be longer than zero")
    return value


def _name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lower-case letters, digits, '-' and '_',"
            " starting with a letter (for example 'checkout-api')"
        )
    return value


def _target(value: str) -> str:
    if not _TARGET_RE.match(value):
        raise ValueError(
            f"{value!r} is not a scrape target: write host:port, for example"
            " '127.0.0.1:8000' or 'api.internal:9187' (no scheme, no path)"
        )
    return value


Duration = Annotated[str, AfterValidator(_duration)]
PositiveDuration = Annotated[str, AfterValidator(_positive_duration)]
Name = Annotated[str, AfterValidator(_name)]
Target = Annotated[str, AfterValidator(_target)]
Severity = Literal["critical", "warning", "info"]

#: Labels glassbox's alerts set themselves; a static label must not replace them.
RESERVED_ALERT_LABELS = frozenset(
    {"alertname", "severity", "service", "dependency", "instance", "job", "slo", "check", "name"}
)


def _alert_labels(value: dict[str, str]) -> dict[str, str]:
    for key, text in value.items():
        label_name(key)
        if key in RESERVED_ALERT_LABELS:
            raise ValueError(
                f"{key!r} is a label glassbox's alerts set themselves; choose another name,"
                " for example 'component' or 'team'"
            )
        if not text:
            raise ValueError(f"label {key!r} needs a value; an empty label is no label")
    return dict(sorted(value.items()))


def _matcher(value: str) -> str:
    return parse_matcher(value).text()


#: Static labels added to every alert of a service or dependency.
AlertLabels = Annotated[dict[str, str], AfterValidator(_alert_labels)]
#: An Alertmanager matcher, kept in its quoted form (``component="database"``).
MatcherText = Annotated[str, AfterValidator(_matcher)]
LabelName = Annotated[str, AfterValidator(label_name)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(_Model):
    """Where a secret lives: an environment variable or a file, never the config."""

    env: str | None = None
    file: Path | None = None

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_RE.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.env is None) == (self.file is None):
            raise ValueError(
                "give exactly one of env = 'VARIABLE_NAME' or file = '/path/to/secret'"
            )
        return self

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"


def _secret(value: Any) -> Any:
    """A plain string in a secret field is refused: secrets never go inline."""
    if isinstance(value, str):
        raise ValueError(
            "secrets are never written inline; use { env = 'VARIABLE_NAME' } or"
            " { file = '/run/secrets/name' }"
        )
    return value


class Slo(_Model):
    """A service level objective, measured from the SDK's RED metrics."""

    name: Name
    kind: Literal["availability", "latency"]
    objective: float = Field(description="per cent of good requests, e.g. 99.9")
    window: Literal["28d", "30d"] = "30d"
    threshold: float | None = Field(
        default=None, description="latency SLOs: seconds, a bucket boundary"
    )

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: float) -> float:
        if not 95 <= value < 100:
            raise ValueError(
                f"{value} is not an objective glassbox can alert on: use a percentage from 95"
                " up to but not including 100, for example 99.9 (below 95 % the fast"
                " burn-rate alert, 14.4 times the budget, could never fire)"
            )
        return value

    @model_validator(mode="after")
    def _threshold(self) -> Self:
        if self.kind == "latency" and self.threshold is None:
            raise ValueError("a latency SLO needs threshold = <seconds>, for example 0.5")
        if self.kind == "availability" and self.threshold is not None:
            raise ValueError("an availability SLO takes no threshold; remove it")
        return self

    @property
    def error_budget(self) -> float:
        """The allowed fraction of bad requests (0.001 for 99.9 %)."""
        return round(1 - self.objective / 100, 10)


class LatencyAlert(_Model):
    """Alert when a latency quantile stays above a threshold (a bucket boundary)."""

    quantile: float = 0.95
    threshold: float = 0.5
    severity: Severity = "warning"
    for_: PositiveDuration = Field(default="10m", alias="for")

    @field_validator("quantile")
    @classmethod
    def _quantile(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"{value} is not a quantile: use a number between 0 and 1")
        return value


class ServiceAlerts(_Model):
    """Thresholds, windows and hold times of a service's own alerts."""

    window: PositiveDuration = Field(
        default="5m", description="rate window of the RED recording rules and alerts"
    )
    error_ratio: float = Field(default=0.05, gt=0, lt=1)
    error_severity: Severity = "critical"
    error_for: PositiveDuration = "5m"
    down_for: PositiveDuration = "2m"
    instance_down_for: PositiveDuration = "5m"
    absent_for: PositiveDuration = "5m"
    saturation_for: PositiveDuration = "10m"
    memory_for: PositiveDuration = "10m"
    dependency_for: PositiveDuration = "2m"
    degraded_for: PositiveDuration = "10m"
    min_request_rate: float = Field(
        default=0.1,
        ge=0,
        description="requests per second below which ratio alerts stay quiet (0: off)",
    )
    latency: tuple[LatencyAlert, ...] = (
        LatencyAlert(quantile=0.95, threshold=0.5, severity="warning"),
        LatencyAlert(quantile=0.99, threshold=2.0, severity="critical"),
    )
    saturation_in_progress: int = Field(default=100, gt=0)
    memory_limit_bytes: int | None = Field(
        default=None,
        gt=0,
        description="a fixed memory limit; by default the container limit the SDK exports"
        " (process_memory_limit_bytes)",
    )
    memory_ratio: float = Field(default=0.9, gt=0, lt=1)


class BusinessMetric(_Model):
    """A business metric of the service, for its dashboard."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    title: str | None = None
    unit: str = "short"
    by: tuple[str, ...] = ()
    aggregate: Literal["sum", "max", "min", "avg"] = Field(
        default="sum",
        description="how a gauge combines across instances: sum (per-instance parts of a"
        " whole) or max/min/avg (every instance reads the same shared value)",
    )

    @field_validator("name")
    @classmethod
    def _metric_name(cls, value: str) -> str:
        try:
            return check_metric_name(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _aggregate_gauges_only(self) -> Self:
        if self.aggregate != "sum" and self.kind != "gauge":
            raise ValueError(
                f"aggregate = {self.aggregate!r}: only a gauge can be combined that way;"
                f" a {self.kind}'s rates are always summed across instances"
            )
        return self


_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
_ALERT_NAME_RE = re.compile(r"^[A-Z][A-Za-z0-9]*\Z")
_RECORD_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+\Z")
_SELECTOR_EXAMPLE = "for example 'tool_executions_total{status=\"error\"}'"


class SelectorMatcher(_Model):
    """One ``label="value"`` or ``label!="value"`` of a selector."""

    label: str
    op: Literal["=", "!="]
    value: str

    def promql(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


class Selector(_Model):
    """A metric name with optional equality matchers, read from ``name{label="value"}``.

    Only ``=`` and ``!=`` are accepted: glassbox writes the test series of each rule,
    and it can always write a label value that matches (or fails) those.
    """

    metric: str
    matchers: tuple[SelectorMatcher, ...] = ()

    def __str__(self) -> str:
        inner = ",".join(m.promql() for m in self.matchers)
        return f"{self.metric}{{{inner}}}" if inner else self.metric

    def promql(self, service: str, suffix: str = "") -> str:
        """The selector of the service's own series (``metric{service="...",...}``)."""
        inner = ",".join((f'service="{service}"', *(m.promql() for m in self.matchers)))
        return f"{self.metric}{suffix}{{{inner}}}"

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(m.label for m in self.matchers)

    def matcher(self, label: str) -> SelectorMatcher | None:
        return next((m for m in self.matchers if m.label == label), None)

    def implies(self, other: SelectorMatcher) -> bool:
        """True if every series this selector matches also satisfies ``other``."""
        mine = self.matcher(other.label)
        if mine is None:
            return False
        if other.op == "=":
            return mine == other
        return mine.value != other.value if mine.op == "=" else mine.value == other.value

    def narrowing(self, wider: Selector) -> SelectorMatcher | None:
        """A matcher of this selector that some series of ``wider`` fail (None: none)."""
        return next((m for m in self.matchers if not wider.implies(m)), None)


def _selector(value: Any) -> Any:
    """Parse ``metric{label="value",...}``; a clear error for anything else."""
    if isinstance(value, Selector):
        return value
    if not isinstance(value, str):
        raise ValueError(f"write the selector as a string, {_SELECTOR_EXAMPLE}")
    try:
        node = pp.parse(value)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{value!r} is not a metric selector ({exc}); {_SELECTOR_EXAMPLE}"
        ) from None
    if (
        not isinstance(node, pp.VectorSelector)
        or node.name is None
        or node.offset is not None
        or node.at is not None
        or node.matchers.or_matchers
    ):
        raise ValueError(
            f"{value!r} is not a plain metric selector: write a metric name with optional"
            f' label="value" or label!="value" matchers, {_SELECTOR_EXAMPLE}'
        )
    matchers: list[SelectorMatcher] = []
    for m in node.matchers.matchers:
        if m.name == "__name__":
            raise ValueError(f"{value!r}: put the metric name before the braces, not in __name__")
        op = "=" if m.op == pp.MatchOp.Equal else "!=" if m.op == pp.MatchOp.NotEqual else None
        if op is None:
            raise ValueError(
                f"{value!r}: {m.name} uses a regular-expression matcher; use = or != (glassbox"
                " writes the rule's test series and must know a value that matches)"
            )
        if m.name in ("service", "le"):
            raise ValueError(
                f"{value!r}: remove the {m.name} matcher; glassbox selects the service's own"
                " series, and le belongs to the histogram"
            )
        if any(c in m.value for c in '"\\\n'):
            raise ValueError(
                f"{value!r}: the value of {m.name} may not hold quotes, backslashes or newlines"
            )
        if any(seen.label == m.name for seen in matchers):
            raise ValueError(f"{value!r}: label {m.name} is matched twice")
        matchers.append(SelectorMatcher(label=m.name, op=op, value=m.value))
    try:
        check_metric_name(node.name)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None
    return Selector(metric=node.name, matchers=tuple(sorted(matchers, key=lambda x: x.label)))


def _alert_name(value: str) -> str:
    if not _ALERT_NAME_RE.match(value):
        raise ValueError(
            f"{value!r} is not an alert name: use CamelCase letters and digits starting with a"
            " capital, for example 'ToolFailureRatioHigh'"
        )
    return value


def _label_names(value: tuple[str, ...]) -> tuple[str, ...]:
    for label in value:
        if not _LABEL_RE.match(label) or label.startswith("__"):
            raise ValueError(f"{label!r} is not a label name: use letters, digits and '_'")
        if label in ("service", "le"):
            raise ValueError(
                f"leave {label!r} out: every rule is grouped by service already, and le"
                " belongs to histograms"
            )
    if len(set(value)) != len(value):
        raise ValueError(f"a label is listed twice: {list(value)}")
    return value


SelectorField = Annotated[Selector, BeforeValidator(_selector)]
RuleKind = Literal["ratio", "rate_above", "rate_below", "quantile_above"]
_RULE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (needed, optional)
    "ratio": (("numerator", "denominator"), ("min_rate",)),
    "rate_above": (("metric",), ()),
    "rate_below": (("metric",), ()),
    "quantile_above": (("metric", "quantile", "buckets"), ("min_rate",)),
}


class ServiceRule(_Model):
    """A custom alert on the service's own counters or histograms, of a kind glassbox tests.

    ``ratio``: ``numerator`` over ``denominator`` (two counter selectors) above
    ``threshold``, while the denominator runs at ``min_rate`` per second or more.
    ``rate_above`` / ``rate_below``: the per-second rate of the counter ``metric``
    against ``threshold``; with no ``by``, ``rate_below`` also fires when the counter
    has no series at all (a stopped or never-started producer), since Prometheus cannot
    tell which group went missing when there is a ``by``.
    ``quantile_above``: a quantile of the histogram ``metric`` above ``threshold``
    seconds, which must be one of its ``buckets`` (and not the last).
    """

    name: Annotated[str, AfterValidator(_alert_name)]
    kind: RuleKind
    severity: Severity
    for_: PositiveDuration = Field(alias="for")
    summary: str | None = None
    by: Annotated[tuple[str, ...], AfterValidator(_label_names)] = ()
    threshold: float
    numerator: SelectorField | None = None
    denominator: SelectorField | None = None
    metric: SelectorField | None = None
    quantile: float | None = None
    buckets: tuple[float, ...] | None = None
    min_rate: float | None = Field(
        default=None, ge=0, description="per-second rate below which the rule stays quiet"
    )

    @field_validator("summary")
    @classmethod
    def _summary(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "{{" in value):
            raise ValueError(
                "the summary is static text (no {{ ... }}); the description carries the values"
            )
        return value

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is None:
            return None
        try:
            return check_buckets(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Self:
        need, optional = _RULE_FIELDS[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} rule needs {', '.join(missing)}")
        extra = [
            f
            for f in ("numerator", "denominator", "metric", "quantile", "buckets", "min_rate")
            if f not in need + optional and getattr(self, f) is not None
        ]
        if extra:
            raise ValueError(f"a {self.kind} rule takes no {', '.join(extra)}; remove it")
        if self.kind == "quantile_above":
            self._check_histogram()
        else:
            for field, selector in self.selectors:
                if not selector.metric.endswith("_total"):
                    raise ValueError(
                        f"{field}: {selector.metric} is not a counter (counters end in _total);"
                        f" a {self.kind} rule reads the rate of a counter"
                    )
        if self.kind == "ratio":
            self._check_ratio()
        elif self.kind == "rate_below" and self.threshold <= 0:
            raise ValueError(
                f"threshold: {self.threshold} per second; a rate is never below 0, use a"
                " positive rate"
            )
        elif self.kind == "rate_above" and self.threshold < 0:
            raise ValueError(f"threshold: {self.threshold} per second must be 0 or more")
        return self

    def _check_ratio(self) -> None:
        assert self.numerator is not None
        assert self.denominator is not None
        if not 0 < self.threshold < 1:
            raise ValueError(
                f"threshold: {self.threshold} is not a ratio; use a number between 0 and 1,"
                " for example 0.05 for 5 %"
            )
        num, den = self.numerator, self.denominator
        if num.metric == den.metric and (
            not all(num.matcher(m.label) is not None and num.implies(m) for m in den.matchers)
            or num.narrowing(den) is None
        ):
            raise ValueError(
                f"numerator {num} must select a part of denominator {den}: every series it"
                " matches must match the denominator, and some of the denominator's must not"
                " match it, for example 'tool_executions_total{status=\"error\"}' over"
                " 'tool_executions_total'"
            )
        grouped = set(self.by) & (num.labels | den.labels)
        if grouped:
            raise ValueError(
                f"by: {', '.join(sorted(grouped))} is matched by the numerator or denominator;"
                " grouping by it would make every ratio 0 or 1, remove it from by"
            )

    def _check_histogram(self) -> None:
        assert self.metric is not None
        assert self.quantile is not None
        assert self.buckets is not None
        name = self.metric.metric
        if name.endswith(("_bucket", "_count", "_sum", "_total")):
            raise ValueError(
                f"metric: {name} is a series name; give the histogram's base name (without"
                " _bucket, _count or _sum)"
            )
        if not 0 < self.quantile < 1:
            raise ValueError(
                f"quantile: {self.quantile} is not a quantile; use a number between 0 and 1"
            )
        problem = bound_problem(
            name,
            self.buckets,
            self.threshold,
            fix="the rule's buckets (and to the histogram's buckets in the service's code)",
        )
        if problem is not None:
            raise ValueError(f"threshold: {problem}")

    @property
    def selectors(self) -> tuple[tuple[str, Selector], ...]:
        """The rule's selectors by field name."""
        out = []
        for field in ("numerator", "denominator", "metric"):
            value = getattr(self, field)
            if value is not None:
                out.append((field, value))
        return tuple(out)


class ServiceRecording(_Model):
    """A recording rule of the service's own, in its rule group."""

    name: str
    expr: str

    @field_validator("name")
    @classmethod
    def _record(cls, value: str) -> str:
        if not _RECORD_RE.match(value):
            raise ValueError(
                f"{value!r} is not a recording-rule name: use level:metric:operations, three"
                " parts of letters, digits and '_' joined by ':', for example"
                " 'api:request_rate:1m' or 'service_route:http_requests:rate5m'"
            )
        return value

    @field_validator("expr")
    @classmethod
    def _expr(cls, value: str) -> str:
        try:
            pp.parse(value)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"not valid PromQL: {exc}") from None
        return value


class Service(_Model):
    """A service instrumented with ``glassbox.instrument``."""

    name: Name
    namespace: str | None = Field(
        default=None, description="GLASSBOX_NAMESPACE of the service: metric prefix"
    )
    targets: tuple[Target, ...] = Field(min_length=1)
    metrics_path: str = "/metrics"
    scheme: Literal["http", "https"] = "http"
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    metrics_token: Secret | None = Field(
        default=None, description="bearer token when /metrics is protected"
    )
    scrape_interval: PositiveDuration | None = Field(
        default=None, description="this service's scrape interval (prometheus.scrape_interval)"
    )
    alerts: ServiceAlerts = ServiceAlerts()
    slos: tuple[Slo, ...] = ()
    business_metrics: tuple[BusinessMetric, ...] = ()
    rules: tuple[ServiceRule, ...] = ()
    recordings: tuple[ServiceRecording, ...] = ()
    labels: AlertLabels = Field(default_factory=dict, description="added to every alert")

    _token = field_validator("metrics_token", mode="before")(_secret)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_metric_name(value, where="namespace")
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("metrics_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} must start with '/', for example '/metrics'")
        return value

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        try:
            return check_buckets(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @property
    def catalogue(self) -> RedCatalogue:
        """The RED metric names and buckets this service's SDK emits."""
        return red_catalogue(self.namespace, self.buckets)

    @model_validator(mode="after")
    def _thresholds_are_bounds(self) -> Self:
        catalogue = self.catalogue
        checks: list[tuple[str, float]] = [
            (f"alerts.latency[{i}].threshold", a.threshold)
            for i, a in enumerate(self.alerts.latency)
        ]
        checks += [
            (f"slos[{i}].threshold", s.threshold)
            for i, s in enumerate(self.slos)
            if s.threshold is not None
        ]
        for where, seconds in checks:
            problem = bound_problem(
                catalogue.request_duration.name,
                catalogue.buckets,
                seconds,
                fix="the service's buckets (and to GLASSBOX_BUCKETS in the service)",
            )
            if problem is not None:
                raise ValueError(f"{where}: {problem}")
        names = [s.name for s in self.slos]
        if len(set(names)) != len(names):
            raise ValueError(f"slos: names must be unique, got {names}")
        return self

    @model_validator(mode="after")
    def _rules_read_known_metrics(self) -> Self:
        declared = {m.name: m.kind for m in self.business_metrics}
        c = self.catalogue
        counters = {c.requests_total.name, c.exceptions.name} | {
            name for name, kind in declared.items() if kind == "counter"
        }
        for i, rule in enumerate(self.rules):
            want = "histogram" if rule.kind == "quantile_above" else "counter"
            for field, selector in rule.selectors:
                name = selector.metric
                where = f"rules[{i}].{field}"
                if want == "counter" and name in counters:
                    continue
                if want == "histogram" and declared.get(name) == "histogram":
                    continue
                if name == c.request_duration.name:
                    raise ValueError(
                        f"{where}: {name} is the service's request-duration histogram; alert on"
                        " its quantiles with [[services.alerts.latency]]"
                    )
                if name in declared:
                    raise ValueError(
                        f"{where}: {name} is declared as a {declared[name]}; a {rule.kind} rule"
                        f" needs a {want}"
                    )
                raise ValueError(
                    f"{where}: {name} is not a metric of this service; declare it with"
                    f" [[services.business_metrics]] name = '{name}', kind = '{want}'"
                )
        buckets: dict[str, tuple[float, ...]] = {}
        for i, rule in enumerate(self.rules):
            if rule.metric is not None and rule.buckets is not None:
                seen = buckets.setdefault(rule.metric.metric, rule.buckets)
                if seen != rule.buckets:
                    raise ValueError(
                        f"rules[{i}].buckets: {rule.metric.metric} has the buckets {list(seen)}"
                        " in an earlier rule; a histogram has one set of buckets"
                    )
        _unique("rules", [r.name for r in self.rules])
        _unique("recordings", [r.name for r in self.recordings])
        return self


def bound_problem(
    histogram: str, buckets: Sequence[float], seconds: float, *, fix: str
) -> str | None:
    """Why ``seconds`` cannot be a quantile threshold of ``histogram`` (None: it can).

    A threshold must be a bucket boundary other than the last, or the quantile could
    not be compared with it exactly. ``fix`` names where a missing boundary goes.
    """
    if not any(math.isclose(seconds, b, rel_tol=0, abs_tol=1e-12) for b in buckets):
        below = [b for b in buckets if b < seconds]
        above = [b for b in buckets if b > seconds]
        near = " or ".join(le_label(b) for b in (below[-1:] + above[:1]))
        return (
            f"{seconds} s is not a bucket boundary of {histogram}, so the alert could never"
            f" be computed exactly; use {near}, or add {seconds} to {fix}"
        )
    if seconds >= buckets[-1]:
        return (
            f"{seconds} s is the largest bucket boundary; a quantile above it cannot be"
            " measured. Use a smaller threshold or add larger buckets"
        )
    return None


DependencyKind = Literal["postgres", "redis", "mongodb", "qdrant", "node", "containers"]

#: What each dependency is scraped through, and its default exporter port.
EXPORTERS: dict[str, tuple[str, int]] = {
    "postgres": ("postgres_exporter", 9187),
    "redis": ("redis_exporter", 9121),
    "mongodb": ("mongodb_exporter", 9216),
    "qdrant": ("qdrant (built-in /metrics)", 6333),
    "node": ("node_exporter", 9100),
    "containers": ("cAdvisor", 8080),
}
_DIRECT_PORTS = {"postgres": 5432, "redis": 6379, "mongodb": 27017}


class TargetDownAlerts(_Model):
    """``DependencyTargetDown``: Prometheus cannot scrape the dependency's exporter."""

    target_down_for: PositiveDuration = "2m"
    target_down_severity: Severity = "critical"


class PostgresAlerts(TargetDownAlerts):
    """Alert settings of a PostgreSQL dependency."""

    down_for: PositiveDuration = "2m"
    connections_ratio: float = Field(
        default=0.8, gt=0, lt=1, description="backends per max_connections"
    )
    connections_for: PositiveDuration = "5m"
    connections_severity: Severity = "warning"


class RedisAlerts(TargetDownAlerts):
    """Alert settings of a Redis dependency."""

    down_for: PositiveDuration = "2m"
    memory_ratio: float = Field(default=0.9, gt=0, lt=1, description="used per maxmemory")
    memory_bytes: int | None = Field(
        default=None, gt=0, description="used bytes, for servers without maxmemory"
    )
    memory_for: PositiveDuration = "5m"


class MongodbAlerts(TargetDownAlerts):
    """Alert settings of a MongoDB dependency."""

    down_for: PositiveDuration = "2m"
    connections_ratio: float = Field(
        default=0.8, gt=0, lt=1, description="current per (current + available)"
    )
    connections_for: PositiveDuration = "5m"
    connections_severity: Severity = "warning"


class QdrantAlerts(_Model):
    """Alert settings of a Qdrant dependency (scraped directly: no exporter)."""

    down_for: PositiveDuration = "2m"


class NodeAlerts(TargetDownAlerts):
    """Alert settings of a host scraped through node_exporter."""

    disk_free_warning: float | None = Field(
        default=None, gt=0, lt=1, description="free fraction of / below which to warn"
    )
    disk_free_critical: float = Field(default=0.05, gt=0, lt=1)
    memory_ratio: float = Field(default=0.9, gt=0, lt=1)
    cpu_ratio: float = Field(default=0.9, gt=0, lt=1)
    for_: PositiveDuration | None = Field(
        default=None,
        alias="for",
        description="hold time of the disk, memory, CPU and load alerts (default: each its own)",
    )

    @model_validator(mode="after")
    def _tiers(self) -> Self:
        if self.disk_free_warning is not None and (
            self.disk_free_warning <= self.disk_free_critical
        ):
            raise ValueError(
                f"disk_free_warning ({self.disk_free_warning}) must be above"
                f" disk_free_critical ({self.disk_free_critical}): the warning comes first,"
                " while more of the disk is still free"
            )
        return self


class ContainerAlerts(TargetDownAlerts):
    """Alert settings of containers scraped through cAdvisor."""

    memory_ratio: float = Field(default=0.9, gt=0, lt=1, description="working set per limit")
    cpu_ratio: float | None = Field(
        default=None, gt=0, lt=1, description="CPU used per CPU quota (default: no alert)"
    )
    for_: PositiveDuration | None = Field(
        default=None,
        alias="for",
        description="hold time of the memory and CPU alerts (default: each its own)",
    )


DependencyAlerts = (
    PostgresAlerts | RedisAlerts | MongodbAlerts | QdrantAlerts | NodeAlerts | ContainerAlerts
)

#: The ``[dependencies.alerts]`` settings each kind takes.
ALERT_SETTINGS: dict[str, type[DependencyAlerts]] = {
    "postgres": PostgresAlerts,
    "redis": RedisAlerts,
    "mongodb": MongodbAlerts,
    "qdrant": QdrantAlerts,
    "node": NodeAlerts,
    "containers": ContainerAlerts,
}

#: The connection setting each deployable exporter needs (None: it needs none).
_CONNECTION: dict[str, str | None] = {
    "postgres": "dsn",
    "redis": "address",
    "mongodb": "uri",
    "node": None,
    "containers": None,
}


def _setting_names(model: type[BaseModel]) -> list[str]:
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _kind_alerts(kind: str, name: Any, raw: Any) -> DependencyAlerts:
    """``[dependencies.alerts]`` validated against the settings of its dependency's kind."""
    model = ALERT_SETTINGS[kind]
    if isinstance(raw, model):
        return raw
    allowed = ", ".join(_setting_names(model))
    if not isinstance(raw, dict):
        raise ValueError(f"alerts must be a table of settings; a {kind} dependency takes {allowed}")
    unknown = sorted(str(key) for key in set(raw) - set(_setting_names(model)))
    if unknown:
        raise ValueError(
            f"{_location(('alerts', unknown[0]))} is not an alert setting of {kind}"
            f" dependency {name!r};"
            f" a {kind} dependency takes {allowed}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(('alerts', _location(tuple(e['loc'])))).rstrip('.')}:"
            f" {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        ]
        raise ValueError(f"{'; '.join(problems)} (dependency {name!r})") from None


def exporter_service(name: str) -> str:
    """The compose service (and host name) of a dependency's deployed exporter."""
    return f"{name}-exporter"


class Dependency(_Model):
    """Something a service relies on, scraped through its exporter.

    With ``deploy = true`` glassbox also runs the exporter (compose service and
    Kubernetes workload ``<name>-exporter``); ``targets`` then defaults to it.
    """

    name: Name
    kind: DependencyKind
    targets: tuple[Target, ...] = Field(min_length=1)
    metrics_path: str = "/metrics"
    # _kind_settings puts the kind's own settings here; the default only stands in
    # while the kind itself is invalid
    alerts: DependencyAlerts = Field(
        default_factory=QdrantAlerts, description="kind-specific thresholds and hold times"
    )
    deploy: bool = Field(default=False, description="run the exporter in compose and Kubernetes")
    dsn: Secret | None = Field(
        default=None, description="postgres, deploy: the exporter's connection string"
    )
    address: Target | None = Field(default=None, description="redis, deploy: host:port")
    uri: Secret | None = Field(
        default=None, description="mongodb, deploy: mongodb://user:password@host:27017"
    )

    _secrets = field_validator("dsn", "uri", mode="before")(_secret)

    @model_validator(mode="before")
    @classmethod
    def _kind_settings(cls, data: Any) -> Any:
        """Alert settings of the dependency's kind; the deployed exporter as default target."""
        kind = data.get("kind") if isinstance(data, dict) else None
        if not isinstance(kind, str) or kind not in ALERT_SETTINGS:
            return data  # the kind's own error says what is wrong
        kind, name = data["kind"], data.get("name")
        out = {**data, "alerts": _kind_alerts(kind, name, data.get("alerts", {}))}
        if data.get("deploy") is True and "targets" not in data and isinstance(name, str):
            out["targets"] = [f"{exporter_service(name)}:{EXPORTERS[kind][1]}"]
        return out
    labels: AlertLabels = Field(default_factory=dict, description="added to every alert")

    @model_validator(mode="after")
    def _exporter_not_server(self) -> Self:
        direct = _DIRECT_PORTS.get(self.kind)
        for target in self.targets:
            if direct is not None and target.rsplit(":", 1)[1] == str(direct):
                exporter, port = EXPORTERS[self.kind]
                raise ValueError(
                    f"target {target!r} is the {self.kind} server's own port; Prometheus"
                    f" scrapes its exporter ({exporter}, port {port} by default)"
                )
        return self

    @model_validator(mode="after")
    def _deployment(self) -> Self:
        if self.deploy and self.kind not in _CONNECTION:
            raise ValueError(
                f"deploy: {self.kind} serves its own /metrics, so there is no exporter to"
                " deploy; remove deploy"
            )
        wanted = _CONNECTION.get(self.kind)
        for setting, kind in (("dsn", "postgres"), ("address", "redis"), ("uri", "mongodb")):
            if getattr(self, setting) is None:
                continue
            if setting != wanted:
                raise ValueError(
                    f"{setting} is a setting of a deployed {kind} exporter; a {self.kind}"
                    f" dependency {'takes ' + wanted if wanted else 'needs no connection setting'}"
                )
            if not self.deploy:
                raise ValueError(
                    f"{setting} is used only when glassbox runs the exporter: add"
                    f" deploy = true, or remove {setting}"
                )
        if self.deploy and wanted is not None and getattr(self, wanted) is None:
            example = {
                "dsn": "dsn = { env = 'PG_DSN' } (postgresql://user:password@host:5432/db)",
                "address": "address = 'redis:6379' (the Redis server, host:port)",
                "uri": "uri = { env = 'MONGODB_URI' } (mongodb://user:password@host:27017)",
            }[wanted]
            raise ValueError(f"deploy = true runs {EXPORTERS[self.kind][0]}, which needs {example}")
        if self.uri is not None and self.uri.env is None:
            raise ValueError(
                "uri: mongodb_exporter reads its URI only from the environment (its image has"
                " no shell to read a file); give uri = { env = 'MONGODB_URI' }"
            )
        if self.deploy:
            own = f"{exporter_service(self.name)}:{EXPORTERS[self.kind][1]}"
            if own not in self.targets:
                raise ValueError(
                    f"targets: deploy = true runs the exporter as {exporter_service(self.name)!r},"
                    f" which Prometheus scrapes at {own!r}; add it to targets or leave targets"
                    " out"
                )
        return self

    @property
    def hold_times(self) -> dict[str, str]:
        """The alert settings that are hold times (``alerts.<key>``: duration)."""
        out = {}
        for name, field in type(self.alerts).model_fields.items():
            value = getattr(self.alerts, name)
            if (name.endswith("_for") or name == "for_") and value is not None:
                out[field.alias or name] = value
        return out


_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\Z")
#: Labels glassbox sets on its Kubernetes objects itself.
_OWN_LABELS = frozenset(
    {
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/name",
        "app.kubernetes.io/component",
        "grafana_dashboard",
    }
)


class Kubernetes(_Model):
    """The ``kubernetes/`` output: where its objects go and how an operator finds them."""

    namespace: str = "monitoring"
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="added to every object, e.g. what serviceMonitorSelector matches",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if len(value) > 63 or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z", value):
            raise ValueError(
                f"{value!r} is not a Kubernetes namespace name: use at most 63 lower-case"
                " letters, digits and '-', starting and ending with a letter or digit"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if key in _OWN_LABELS:
                raise ValueError(f"{key!r} is set by glassbox itself; choose another label")
            if len(key.rsplit("/", 1)[0]) > 253 or not _LABEL_KEY.match(key):
                raise ValueError(
                    f"{key!r} is not a Kubernetes label key: an optional DNS prefix and '/',"
                    " then up to 63 letters, digits, '-', '_' or '.' (for example 'team')"
                )
            if not _LABEL_VALUE.match(text):
                raise ValueError(
                    f"{key}: {text!r} is not a Kubernetes label value: up to 63"
                    " letters, digits, '-', '_' or '.', starting and ending with a letter or"
                    " digit"
                )
        return value


#: The message fields each receiver kind takes.
MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "slack": ("title", "text"),
    "pagerduty": ("summary",),
    "email": ("subject", "body", "html"),
    "opsgenie": ("summary", "text"),
    "webhook": (),
}


class Message(_Model):
    """A receiver's own notification text: Go templates over Alertmanager's data.

    Each field replaces glassbox's default for that part of the message; the fields a
    receiver takes depend on its kind (:data:`MESSAGE_FIELDS`).
    """

    title: str | None = Field(default=None, description="slack: the message title")
    text: str | None = Field(
        default=None, description="slack: the message body; opsgenie: the description"
    )
    subject: str | None = Field(default=None, description="email: the Subject header")
    body: str | None = Field(default=None, description="email: the plain-text body")
    html: str | None = Field(default=None, description="email: the HTML body")
    summary: str | None = Field(
        default=None, description="pagerduty: the incident summary; opsgenie: the alert message"
    )

    def fields(self) -> dict[str, str]:
        """The fields that are set, by name."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Receiver(_Model):
    """Where notifications go. Secrets by env var or file only."""

    name: Name
    kind: Literal["slack", "pagerduty", "email", "opsgenie", "webhook"]
    # slack
    api_url: Secret | None = None
    channel: str | None = None
    # pagerduty
    routing_key: Secret | None = None
    # opsgenie
    api_key: Secret | None = None
    # email
    to: str | None = None
    from_: str | None = Field(default=None, alias="from")
    smarthost: str | None = None
    auth_username: str | None = None
    auth_password: Secret | None = None
    require_tls: bool = True
    # webhook
    url: str | None = None
    bearer_token: Secret | None = None
    send_resolved: bool = True
    message: Message | None = None

    _secrets = field_validator(
        "api_url", "routing_key", "api_key", "auth_password", "bearer_token", mode="before"
    )(_secret)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Self:
        need = {
            "slack": ("api_url",),
            "pagerduty": ("routing_key",),
            "email": ("to", "from_", "smarthost"),
            "opsgenie": ("api_key",),
            "webhook": ("url",),
        }[self.kind]
        missing = [f.rstrip("_") for f in need if getattr(self, f) is None]
        a_kind = f"{'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind}"
        if missing:
            raise ValueError(f"{a_kind} receiver needs {', '.join(missing)}")
        if self.url is not None and not re.match(r"^https?://[^/@\s]+(/\S*)?\Z", self.url):
            raise ValueError(
                f"url {self.url!r} must be http(s)://host/path with no user:password"
                " part; put a token in bearer_token = { env = '...' }"
            )
        if self.smarthost is not None and not re.match(r"^[^:\s]+:\d+\Z", self.smarthost):
            raise ValueError(f"smarthost {self.smarthost!r} must be host:port")
        if self.message is not None:
            allowed = MESSAGE_FIELDS[self.kind]
            for field, text in self.message.fields().items():
                if field not in allowed:
                    takes = " and ".join(allowed) if allowed else "no message fields"
                    raise ValueError(f"message.{field}: {a_kind} receiver's message takes {takes}")
                if not text.strip():
                    raise ValueError(f"message.{field} is empty; remove it to keep the default")
        return self

    def secrets(self) -> dict[str, Secret]:
        """The receiver's secrets by field name."""
        out: dict[str, Secret] = {}
        for field in ("api_url", "routing_key", "api_key", "auth_password", "bearer_token"):
            value = getattr(self, field)
            if value is not None:
                out[field] = value
        return out


class Route(_Model):
    """Alerts matching all of severity, service and matchers go to these receivers."""

    severity: Severity | None = None
    service: str | None = None
    matchers: tuple[MatcherText, ...] = Field(
        default=(), description='Alertmanager matchers, e.g. component="database"'
    )
    receivers: tuple[Name, ...] = Field(min_length=1)

    def label_matchers(self) -> tuple[Matcher, ...]:
        """Every condition of the route as a matcher: severity, service, then matchers."""
        out = []
        if self.severity is not None:
            out.append(Matcher("severity", "=", self.severity))
        if self.service is not None:
            out.append(Matcher("service", "=", self.service))
        return (*out, *(parse_matcher(m) for m in self.matchers))


class Inhibit(_Model):
    """While an alert matching source_matchers fires, mute those matching target_matchers.

    Only alerts whose ``equal`` labels have the same values as the source's are muted.
    """

    source_matchers: tuple[MatcherText, ...] = Field(min_length=1)
    target_matchers: tuple[MatcherText, ...] = Field(min_length=1)
    equal: tuple[LabelName, ...] = ()


class Routing(_Model):
    """Alertmanager's routing tree, flattened, and the user's own inhibit rules."""

    default_receiver: Name | None = None
    group_by: tuple[str, ...] = ("alertname", "service", "severity")
    group_wait: PositiveDuration = "30s"
    group_interval: PositiveDuration = "5m"
    repeat_interval: PositiveDuration = "4h"
    routes: tuple[Route, ...] = ()
    inhibit: tuple[Inhibit, ...] = ()


class Logs(_Model):
    """Loki's settings."""

    retention: PositiveDuration | None = Field(
        default=None, description="default: prometheus.retention_time; at least one day"
    )


class Tracing(_Model):
    """Where traces are stored: Tempo or Jaeger, both behind Alloy's OTLP gateway."""

    backend: Literal["tempo", "jaeger"] = "tempo"
    retention: PositiveDuration | None = Field(
        default=None, description="default: prometheus.retention_time"
    )


class RemoteWrite(_Model):
    """Long-term storage or a central store (Mimir, Thanos Receive, VictoriaMetrics)."""

    name: Name
    url: str
    kind: Literal["mimir", "thanos", "victoriametrics", "generic"] = "generic"
    tenant: str | None = Field(default=None, description="X-Scope-OrgID (Mimir, Thanos)")
    basic_auth_username: str | None = None
    basic_auth_password: Secret | None = None
    bearer_token: Secret | None = None

    _secrets = field_validator("basic_auth_password", "bearer_token", mode="before")(_secret)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/@\s]+(/\S*)?\Z", value):
            raise ValueError(
                f"{value!r} must be http(s)://host/path with no user:password part; use"
                " basic_auth_username and basic_auth_password = { env = '...' }"
            )
        return value

    @model_validator(mode="after")
    def _auth(self) -> Self:
        if (self.basic_auth_username is None) != (self.basic_auth_password is None):
            raise ValueError("basic auth needs both basic_auth_username and basic_auth_password")
        if self.basic_auth_password is not None and self.bearer_token is not None:
            raise ValueError("give basic auth or bearer_token, not both")
        return self


class Prometheus(_Model):
    """Prometheus' own settings."""

    scrape_interval: PositiveDuration = "15s"
    evaluation_interval: PositiveDuration = "15s"
    retention_time: PositiveDuration = "15d"
    retention_size: str | None = Field(default=None, pattern=r"^\d+(B|KB|MB|GB|TB|PB|EB)$")
    external_labels: dict[str, str] = Field(default_factory=dict)
    remote_write: tuple[RemoteWrite, ...] = ()

    @field_validator("external_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z", key) or key.startswith("__"):
                raise ValueError(f"{key!r} is not a valid label name")
        return value


class StackConfig(_Model):
    """The whole ``glassbox.toml``."""

    project: Name = "glassbox"
    environment: str = "production"
    runbook_url: str = Field(
        default="https://github.com/glassbox-observability/runbooks/blob/main",
        description="base URL; each alert links to <runbook_url>/<alertname>.md",
    )
    output: str = "monitoring"
    prometheus: Prometheus = Prometheus()
    services: tuple[Service, ...] = Field(min_length=1)
    dependencies: tuple[Dependency, ...] = ()
    receivers: tuple[Receiver, ...] = Field(min_length=1)
    routing: Routing = Routing()
    kubernetes: Kubernetes = Kubernetes()

    @model_validator(mode="after")
    def _dependency_hold_times(self) -> Self:
        interval = duration_seconds(self.prometheus.evaluation_interval)
        for d, dep in enumerate(self.dependencies):
            for name, held in dep.hold_times.items():
                if duration_seconds(held) < 2 * interval:
                    raise ValueError(
                        f"dependencies[{d}].alerts.{name}: {held} is shorter than two"
                        " evaluation intervals; one odd evaluation would notify"
                    )
        return self
    logs: Logs = Logs()
    tracing: Tracing = Tracing()

    @model_validator(mode="after")
    def _references(self) -> Self:
        _unique("services", [s.name for s in self.services])
        _unique("dependencies", [d.name for d in self.dependencies])
        _unique("receivers", [r.name for r in self.receivers])
        _unique("prometheus.remote_write", [r.name for r in self.prometheus.remote_write])
        _unique("services.rules (alert names)", [r.name for s in self.services for r in s.rules])
        known = {r.name for r in self.receivers}
        services = {s.name for s in self.services}
        for i, route in enumerate(self.routing.routes):
            for name in route.receivers:
                if name not in known:
                    raise ValueError(
                        f"routing.routes[{i}].receivers: no receiver named {name!r};"
                        f" receivers are {sorted(known)}"
                    )
            if route.service is not None and route.service not in services:
                raise ValueError(f"routing.routes[{i}].service: no service named {route.service!r}")
        default = self.routing.default_receiver
        if default is not None and default not in known:
            raise ValueError(
                f"routing.default_receiver: no receiver named {default!r};"
                f" receivers are {sorted(known)}"
            )
        interval = duration_seconds(self.prometheus.evaluation_interval)
        for s, service in enumerate(self.services):
            for a, alert in enumerate(service.alerts.latency):
                if duration_seconds(alert.for_) < 2 * interval:
                    raise ValueError(
                        f"services[{s}].alerts.latency[{a}].for: {alert.for_} is shorter than"
                        " two evaluation intervals; one slow scrape would page"
                    )
            for r, rule in enumerate(service.rules):
                if duration_seconds(rule.for_) < 2 * interval:
                    raise ValueError(
                        f"services[{s}].rules[{r}].for: {rule.for_} is shorter than two"
                        " evaluation intervals; one odd evaluation would notify"
                    )
            alerts = service.alerts
            for name in (
                "error_for", "down_for", "instance_down_for", "absent_for", "saturation_for",
                "memory_for", "dependency_for", "degraded_for",
            ):  # fmt: skip
                held = getattr(alerts, name)
                if duration_seconds(held) < 2 * interval:
                    raise ValueError(
                        f"services[{s}].alerts.{name}: {held} is shorter than two evaluation"
                        " intervals; one odd evaluation would notify"
                    )
            every = service.scrape_interval or self.prometheus.scrape_interval
            if duration_seconds(every) > duration_seconds(self.prometheus.scrape_interval):
                raise ValueError(
                    f"services[{s}].scrape_interval: {every} is longer than"
                    f" prometheus.scrape_interval ({self.prometheus.scrape_interval}); Grafana's"
                    " $__rate_interval follows the global interval, so the service's panels"
                    " would have gaps. Raise prometheus.scrape_interval instead"
                )
            if duration_seconds(alerts.window) < 4 * duration_seconds(every):
                source = (
                    f"services[{s}].scrape_interval"
                    if service.scrape_interval
                    else "prometheus.scrape_interval"
                )
                raise ValueError(
                    f"services[{s}].alerts.window: {alerts.window} holds fewer than four"
                    f" scrapes ({source} is {every}); rate() needs more samples than that to"
                    " be steady. Make the window at least four scrape intervals long"
                )
        return self

    @model_validator(mode="after")
    def _matcher_labels(self) -> Self:
        # The alerts are built from the validated config, so this check runs last.
        from glassbox.stack.components import collect

        expression: set[str] = set()
        names = {"alertname"}
        alertnames: set[str] = set()
        for bundle in collect(self):
            for alert in bundle.alerts:
                alertnames.add(alert.name)
                expression.update(alert.expr_labels)
                names.update(k for k, _ in alert.labels)
        # labels whose values come from the expressions or from Prometheus
        dynamic = {"severity", *self.prometheus.external_labels, *expression}
        names |= dynamic
        static: dict[str, set[str]] = {}
        owners = [(f"services[{i}]", s.labels) for i, s in enumerate(self.services)]
        owners += [(f"dependencies[{i}]", d.labels) for i, d in enumerate(self.dependencies)]
        for where, labels in owners:
            for key, value in labels.items():
                if key in expression:
                    raise ValueError(
                        f"{where}.labels: {key!r} is a label glassbox's alerts set"
                        " themselves; choose another name, for example 'component'"
                    )
                static.setdefault(key, set()).add(value)
        places: list[tuple[str, tuple[str, ...]]] = []
        for i, route in enumerate(self.routing.routes):
            places.append((f"routing.routes[{i}].matchers", route.matchers))
        for i, rule in enumerate(self.routing.inhibit):
            places.append((f"routing.inhibit[{i}].source_matchers", rule.source_matchers))
            places.append((f"routing.inhibit[{i}].target_matchers", rule.target_matchers))
            for j, name in enumerate(rule.equal):
                if name not in names:
                    raise ValueError(
                        f"routing.inhibit[{i}].equal[{j}]: no generated alert carries the"
                        f" label {name!r}; alerts carry {', '.join(sorted(names))}"
                    )
        for where, texts in places:
            for j, text in enumerate(texts):
                matcher = parse_matcher(text)
                if matcher.name not in names:
                    raise ValueError(
                        f"{where}[{j}]: no generated alert carries the label"
                        f" {matcher.name!r}, so {text} never matches; alerts carry"
                        f" {', '.join(sorted(names))} (add a label with labels ="
                        f' {{ {matcher.name} = "..." }} on a service or dependency)'
                    )
                known = alertnames if matcher.name == "alertname" else static.get(matcher.name)
                if matcher.name in dynamic or known is None:
                    continue
                if matcher.op == "=" and matcher.value not in known:
                    raise ValueError(
                        f"{where}[{j}]: no alert has {text}; {matcher.name} is one of"
                        f" {', '.join(sorted(known))}"
                    )
        return self

    @property
    def default_receiver(self) -> str:
        """The receiver of alerts no route takes: the configured one, else the first."""
        return self.routing.default_receiver or self.receivers[0].name

    def receiver(self, name: str) -> Receiver:
        return next(r for r in self.receivers if r.name == name)


def _unique(where: str, names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{where}: the name {name!r} is used twice")
        seen.add(name)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _location(loc: tuple[int | str, ...]) -> str:
    """``services[0].slos[1].threshold``; a key that is not a plain word is quoted."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _PLAIN_KEY.fullmatch(part) else repr(part)
            out += f".{text}" if out else text
    return out


def load_config(path: str | Path) -> StackConfig:
    """Read and validate ``glassbox.toml``; raise ConfigurationError naming file and field."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(
            f"{file}: no such file; run 'glassbox init' to write a commented starter"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"{file}: cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{file}: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{file}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigurationError(f"{file}: arrays or tables nest too deeply") from None
    return parse_config(data, source=str(file))


def parse_config(data: dict[str, Any], *, source: str = DEFAULT_CONFIG_NAME) -> StackConfig:
    """Validate already-parsed TOML data."""
    try:
        return StackConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            where = _location(tuple(error["loc"]))
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown setting; check its spelling (see 'glassbox init')"
            elif error["type"] == "missing":
                message = "required setting is missing"
            lines.append(f"{source}: {where or '(top level)'}: {message}")
        raise ConfigurationError("\n".join(lines)) from None
