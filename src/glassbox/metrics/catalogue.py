"""The one catalogue of metric names and labels that the SDK emits.

The stack generator builds its rules and dashboards from this module, so a dashboard
can never query a metric the SDK does not expose, and a latency threshold can be
checked against the histogram's real bucket boundaries (spelled exactly as exposed).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from glassbox.exceptions import ConfigurationError, MetricNameError

MetricType = Literal["counter", "gauge", "histogram", "summary", "info"]

#: Default request-duration buckets in seconds. They contain the usual latency
#: objectives (100 ms, 250 ms, 500 ms, 1 s, 2 s) as exact boundaries.
DEFAULT_BUCKETS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)
#: Default buckets of outgoing requests: the RED ones plus 30 s and 60 s (LLM calls).
CLIENT_BUCKETS: Final[tuple[float, ...]] = (*DEFAULT_BUCKETS, 30.0, 60.0)
#: HTTP methods kept as label values; any other method becomes ``OTHER_METHOD``.
STANDARD_METHODS: Final[frozenset[str]] = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
#: Label value for a method outside the standard set (OpenTelemetry's spelling).
OTHER_METHOD: Final = "_OTHER"
#: Label value for a request that matched no route.
UNMATCHED_ROUTE: Final = "<unmatched>"
#: Label value that absorbs label values beyond a metric's cap.
OVERFLOW_VALUE: Final = "__overflow__"
#: Default prefix of the RED metrics when no namespace is given.
DEFAULT_PREFIX: Final = "http"
#: Paths left out of the RED metrics unless configured otherwise.
DEFAULT_EXCLUDED_PATHS: Final[tuple[str, ...]] = (
    "/metrics",
    "/health",
    "/health/live",
    "/health/ready",
    "/health/detailed",
)

_NAME_RE: Final = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_RE: Final = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
_RESERVED_LABELS: Final = frozenset({"le", "quantile"})


def check_metric_name(name: str, *, where: str = "metric name") -> str:
    """Return ``name`` if Prometheus accepts it as a metric name, else raise."""
    if not _NAME_RE.match(name):
        raise MetricNameError(
            f"{where} {name!r} is not a valid Prometheus metric name: use letters, digits,"
            " '_' and ':', not starting with a digit (for example 'orders_placed')"
        )
    return name


def check_label_names(labels: Iterable[str], *, metric: str) -> tuple[str, ...]:
    """Return ``labels`` as a tuple if every name is valid, unique and not reserved."""
    out = tuple(labels)
    for label in out:
        if not _LABEL_RE.match(label) or label.startswith("__"):
            raise MetricNameError(
                f"label {label!r} of metric {metric!r} is not a valid label name: use"
                " letters, digits and '_', not starting with a digit or '__'"
            )
        if label in _RESERVED_LABELS:
            raise MetricNameError(
                f"label {label!r} of metric {metric!r} is reserved for histograms and"
                " summaries; choose another name"
            )
    if len(set(out)) != len(out):
        raise MetricNameError(f"metric {metric!r} repeats a label name: {list(out)}")
    return out


def check_buckets(buckets: Sequence[float], *, where: str = "buckets") -> tuple[float, ...]:
    """Return sorted finite bucket bounds, or raise naming the problem."""
    bounds = tuple(float(b) for b in buckets)
    if not bounds:
        raise ConfigurationError(f"{where}: at least one bucket boundary is needed")
    if any(math.isnan(b) or math.isinf(b) for b in bounds):
        raise ConfigurationError(
            f"{where}: boundaries must be finite numbers; '+Inf' is added automatically"
        )
    if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
        raise ConfigurationError(f"{where}: boundaries must be strictly increasing: {bounds}")
    return bounds


def format_value(value: float) -> str:
    """Spell a sample value or a bucket bound exactly as the exposition writes it."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def le_label(bound: float) -> str:
    """The ``le`` label value of a bucket bound, as exposed (``1.0``, not ``1``)."""
    return format_value(bound)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric the SDK emits: its full name, type, labels and help text."""

    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str

    @property
    def sample_names(self) -> tuple[str, ...]:
        """Names of the series this metric produces in the text format."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        if self.type == "summary":
            return (f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


@dataclass(frozen=True, slots=True)
class RedCatalogue:
    """The RED metric names for one prefix (``http`` or a service namespace)."""

    prefix: str
    buckets: tuple[float, ...] = DEFAULT_BUCKETS

    @property
    def requests_total(self) -> MetricSpec:
        return MetricSpec(
            f"{self.prefix}_requests_total",
            "counter",
            ("method", "route", "status"),
            "HTTP requests handled, by method, route template and status code.",
        )

    @property
    def request_duration(self) -> MetricSpec:
        return MetricSpec(
            f"{self.prefix}_request_duration_seconds",
            "histogram",
            ("method", "route", "status"),
            "HTTP request duration in seconds, from request start to the last body byte.",
        )

    @property
    def request_size(self) -> MetricSpec:
        return MetricSpec(
            f"{self.prefix}_request_size_bytes",
            "summary",
            ("method", "route", "status"),
            "HTTP request body size in bytes (Content-Length).",
        )

    @property
    def response_size(self) -> MetricSpec:
        return MetricSpec(
            f"{self.prefix}_response_size_bytes",
            "summary",
            ("method", "route", "status"),
            "HTTP response body size in bytes.",
        )

    @property
    def in_progress(self) -> MetricSpec:
        return MetricSpec(
            f"{self.prefix}_requests_in_progress",
            "gauge",
            (),
            "HTTP requests being handled right now.",
        )

    @property
    def exceptions(self) -> MetricSpec:
        return MetricSpec(
            f"{self.prefix}_exceptions_total",
            "counter",
            ("method", "route", "exception_type"),
            "Unhandled exceptions raised by the application (the request counts as 500).",
        )

    @property
    def all(self) -> tuple[MetricSpec, ...]:
        """Every RED metric, in exposition order."""
        return (
            self.requests_total,
            self.request_duration,
            self.request_size,
            self.response_size,
            self.in_progress,
            self.exceptions,
        )

    def le_values(self) -> tuple[str, ...]:
        """The ``le`` label values of the duration histogram, ``+Inf`` last."""
        return (*(le_label(b) for b in self.buckets), "+Inf")

    def nearest_bounds(self, seconds: float) -> tuple[float | None, float | None]:
        """The bucket bounds just below and just above ``seconds`` (None past the ends)."""
        below = [b for b in self.buckets if b < seconds]
        above = [b for b in self.buckets if b > seconds]
        return (below[-1] if below else None, above[0] if above else None)

    def is_bound(self, seconds: float) -> bool:
        """True if ``seconds`` is exactly one of the histogram's boundaries."""
        return any(math.isclose(seconds, b, rel_tol=0, abs_tol=1e-12) for b in self.buckets)


SERVICE_INFO: Final = MetricSpec(
    "service_info",
    "gauge",
    ("service", "version", "env"),
    "Always 1; labels carry the service's name, version and deployment environment.",
)


#: Process metrics on ``/metrics``, with one worker or several (see ``metrics/process.py``).
PROCESS_METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec("process_resident_memory_bytes", "gauge", (), "Resident memory size in bytes."),
    MetricSpec(
        "process_cpu_seconds_total", "counter", (), "Total user and system CPU time in seconds."
    ),
    MetricSpec("process_open_fds", "gauge", (), "Number of open file descriptors."),
    MetricSpec("process_max_fds", "gauge", (), "Maximum number of open file descriptors."),
    MetricSpec(
        "process_start_time_seconds", "gauge", (), "Start time of the process since unix epoch."
    ),
)
#: The cgroup memory limit; only exposed when one is set.
PROCESS_MEMORY_LIMIT: Final = MetricSpec(
    "process_memory_limit_bytes",
    "gauge",
    (),
    "Memory limit of the process's cgroup (container) in bytes; absent when unlimited.",
)


@dataclass(frozen=True, slots=True)
class ClientCatalogue:
    """Metrics of outgoing HTTP requests: ``<prefix>_client_*``, prefix as for RED."""

    prefix: str = DEFAULT_PREFIX
    buckets: tuple[float, ...] = CLIENT_BUCKETS

    @property
    def requests_total(self) -> MetricSpec:
        return MetricSpec(
            f"{self.prefix}_client_requests_total",
            "counter",
            ("peer", "method", "status"),
            "Outgoing HTTP requests, by peer alias, method and status code ('error' when no"
            " response came back).",
        )

    @property
    def request_duration(self) -> MetricSpec:
        return MetricSpec(
            f"{self.prefix}_client_request_duration_seconds",
            "histogram",
            ("peer",),
            "Outgoing HTTP request duration in seconds, until the response headers.",
        )

    @property
    def all(self) -> tuple[MetricSpec, ...]:
        return (self.requests_total, self.request_duration)


def client_catalogue(
    namespace: str | None = None, buckets: Sequence[float] | None = None
) -> ClientCatalogue:
    """The client catalogue for a namespace (``kato`` gives ``kato_client_requests_total``)."""
    prefix = check_metric_name(namespace, where="namespace") if namespace else DEFAULT_PREFIX
    bounds = check_buckets(buckets) if buckets is not None else CLIENT_BUCKETS
    return ClientCatalogue(prefix=prefix, buckets=bounds)


def red_catalogue(
    namespace: str | None = None, buckets: Sequence[float] | None = None
) -> RedCatalogue:
    """The RED catalogue for a namespace (``kato`` gives ``kato_requests_total``)."""
    prefix = check_metric_name(namespace, where="namespace") if namespace else DEFAULT_PREFIX
    bounds = check_buckets(buckets) if buckets is not None else DEFAULT_BUCKETS
    return RedCatalogue(prefix=prefix, buckets=bounds)
