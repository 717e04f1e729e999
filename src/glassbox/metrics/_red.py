"""The RED aggregate: requests, errors and durations per (method, route, status).

Observations are plain list increments on the request path (no locks, no label
validation); all formatting work happens at scrape time. Bucket counts are stored
non-cumulative and the request count is their sum, so a scrape that races a request
can never expose a ``_count`` that disagrees with the ``+Inf`` bucket.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, NamedTuple

from glassbox.metrics._text import escape_help, fmt, label_block
from glassbox.metrics.catalogue import RedCatalogue

__all__ = ["Exemplar", "RedStore", "SeriesKey"]

SeriesKey = tuple[str, str, str]
"""(method, route, status)."""


class Exemplar(NamedTuple):
    """The last traced observation that fell into one bucket (ids as integers)."""

    trace_id: int
    span_id: int
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
    _prefixes: dict[SeriesKey, tuple[str, ...]] = field(default_factory=dict)
    _hist_text: dict[SeriesKey, tuple[list[Any], str]] = field(default_factory=dict)

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

    def record_exemplar(self, key: SeriesKey, seconds: float, trace_id: int, span_id: int) -> None:
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

    def _text(self, key: SeriesKey) -> tuple[str, ...]:
        """Every line prefix of one series, built once and kept (labels never change)."""
        parts = self._prefixes.get(key)
        if parts is None:
            cat = self.catalogue
            lab = label_block(("method", "route", "status"), key)
            hist = cat.request_duration.name
            parts = (
                f"{cat.requests_total.name}{{{lab}}} ",
                *(f'{hist}_bucket{{{lab},le="{le}"}} ' for le in cat.le_values()),
                f"{hist}_sum{{{lab}}} ",
                f"{hist}_count{{{lab}}} ",
                f"{cat.request_size.name}_sum{{{lab}}} ",
                f"{cat.request_size.name}_count{{{lab}}} ",
                f"{cat.response_size.name}_sum{{{lab}}} ",
                f"{cat.response_size.name}_count{{{lab}}} ",
            )
            self._prefixes[key] = parts
        return parts

    def render(self, out: list[str], *, openmetrics: bool) -> None:
        """Append this store's metrics to ``out`` in the text or OpenMetrics format."""
        for _ in self.render_steps(out, openmetrics=openmetrics):
            pass

    def render_steps(self, out: list[str], *, openmetrics: bool, every: int = 32) -> Iterator[None]:
        """Like :meth:`render`, pausing (yielding) after every ``every`` series.

        The rows are copied first, so one scrape is a consistent picture even when
        the caller lets requests run between steps.
        """
        cat = self.catalogue
        rows = [(k, r[:]) for k, r in list(self.series.items())]
        exemplars = dict(self.exemplars) if openmetrics else {}
        traced = {k for k, _ in exemplars}
        n = len(cat.buckets) + 1
        texts = [self._text(k) for k, _ in rows]
        counts = [sum(r[:n]) for _, r in rows]

        spec = cat.requests_total
        _header(out, spec.name, "counter", spec.help, openmetrics)
        out.extend([f"{t[0]}{c}\n" for t, c in zip(texts, counts, strict=True)])
        yield

        spec = cat.request_duration
        _header(out, spec.name, "histogram", spec.help, openmetrics)
        for i, ((key, row), text) in enumerate(zip(rows, texts, strict=True)):
            if i % every == every - 1:
                yield
            if key in traced:
                acc = 0
                for b in range(n):
                    acc += row[b]
                    ex = exemplars.get((key, b))
                    if ex is None:
                        out.append(f"{text[1 + b]}{acc}\n")
                    else:
                        out.append(
                            f'{text[1 + b]}{acc} # {{trace_id="{ex.trace_id:032x}",'
                            f'span_id="{ex.span_id:016x}"}} {fmt(ex.value)} {ex.timestamp:.3f}\n'
                        )
                out.append(f"{text[n + 1]}{fmt(row[n])}\n{text[n + 2]}{counts[i]}\n")
            else:
                # A series unchanged since the last scrape reuses its text; a busy
                # one is written straight out (caching it would cost a join).
                head = row[: n + 1]
                cached = self._hist_text.get(key)
                if cached is not None and cached[0] == head and cached[1]:
                    out.append(cached[1])
                    continue
                lines = [
                    f"{p}{c}\n" for p, c in zip(text[1 : n + 1], accumulate(row[:n]), strict=True)
                ]
                lines.append(f"{text[n + 1]}{fmt(row[n])}\n{text[n + 2]}{counts[i]}\n")
                if cached is not None and cached[0] == head:
                    block = "".join(lines)
                    self._hist_text[key] = (head, block)
                    out.append(block)
                else:
                    self._hist_text[key] = (head, "")
                    out.extend(lines)
        yield

        for spec, col, pos in ((cat.request_size, n + 1, n + 3), (cat.response_size, n + 2, n + 5)):
            _header(out, spec.name, "summary", spec.help, openmetrics)
            out.extend(
                [
                    f"{t[pos]}{r[col]}\n{t[pos + 1]}{c}\n"
                    for (_, r), t, c in zip(rows, texts, counts, strict=True)
                ]
            )
            yield

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
