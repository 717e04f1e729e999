"""The registry: every metric one process exposes, and how it is written out.

A default registry serves most programs; pass ``registry=`` everywhere (tests do)
to keep metrics apart. Collectors following prometheus_client's one-method
``Collector`` protocol (``collect()`` yielding metric families) can be added, so
existing prometheus_client metrics and the process collector appear on ``/metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar

from glassbox.exceptions import ConfigurationError, DuplicateMetricError
from glassbox.metrics._red import RedStore
from glassbox.metrics._text import escape_help, fmt, label_block
from glassbox.metrics.business import (
    DEFAULT_LABEL_CAP,
    Counter,
    Family,
    Gauge,
    GaugeMode,
    Histogram,
    Measurement,
    ensure_same,
    measured,
)
from glassbox.metrics.catalogue import (
    DEFAULT_BUCKETS,
    SERVICE_INFO,
    RedCatalogue,
    check_metric_name,
)

__all__ = ["REGISTRY", "Collector", "Registry"]

P = ParamSpec("P")
R = TypeVar("R")

OVERFLOW_METRIC = "glassbox_label_overflow_total"


class Collector(Protocol):
    """prometheus_client's collector protocol: yields ``prometheus_client.Metric``."""

    def collect(self) -> Iterable[Any]: ...


class Registry:
    """Holds the RED stores, business metrics, service info and extra collectors."""

    def __init__(self) -> None:
        self.red: dict[str, RedStore] = {}
        self.families: dict[str, Family] = {}
        self.collectors: list[Collector] = []
        self.info: tuple[str, str, str] | None = None
        self.overflow: dict[tuple[str, str], int] = {}
        self._measures: dict[tuple[object, ...], tuple[Counter, Histogram]] = {}
        self._lock = threading.Lock()

    # -- RED ---------------------------------------------------------------------------

    def red_store(self, catalogue: RedCatalogue) -> RedStore:
        """The RED store for ``catalogue.prefix``, created on first use."""
        with self._lock:
            store = self.red.get(catalogue.prefix)
            if store is None:
                self._check_free(catalogue.prefix + "_requests_total")
                for spec in catalogue.all:  # business metrics declared earlier
                    taken = {spec.name, *spec.sample_names} & set(self.families)
                    if taken:
                        raise DuplicateMetricError(
                            f"business metric {sorted(taken)[0]!r} uses a name of glassbox's"
                            f" RED metrics (prefix {catalogue.prefix!r}); rename it"
                        )
                store = self.red[catalogue.prefix] = RedStore(catalogue)
            elif store.catalogue.buckets != catalogue.buckets:
                raise DuplicateMetricError(
                    f"RED metrics with prefix {catalogue.prefix!r} already use buckets"
                    f" {store.catalogue.buckets}; a second app asks for {catalogue.buckets}."
                    " Use the same buckets or another namespace"
                )
            return store

    def set_info(self, service: str, version: str, env: str) -> None:
        """Expose ``service_info{service,version,env} 1``."""
        if SERVICE_INFO.name in self.families:
            raise DuplicateMetricError(
                f"business metric {SERVICE_INFO.name!r} clashes with glassbox's service info"
            )
        self.info = (service, version, env)

    # -- business metrics --------------------------------------------------------------

    def _check_free(self, name: str) -> None:
        if name == SERVICE_INFO.name and self.info is not None:
            raise DuplicateMetricError(f"metric {name!r} is glassbox's service info")
        for store in self.red.values():
            if name in {s.name for s in store.catalogue.all}:
                raise DuplicateMetricError(f"metric {name!r} is one of glassbox's RED metrics")

    def _register(self, family: Family) -> Any:
        with self._lock:
            existing = self.families.get(family.name)
            if existing is not None:
                return ensure_same(existing, family)
            self._check_free(family.name)
            if not family.labelnames:
                # a series without labels exists from the start, at 0, as in
                # prometheus_client: its first increment is a rise, not an appearance
                family._unlabelled()
            for label in family.labelnames:
                # likewise the overflow count of each capped label: increase() cannot
                # see the first folds of a series that appears already above 0
                self.overflow.setdefault((family.name, label), 0)
            self.families[family.name] = family
            return family

    @staticmethod
    def _full_name(name: str, namespace: str | None, suffix: str = "") -> str:
        check_metric_name(name)
        if suffix and name.endswith(suffix):
            name = name[: -len(suffix)]
        full = f"{namespace}_{name}" if namespace else name
        return check_metric_name(full + suffix)

    def counter(
        self,
        name: str,
        help: str = "",
        labels: Sequence[str] = (),
        *,
        namespace: str | None = None,
        label_cap: int = DEFAULT_LABEL_CAP,
    ) -> Counter:
        """Declare a counter, exposed as ``<namespace>_<name>_total``."""
        full = self._full_name(name, namespace, "_total")
        new = Counter(full, help, labels, label_cap=label_cap, registry=self)
        result: Counter = self._register(new)
        return result

    def gauge(
        self,
        name: str,
        help: str = "",
        labels: Sequence[str] = (),
        *,
        namespace: str | None = None,
        label_cap: int = DEFAULT_LABEL_CAP,
        mode: GaugeMode = "all",
    ) -> Gauge:
        """Declare a gauge; ``mode`` says how worker processes combine."""
        full = self._full_name(name, namespace)
        new = Gauge(full, help, labels, label_cap=label_cap, registry=self, mode=mode)
        result: Gauge = self._register(new)
        return result

    def histogram(
        self,
        name: str,
        help: str = "",
        labels: Sequence[str] = (),
        *,
        namespace: str | None = None,
        label_cap: int = DEFAULT_LABEL_CAP,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        """Declare a histogram with the given bucket bounds."""
        full = self._full_name(name, namespace)
        new = Histogram(full, help, labels, label_cap=label_cap, registry=self, buckets=buckets)
        result: Histogram = self._register(new)
        return result

    def measured(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        namespace: str | None = None,
        duration_name: str | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        help: str = "",
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a sync or async function to count and time its calls.

        Produces ``<name>_total{...,status="success|error"}`` and
        ``<name>_duration_seconds{...}`` (or ``duration_name``); ``labels`` are fixed per
        decorated function (``{"tool_name": "search"}``). An exception counts as
        ``error`` and propagates. :meth:`measure` on the same name shares the metrics.
        """
        static = dict(labels or {})
        counter, histogram = self._outcome_metrics(
            name, static, namespace=namespace, duration_name=duration_name,
            buckets=buckets, help=help, caller="measured",
        )  # fmt: skip
        return measured(counter, histogram, static)

    def measure(
        self,
        name: str,
        labels: Mapping[str, object] | None = None,
        /,
        *,
        namespace: str | None = None,
        duration_name: str | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        help: str = "",
        **label_values: object,
    ) -> Measurement:
        """Count and time one block, with label values known only at run time.

        ``with registry.measure("tool_executions", tool_name=self.name):`` (or
        ``async with``) records what :meth:`measured` records, in the same metrics.
        Label values go through the metrics' label caps. A label named like one of
        this method's options goes in the ``labels`` mapping instead.
        """
        values = {**(labels or {}), **label_values}
        counter, histogram = self._outcome_metrics(
            name, values, namespace=namespace, duration_name=duration_name,
            buckets=buckets, help=help, caller="measure",
        )  # fmt: skip
        return measured(counter, histogram, values)

    def _outcome_metrics(
        self,
        name: str,
        labels: Mapping[str, object],
        *,
        namespace: str | None,
        duration_name: str | None,
        buckets: Sequence[float],
        help: str,
        caller: str,
    ) -> tuple[Counter, Histogram]:
        """The counter and histogram behind :meth:`measured` and :meth:`measure`."""
        if "status" in labels:
            raise ConfigurationError(
                f"{caller}({name!r}): 'status' is set by glassbox (success/error);"
                " remove it from the labels"
            )
        key = (name, namespace, duration_name, frozenset(labels), tuple(buckets))
        found = self._measures.get(key)
        if found is not None:
            return found
        names = tuple(labels)
        # an earlier declaration with the same labels in another order is reused as is
        counter_name = self._full_name(name, namespace, "_total")
        existing = self.families.get(counter_name)
        if existing is not None and set(existing.labelnames) == {*names, "status"}:
            names = tuple(n for n in existing.labelnames if n != "status")
        counter = self.counter(
            name, help or f"Calls of {name}, by outcome.", (*names, "status"), namespace=namespace
        )
        histogram = self.histogram(
            duration_name or f"{name}_duration_seconds",
            help or f"Duration of {name} calls in seconds.",
            names,
            namespace=namespace,
            buckets=buckets,
        )
        self._measures[key] = (counter, histogram)
        return counter, histogram

    def count_overflow(self, metric: str, label: str) -> None:
        key = (metric, label)
        self.overflow[key] = self.overflow.get(key, 0) + 1

    def register_collector(self, collector: Collector) -> None:
        """Add a prometheus_client-style collector whose metrics join the exposition."""
        if not callable(getattr(collector, "collect", None)):
            raise ConfigurationError(f"{collector!r} has no collect() method")
        self.collectors.append(collector)

    def unregister_collector(self, collector: Collector) -> None:
        self.collectors.remove(collector)

    # -- exposition ----------------------------------------------------------------------

    merges = False
    """A registry renders itself; no I/O is needed to build its view."""

    def view(self) -> Registry:
        """The registry to render: this one (a multiprocess source merges first)."""
        return self

    def render(self, *, openmetrics: bool = False) -> str:
        """Every metric of this registry in the text (0.0.4) or OpenMetrics format."""
        out: list[str] = []
        for _ in self.render_steps(out, openmetrics=openmetrics):
            pass
        return "".join(out)

    def render_steps(self, out: list[str], *, openmetrics: bool) -> Iterator[None]:
        """Append the exposition to ``out`` in steps, yielding between them.

        An async server drains ``out`` and lets other requests run at each step, so
        a large scrape never holds the event loop (or the GIL) for long.
        """
        for store in list(self.red.values()):
            yield from store.render_steps(out, openmetrics=openmetrics)
        if self.info is not None:
            spec = SERVICE_INFO
            out.append(f"# HELP {spec.name} {escape_help(spec.help)}\n# TYPE {spec.name} gauge\n")
            out.append(f"{spec.name}{{{label_block(spec.labels, self.info)}}} 1\n")
        for family in list(self.families.values()):
            family.render(out, openmetrics=openmetrics)
            yield
        if self.overflow:
            name = OVERFLOW_METRIC[:-6] if openmetrics else OVERFLOW_METRIC
            out.append(
                f"# HELP {name} Label values folded into __overflow__ because the label's"
                f" cap was reached.\n# TYPE {name} counter\n"
            )
            for (metric, label), n in list(self.overflow.items()):
                labels = label_block(("metric", "label"), (metric, label))
                out.append(f"{OVERFLOW_METRIC}{{{labels}}} {n}\n")
        for collector in list(self.collectors):
            render_collected(out, collector.collect(), openmetrics=openmetrics)
            yield
        if openmetrics:
            out.append("# EOF\n")


def render_collected(out: list[str], families: Iterable[Any], *, openmetrics: bool) -> None:
    """Write prometheus_client metric families (``Metric`` objects)."""
    for fam in families:
        kind = fam.type
        name = fam.name
        if not openmetrics:
            if kind == "counter":
                name = f"{name}_total"
            elif kind == "info":
                name, kind = f"{name}_info", "gauge"
            elif kind == "stateset":
                kind = "gauge"
            elif kind == "unknown":
                kind = "untyped"
            elif kind == "gaugehistogram":
                kind = "histogram"
        out.append(f"# HELP {name} {escape_help(fam.documentation)}\n# TYPE {name} {kind}\n")
        for sample in fam.samples:
            if sample.name.endswith("_created"):
                continue
            labels = label_block(tuple(sample.labels), tuple(sample.labels.values()))
            body = f"{sample.name}{{{labels}}}" if labels else sample.name
            out.append(f"{body} {fmt(float(sample.value))}\n")


REGISTRY = Registry()
"""The default registry."""
