"""Business metrics: counters, gauges and histograms under the service namespace.

Declare them once at import time; every declaration is checked at once (names,
labels, caps, conflicting re-registration). A per-label cap folds values past the
cap into ``__overflow__`` and counts the overflow in
``glassbox_label_overflow_total{metric,label}``, so a user id used as a label by
mistake cannot grow the series count without bound.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, Self, TypeVar, cast

from glassbox.exceptions import ConfigurationError, DuplicateMetricError
from glassbox.metrics._text import escape_help, fmt, label_block
from glassbox.metrics.catalogue import (
    DEFAULT_BUCKETS,
    OVERFLOW_VALUE,
    MetricType,
    check_buckets,
    check_label_names,
    check_metric_name,
    le_label,
)

if TYPE_CHECKING:
    from glassbox.metrics.registry import Registry

__all__ = [
    "DEFAULT_LABEL_CAP",
    "Counter",
    "Family",
    "Gauge",
    "GaugeMode",
    "Histogram",
    "Measurement",
    "Timer",
    "measured",
]

#: Distinct values one label of a business metric may take before folding.
DEFAULT_LABEL_CAP: Final = 100

GaugeMode = Literal["sum", "max", "min", "all"]
"""How a gauge is combined across worker processes (``all`` adds a ``pid`` label)."""

P = ParamSpec("P")
R = TypeVar("R")


class Family:
    """A named metric with a fixed label set; values are keyed by label values."""

    type: MetricType = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str],
        *,
        label_cap: int,
        registry: Registry,
    ) -> None:
        self.name = check_metric_name(name)
        self.help = help or name
        self.labelnames = check_label_names(labels, metric=name)
        if label_cap < 1:
            raise ConfigurationError(
                f"label_cap of metric {name!r} is {label_cap}; it must be at least 1"
                " (it bounds how many distinct values each label may take)"
            )
        self.label_cap = label_cap
        self.values: dict[tuple[str, ...], list[Any]] = {}
        self._seen: list[set[str]] = [set() for _ in self.labelnames]
        self._lock = threading.Lock()
        self._registry = registry

    # -- identity -------------------------------------------------------------------

    def signature(self) -> tuple[object, ...]:
        return (self.type, self.labelnames)

    def _new_row(self) -> list[Any]:
        return [0]

    # -- label handling -------------------------------------------------------------

    def _key(self, args: Sequence[object], kwargs: Mapping[str, object]) -> tuple[str, ...]:
        if args and kwargs:
            raise ValueError(f"{self.name}: pass label values by position or by name, not both")
        if kwargs:
            if set(kwargs) != set(self.labelnames):
                raise ValueError(
                    f"{self.name}: expected labels {list(self.labelnames)}, got {sorted(kwargs)}"
                )
            raw = tuple(str(kwargs[n]) for n in self.labelnames)
        else:
            if len(args) != len(self.labelnames):
                raise ValueError(
                    f"{self.name}: expected {len(self.labelnames)} label values"
                    f" {list(self.labelnames)}, got {len(args)}"
                )
            raw = tuple(str(a) for a in args)
        if raw in self.values:
            return raw
        return self._admit(raw)

    def _admit(self, raw: tuple[str, ...]) -> tuple[str, ...]:
        with self._lock:
            out = list(raw)
            for i, value in enumerate(raw):
                seen = self._seen[i]
                if value in seen:
                    continue
                if len(seen) >= self.label_cap:
                    out[i] = OVERFLOW_VALUE
                    self._registry.count_overflow(self.name, self.labelnames[i])
                else:
                    seen.add(value)
            key = tuple(out)
            if key not in self.values:
                self.values[key] = self._new_row()
            return key

    def _row(self, args: Sequence[object], kwargs: Mapping[str, object]) -> list[Any]:
        return self.values[self._key(args, kwargs)] if (args or kwargs) else self._unlabelled()

    def _unlabelled(self) -> list[Any]:
        if self.labelnames:
            raise ValueError(f"{self.name}: label values {list(self.labelnames)} are required")
        row = self.values.get(())
        if row is None:
            row = self.values[()] = self._new_row()
        return row

    # -- exposition -------------------------------------------------------------------

    def header(self, out: list[str], openmetrics: bool) -> str:
        family = self.name
        if openmetrics and self.type == "counter" and family.endswith("_total"):
            family = family[:-6]
        out.append(f"# HELP {family} {escape_help(self.help)}\n# TYPE {family} {self.type}\n")
        return family

    def render(self, out: list[str], *, openmetrics: bool) -> None:
        self.header(out, openmetrics)
        for key, row in list(self.values.items()):
            lab = label_block(self.labelnames, key)
            out.append(
                f"{self.name}{{{lab}}} {fmt(row[0])}\n" if lab else f"{self.name} {fmt(row[0])}\n"
            )


class Counter(Family):
    """A value that only goes up; exposed as ``<name>_total``."""

    type: MetricType = "counter"

    def inc(self, amount: float = 1, *labels: object, **labelkw: object) -> None:
        """Add ``amount`` (>= 0) to the series named by the label values."""
        if amount < 0:
            raise ValueError(f"{self.name}: counters only go up; got inc({amount})")
        self._row(labels, labelkw)[0] += amount

    def labels(self, *values: object, **kw: object) -> _CounterChild:
        return _CounterChild(self.values[self._key(values, kw)], self.name)


class _CounterChild:
    __slots__ = ("_name", "_row")

    def __init__(self, row: list[Any], name: str) -> None:
        self._row, self._name = row, name

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError(f"{self._name}: counters only go up; got inc({amount})")
        self._row[0] += amount


class Gauge(Family):
    """A value that goes up and down."""

    type: MetricType = "gauge"

    def __init__(self, *args: Any, mode: GaugeMode = "all", **kw: Any) -> None:
        super().__init__(*args, **kw)
        if mode not in ("sum", "max", "min", "all"):
            raise ConfigurationError(
                f"gauge {self.name!r}: multiprocess mode {mode!r} is not one of sum, max, min, all"
            )
        self.mode: GaugeMode = mode

    def signature(self) -> tuple[object, ...]:
        return (*super().signature(), self.mode)

    def set(self, value: float, *labels: object, **labelkw: object) -> None:
        self._row(labels, labelkw)[0] = value

    def inc(self, amount: float = 1, *labels: object, **labelkw: object) -> None:
        self._row(labels, labelkw)[0] += amount

    def dec(self, amount: float = 1, *labels: object, **labelkw: object) -> None:
        self._row(labels, labelkw)[0] -= amount

    def labels(self, *values: object, **kw: object) -> _GaugeChild:
        return _GaugeChild(self.values[self._key(values, kw)])


class _GaugeChild:
    __slots__ = ("_row",)

    def __init__(self, row: list[Any]) -> None:
        self._row = row

    def set(self, value: float) -> None:
        self._row[0] = value

    def inc(self, amount: float = 1) -> None:
        self._row[0] += amount

    def dec(self, amount: float = 1) -> None:
        self._row[0] -= amount


class Histogram(Family):
    """A distribution of observed values in cumulative buckets."""

    type: MetricType = "histogram"

    def __init__(self, *args: Any, buckets: Sequence[float] = DEFAULT_BUCKETS, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.buckets = check_buckets(buckets, where=f"buckets of histogram {self.name!r}")

    def signature(self) -> tuple[object, ...]:
        return (*super().signature(), self.buckets)

    def _new_row(self) -> list[Any]:
        row: list[Any] = [0] * (len(self.buckets) + 1)
        row.append(0.0)
        return row

    def observe(self, value: float, *labels: object, **labelkw: object) -> None:
        row = self._row(labels, labelkw)
        row[bisect_left(self.buckets, value)] += 1
        row[-1] += value

    def labels(self, *values: object, **kw: object) -> _HistogramChild:
        return _HistogramChild(self.values[self._key(values, kw)], self.buckets)

    def time(self, *labels: object, **labelkw: object) -> Timer:
        """Time a block (``with h.time("search"):``) or every call of a function
        (``@h.time("search")``, sync or async) and observe the seconds it took."""
        return Timer(_HistogramChild(self._row(labels, labelkw), self.buckets).observe)

    def render(self, out: list[str], *, openmetrics: bool) -> None:
        self.header(out, openmetrics)
        les = [le_label(b) for b in self.buckets] + ["+Inf"]
        for key, live in list(self.values.items()):
            row = live[:]
            lab = label_block(self.labelnames, key)
            sep = "," if lab else ""
            acc = 0
            for i, le in enumerate(les):
                acc += row[i]
                out.append(f'{self.name}_bucket{{{lab}{sep}le="{le}"}} {acc}\n')
            braces = f"{{{lab}}}" if lab else ""
            out.append(f"{self.name}_sum{braces} {fmt(row[-1])}\n{self.name}_count{braces} {acc}\n")


class _HistogramChild:
    __slots__ = ("_buckets", "_row")

    def __init__(self, row: list[Any], buckets: tuple[float, ...]) -> None:
        self._row, self._buckets = row, buckets

    def observe(self, value: float) -> None:
        self._row[bisect_left(self._buckets, value)] += 1
        self._row[-1] += value

    def time(self) -> Timer:
        """Like :meth:`Histogram.time`, for this child's label values."""
        return Timer(self.observe)


# -- timing -----------------------------------------------------------------------------


class Timer:
    """Observes how long a block or a call takes; made by :meth:`Histogram.time`.

    Use it as a context manager (``with`` or ``async with``) or as a decorator of a sync
    or async function. The duration is observed also when the block raises. One object
    times one block at a time (``with h.time():`` makes a new one each time); as a
    decorator it times every call, concurrent ones included.
    """

    __slots__ = ("_observe", "_start", "seconds")

    def __init__(self, observe: Callable[[float], None]) -> None:
        self._observe = observe
        self._start = 0.0
        #: The duration the last ``with`` block observed (for a log line, say).
        self.seconds: float | None = None

    def _finish(self, seconds: float, failed: bool) -> None:
        self._observe(seconds)

    def __enter__(self) -> Self:
        self.seconds = None
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self._finish(self.seconds, exc_type is not None)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.__exit__(exc_type)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        finish = self._finish
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    result = await afn(*args, **kwargs)
                except BaseException:
                    finish(time.perf_counter() - start, True)
                    raise
                finish(time.perf_counter() - start, False)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                finish(time.perf_counter() - start, True)
                raise
            finish(time.perf_counter() - start, False)
            return result

        return wrapper


class Measurement(Timer):
    """A :class:`Timer` that also counts the outcome: ``status="success"`` or ``"error"``.

    Made by :meth:`Registry.measure` (a block) and :meth:`Registry.measured` (a
    function). Any exception counts as ``error`` and propagates.
    """

    __slots__ = ("_err", "_ok")

    def __init__(
        self, ok: _CounterChild, err: _CounterChild, observe: Callable[[float], None]
    ) -> None:
        super().__init__(observe)
        self._ok, self._err = ok, err

    def _finish(self, seconds: float, failed: bool) -> None:
        self._observe(seconds)
        (self._err if failed else self._ok).inc()


def measured(counter: Counter, histogram: Histogram, labels: Mapping[str, object]) -> Measurement:
    """Count by outcome and time with ``counter`` and ``histogram``; see :meth:`Registry.measure`.

    ``counter``'s labels are ``histogram``'s plus ``status``; ``labels`` gives their values.
    """
    values = tuple(str(labels[n]) for n in histogram.labelnames)
    return Measurement(
        counter.labels(*values, "success"),
        counter.labels(*values, "error"),
        histogram.labels(*values).observe,
    )


def ensure_same(existing: Family, new: Family) -> Family:
    """Return ``existing`` if ``new`` declares the same metric, else raise."""
    if type(existing) is not type(new) or existing.signature() != new.signature():
        raise DuplicateMetricError(
            f"metric {new.name!r} is already registered as a {existing.type} with labels"
            f" {list(existing.labelnames)}; a second registration as a {new.type} with labels"
            f" {list(new.labelnames)} conflicts. Reuse the first object or pick another name"
        )
    return existing
