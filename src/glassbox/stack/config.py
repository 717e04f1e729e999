"""The ``glassbox.toml`` model: what to monitor, what to promise, whom to tell.

:func:`load_config` reads and validates the file. Every error names the file, the
field (``services[0].slos[1].threshold``) and the fix, and nothing is generated from a
file that did not validate. Secrets are never accepted inline: a receiver names the
environment variable or the file that holds each secret.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
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

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "Dependency",
    "LatencyAlert",
    "Prometheus",
    "Receiver",
    "RemoteWrite",
    "Route",
    "Routing",
    "Secret",
    "Service",
    "ServiceAlerts",
    "Slo",
    "StackConfig",
    "duration_seconds",
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
    memory_limit_bytes: int | None = Field(default=None, gt=0)
    memory_ratio: float = Field(default=0.9, gt=0, lt=1)


class BusinessMetric(_Model):
    """A business metric of the service, for its dashboard."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    title: str | None = None
    unit: str = "short"
    by: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _metric_name(cls, value: str) -> str:
        try:
            return check_metric_name(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None


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
    alerts: ServiceAlerts = ServiceAlerts()
    slos: tuple[Slo, ...] = ()
    business_metrics: tuple[BusinessMetric, ...] = ()

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
            if not catalogue.is_bound(seconds):
                raise ValueError(f"{where}: {not_a_bound(catalogue, seconds)}")
            if seconds >= catalogue.buckets[-1]:
                raise ValueError(
                    f"{where}: {seconds} s is the largest bucket boundary; a quantile above"
                    " it cannot be measured. Use a smaller threshold or add larger buckets"
                )
        names = [s.name for s in self.slos]
        if len(set(names)) != len(names):
            raise ValueError(f"slos: names must be unique, got {names}")
        return self


def not_a_bound(catalogue: RedCatalogue, seconds: float) -> str:
    """The message for a latency threshold that is not a bucket boundary."""
    below, above = catalogue.nearest_bounds(seconds)
    near = " or ".join(le_label(b) for b in (below, above) if b is not None)
    return (
        f"{seconds} s is not a bucket boundary of {catalogue.request_duration.name}, so"
        f" the alert could never be computed exactly; use {near}, or add {seconds} to"
        " the service's buckets (and to GLASSBOX_BUCKETS in the service)"
    )


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


class Dependency(_Model):
    """Something a service relies on, scraped through its exporter."""

    name: Name
    kind: DependencyKind
    targets: tuple[Target, ...] = Field(min_length=1)
    metrics_path: str = "/metrics"

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


class Receiver(_Model):
    """Where notifications go. Secrets by env var or file only."""

    name: Name
    kind: Literal["slack", "pagerduty", "email", "webhook"]
    # slack
    api_url: Secret | None = None
    channel: str | None = None
    # pagerduty
    routing_key: Secret | None = None
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

    _secrets = field_validator(
        "api_url", "routing_key", "auth_password", "bearer_token", mode="before"
    )(_secret)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Self:
        need = {
            "slack": ("api_url",),
            "pagerduty": ("routing_key",),
            "email": ("to", "from_", "smarthost"),
            "webhook": ("url",),
        }[self.kind]
        missing = [f.rstrip("_") for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} receiver needs {', '.join(missing)}")
        if self.url is not None and not re.match(r"^https?://[^/@\s]+(/\S*)?\Z", self.url):
            raise ValueError(
                f"url {self.url!r} must be http(s)://host/path with no user:password"
                " part; put a token in bearer_token = { env = '...' }"
            )
        if self.smarthost is not None and not re.match(r"^[^:\s]+:\d+\Z", self.smarthost):
            raise ValueError(f"smarthost {self.smarthost!r} must be host:port")
        return self

    def secrets(self) -> dict[str, Secret]:
        """The receiver's secrets by field name."""
        out: dict[str, Secret] = {}
        for field in ("api_url", "routing_key", "auth_password", "bearer_token"):
            value = getattr(self, field)
            if value is not None:
                out[field] = value
        return out


class Route(_Model):
    """Alerts of one severity (optionally one service) go to these receivers."""

    severity: Severity | None = None
    service: str | None = None
    receivers: tuple[Name, ...] = Field(min_length=1)


class Routing(_Model):
    """Alertmanager's routing tree, flattened."""

    default_receiver: Name | None = None
    group_by: tuple[str, ...] = ("alertname", "service", "severity")
    group_wait: PositiveDuration = "30s"
    group_interval: PositiveDuration = "5m"
    repeat_interval: PositiveDuration = "4h"
    routes: tuple[Route, ...] = ()


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

    @model_validator(mode="after")
    def _references(self) -> Self:
        _unique("services", [s.name for s in self.services])
        _unique("dependencies", [d.name for d in self.dependencies])
        _unique("receivers", [r.name for r in self.receivers])
        _unique("prometheus.remote_write", [r.name for r in self.prometheus.remote_write])
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
            scrape = duration_seconds(self.prometheus.scrape_interval)
            if duration_seconds(alerts.window) < 4 * scrape:
                raise ValueError(
                    f"services[{s}].alerts.window: {alerts.window} holds fewer than four"
                    f" scrapes ({self.prometheus.scrape_interval} apart); rate() needs more"
                    " samples than that to be steady"
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
