"""The RED aggregate: requests, errors and durations per (method, route, status).

Observations are plain list increments on the request path (no locks, no label
validation); all formatting work happens at scrape time. Bucket counts are stored
non-cumulative and the request count is their sum, so a scrape that races a request
can never expose a ``_count`` that disagrees with the ``+Inf`` bucket.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from glassbox.metrics._text import escape_help, fmt, label_block
from glassbox.metrics.catalogue import RedCatalogue, le_label

__all__ = ["Exemplar", "RedStore", "SeriesKey"]

SeriesKey = tuple[str, str, str]
"""(method, route, status)."""


@dataclass(slots=True)
class Exemplar:
    """The last traced observation that fell into one bucket."""

    trace_id: str
    span_id: str
    value: float
    timestamp: float


@dataclass(slots=True)
class RedStore:
    """RED aggregates for one metric prefix.

    Layout of a series list: ``[bucket_0 .. bucket_n(+Inf), duration_sum,
    request_bytes, response_bytes]``.
    """

    catalogue: RedCatalogue
    series: dict[SeriesKey, list[Any]] = field(default_factory=dict)
    exceptions: dict[SeriesKey, int] = field(default_factory=dict)
    exemplars: dict[tuple[SeriesKey, int], Exemplar] = field(default_factory=dict)
    in_progress: list[int] = field(default_factory=lambda: [0])
    _labels: dict[SeriesKey, str] = field(default_factory=dict)

    @property
    def bounds(self) -> tuple[float, ...]:
        return self.catalogue.buckets

    @property
    def width(self) -> int:
        """Length of one series list."""
        return len(self.catalogue.buckets) + 4

    def new_series(self) -> list[Any]:
        row: list[Any] = [0] * (len(self.catalogue.buckets) + 1)
        row += [0.0, 0, 0]
        return row

    def observe(
        self,
        method: str,
        route: str,
        status: str,
        seconds: float,
        request_bytes: int = 0,
        response_bytes: int = 0,
    ) -> None:
        """Record one request (the middleware inlines this for speed)."""
        key = (method, route, status)
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = self.new_series()
        row[bisect_left(self.catalogue.buckets, seconds)] += 1
        row[-3] += seconds
        row[-2] += request_bytes
        row[-1] += response_bytes

    def record_exemplar(self, key: SeriesKey, seconds: float, trace_id: str, span_id: str) -> None:
        idx = bisect_left(self.catalogue.buckets, seconds)
        self.exemplars[(key, idx)] = Exemplar(trace_id, span_id, seconds, time.time())

    # -- merging (multiprocess) -------------------------------------------------

    def merge_rows(
        self, series: dict[SeriesKey, list[Any]], exceptions: dict[SeriesKey, int]
    ) -> None:
        """Add another worker's counters into this store."""
        for key, row in series.items():
            mine = self.series.get(key)
            if mine is None:
                self.series[key] = list(row)
            else:
                for i, v in enumerate(row):
                    mine[i] += v
        for key, n in exceptions.items():
            self.exceptions[key] = self.exceptions.get(key, 0) + n

    # -- exposition ---------------------------------------------------------------

    def _label_str(self, key: SeriesKey) -> str:
        s = self._labels.get(key)
        if s is None:
            s = self._labels[key] = label_block(("method", "route", "status"), key)
        return s

    def render(self, out: list[str], *, openmetrics: bool) -> None:
        """Append this store's metrics to ``out`` in the text or OpenMetrics format."""
        cat = self.catalogue
        rows = [(k, r[:]) for k, r in list(self.series.items())]
        exemplars = dict(self.exemplars) if openmetrics else {}
        n = len(cat.buckets) + 1
        les = [f',le="{le}"}} ' for le in (*(le_label(b) for b in cat.buckets), "+Inf")]

        spec = cat.requests_total
        _header(out, spec.name, "counter", spec.help, openmetrics)
        name = spec.name
        for key, row in rows:
            out.append(f"{name}{{{self._label_str(key)}}} {sum(row[:n])}\n")

        spec = cat.request_duration
        _header(out, spec.name, "histogram", spec.help, openmetrics)
        bucket, total, count = f"{spec.name}_bucket{{", f"{spec.name}_sum{{", f"{spec.name}_count{{"
        for key, row in rows:
            lab = self._label_str(key)
            acc = 0
            for i in range(n):
                acc += row[i]
                line = f"{bucket}{lab}{les[i]}{acc}"
                ex = exemplars.get((key, i)) if exemplars else None
                if ex is not None:
                    line += (
                        f' # {{trace_id="{ex.trace_id}",span_id="{ex.span_id}"}}'
                        f" {fmt(ex.value)} {ex.timestamp:.3f}"
                    )
                out.append(line + "\n")
            out.append(f"{total}{lab}}} {fmt(row[n])}\n{count}{lab}}} {acc}\n")

        for spec, idx in ((cat.request_size, n + 1), (cat.response_size, n + 2)):
            _header(out, spec.name, "summary", spec.help, openmetrics)
            for key, row in rows:
                lab = self._label_str(key)
                out.append(f"{spec.name}_sum{{{lab}}} {row[idx]}\n")
                out.append(f"{spec.name}_count{{{lab}}} {sum(row[:n])}\n")

        spec = cat.in_progress
        _header(out, spec.name, "gauge", spec.help, openmetrics)
        out.append(f"{spec.name} {self.in_progress[0]}\n")

        spec = cat.exceptions
        _header(out, spec.name, "counter", spec.help, openmetrics)
        for key, value in list(self.exceptions.items()):
            lab = label_block(("method", "route", "exception_type"), key)
            out.append(f"{spec.name}{{{lab}}} {value}\n")


def _header(out: list[str], name: str, kind: str, help_text: str, openmetrics: bool) -> None:
    family = name[:-6] if openmetrics and kind == "counter" and name.endswith("_total") else name
    out.append(f"# HELP {family} {escape_help(help_text)}\n# TYPE {family} {kind}\n")
