"""The console's telemetry store: spans and log records in one SQLite file.

:class:`TelemetryStore` keeps what instrumented services send over OTLP (see
:mod:`glassbox.console.otlp`) and answers the console's queries: recent logs filtered
by minimum level, text, trace, service and time; recent traces as one summary each;
one trace's spans; the services seen.

What a caller must know:

* Writes are batched: one transaction per :meth:`~TelemetryStore.add_spans` or
  :meth:`~TelemetryStore.add_logs` call (one OTLP export request), under one writer
  lock. Queries run on read connections from a small pool (WAL: readers never wait
  for the writer), so the store can be shared by the ingest endpoint and the
  console's pages, from any threads.
* Retention is bounded three ways: ``max_spans``, ``max_logs`` and ``retention``
  seconds. When a count goes over its maximum the oldest rows are deleted in one batch
  (down to 95% of the maximum, so the delete runs once per 5% of inserts, not per
  insert); after every ``add_*`` call the counts are at most the maximums. Spans go by
  whole traces, oldest trace start first; logs go by arrival order. Rows older than
  ``retention`` (by their own timestamps) are deleted at most every 10 s, and by
  :meth:`~TelemetryStore.prune`.
* A span exported twice (an exporter's retry) is stored once: (trace_id, span_id) is
  unique.
* Text search is a case-insensitive (Unicode casefold) substring match on the message
  and on the JSON of the attributes (keys included); the text is a bound parameter
  with ``%``, ``_`` and ``\\`` escaped, so it matches literally.
"""

from __future__ import annotations

import heapq
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import orjson

__all__ = [
    "LEVELS",
    "Level",
    "LogRecord",
    "Span",
    "SpanEvent",
    "SpanKind",
    "StatusCode",
    "TelemetryStore",
    "TraceSummary",
    "level_number",
]

Level = Literal["debug", "info", "warning", "error", "critical"]
SpanKind = Literal["unspecified", "internal", "server", "client", "producer", "consumer"]
StatusCode = Literal["unset", "ok", "error"]

#: The log levels, lowest first.
LEVELS: Final[tuple[Level, ...]] = ("debug", "info", "warning", "error", "critical")
_NUMBER: Final[dict[str, int]] = {name: 10 * (i + 1) for i, name in enumerate(LEVELS)}
_NAME: Final[dict[int, Level]] = {10 * (i + 1): name for i, name in enumerate(LEVELS)}
_ALIASES: Final[dict[str, str]] = {
    "trace": "debug",
    "warn": "warning",
    "err": "error",
    "exception": "error",
    "fatal": "critical",
    "crit": "critical",
    "panic": "critical",
}

_SWEEP_EVERY: Final = 10.0  # seconds between time-retention sweeps done by add_*
_KEEP: Final = 0.95  # a count-retention pass deletes down to this share of the maximum
_IDLE_READERS: Final = 4  # read connections kept open between queries


def level_number(level: str) -> int:
    """10 (debug) to 50 (critical) for a level name or a common alias (warn, fatal, ...)."""
    name = level.strip().lower()
    name = _ALIASES.get(name, name)
    try:
        return _NUMBER[name]
    except KeyError:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanEvent:
    """A timestamped event inside a span (an exception, a retry, ...)."""

    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """One finished span; ids are lower-case hex (32 and 16 digits)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: SpanKind = "internal"
    service: str
    start_ns: int
    end_ns: int
    status_code: StatusCode = "unset"
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        """End minus start in milliseconds (0 for a span that ends before it starts)."""
        return max(0, self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """One log line; ``id`` is the store's (0 until stored), ``level`` is lower-case."""

    id: int = 0
    time_ns: int
    service: str
    level: Level = "info"
    logger: str = ""
    message: str
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceSummary:
    """One trace as the trace list shows it: its root span, extent, size and outcome.

    The root is the span without a parent, else (a trace continued from a caller that
    exported nothing here) the earliest-starting span.
    """

    trace_id: str
    root_name: str
    service: str
    start_ns: int
    duration_ms: float
    span_count: int
    error: bool


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spans (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_id, span_id);
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    root_name TEXT NOT NULL,
    root_service TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_ns);
CREATE INDEX IF NOT EXISTS traces_with_errors ON traces (start_ns) WHERE error_count > 0;
CREATE TABLE IF NOT EXISTS trace_services (
    service TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (service, trace_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trace_services_by_trace ON trace_services (trace_id);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    service TEXT NOT NULL,
    level INTEGER NOT NULL,
    logger TEXT NOT NULL,
    message TEXT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    attributes TEXT NOT NULL,
    folded TEXT  -- casefold(message, attributes) for text that is not all ASCII, else NULL
);
CREATE INDEX IF NOT EXISTS logs_by_level ON logs (level, time_ns);
CREATE INDEX IF NOT EXISTS logs_by_service ON logs (service, level, time_ns);
CREATE INDEX IF NOT EXISTS logs_by_trace ON logs (trace_id, time_ns) WHERE trace_id IS NOT NULL;
"""

_INSERT_SPAN: Final = """
INSERT OR IGNORE INTO spans (trace_id, span_id, parent_span_id, name, kind, service,
    start_ns, end_ns, status_code, status_message, attributes, events)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# The summary is recomputed from the trace's stored spans, so it is exact whatever
# order spans arrive in and however often one is re-sent.
_SUMMARISE: Final = """
INSERT OR REPLACE INTO traces (trace_id, start_ns, end_ns, span_count, error_count,
    root_name, root_service)
SELECT :t, agg.first, agg.last, agg.n, agg.errors, root.name, root.service
FROM (SELECT min(start_ns) AS first, max(end_ns) AS last, count(*) AS n,
             total(status_code = 'error') AS errors
      FROM spans WHERE trace_id = :t) AS agg,
     (SELECT name, service FROM spans WHERE trace_id = :t
      ORDER BY parent_span_id IS NOT NULL, start_ns LIMIT 1) AS root
"""
_INSERT_LOG: Final = """
INSERT INTO logs (time_ns, service, level, logger, message, trace_id, span_id, attributes,
    folded)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_SPANS: Final = """
SELECT trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns,
    status_code, status_message, attributes, events FROM spans"""
_SELECT_LOGS: Final = """
SELECT id, time_ns, service, level, logger, message, trace_id, span_id, attributes
FROM logs"""
_SELECT_TRACES: Final = """
SELECT trace_id, root_name, root_service, start_ns, end_ns, span_count, error_count
FROM traces"""


def _query(head: str, where: Sequence[str], tail: str) -> str:
    """``head WHERE where... tail``: SQL from constant fragments (values stay parameters)."""
    return head + (" WHERE " + " AND ".join(where) if where else "") + " " + tail


def _json(value: object) -> str:
    return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_filter(text: str) -> tuple[str, list[Any]]:
    """An SQL condition: ``text`` is in the message or the attributes, ignoring case.

    LIKE folds ASCII letters only; the ``folded`` column (the casefolded text of rows
    that are not all ASCII) covers the rest, so ``köln`` finds ``KÖLN`` and ``strasse``
    finds ``Straße``.
    """
    needle = text.casefold()
    if needle.isascii():
        pattern = _like(needle)
        like = "LIKE ? ESCAPE '\\'"
        return (
            f"(message {like} OR attributes {like} OR folded {like})",
            [pattern, pattern, pattern],
        )
    # an all-ASCII row folds to ASCII: only rows with a folded copy can match
    return "(folded IS NOT NULL AND instr(folded, ?) > 0)", [needle]


def _span_row(s: Span) -> tuple[Any, ...]:
    """The ``spans`` row of a span (the column order of _INSERT_SPAN)."""
    events = [{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in s.events]
    return (
        s.trace_id,
        s.span_id,
        s.parent_span_id,
        s.name,
        s.kind,
        s.service,
        s.start_ns,
        s.end_ns,
        s.status_code,
        s.status_message,
        _json(s.attributes),
        _json(events),
    )


def _log_row(r: LogRecord) -> tuple[Any, ...]:
    """The ``logs`` row of a record (the column order of _INSERT_LOG)."""
    attributes = _json(r.attributes)
    ascii_only = r.message.isascii() and attributes.isascii()
    return (
        r.time_ns,
        r.service,
        _NUMBER.get(r.level, 20),
        r.logger,
        r.message,
        r.trace_id or None,
        r.span_id or None,
        attributes,
        None if ascii_only else f"{r.message}\n{attributes}".casefold(),
    )


def _span(row: Sequence[Any]) -> Span:
    return Span(
        trace_id=row[0],
        span_id=row[1],
        parent_span_id=row[2],
        name=row[3],
        kind=row[4],
        service=row[5],
        start_ns=row[6],
        end_ns=row[7],
        status_code=row[8],
        status_message=row[9],
        attributes=orjson.loads(row[10]),
        events=[SpanEvent(**event) for event in orjson.loads(row[11])],
    )


def _log(row: Sequence[Any]) -> LogRecord:
    return LogRecord(
        id=row[0],
        time_ns=row[1],
        service=row[2],
        level=_NAME.get(row[3], "info"),
        logger=row[4],
        message=row[5],
        trace_id=row[6],
        span_id=row[7],
        attributes=orjson.loads(row[8]),
    )


def _summary(row: Sequence[Any]) -> TraceSummary:
    return TraceSummary(
        trace_id=row[0],
        root_name=row[1],
        service=row[2],
        start_ns=row[3],
        duration_ms=max(0, row[4] - row[3]) / 1e6,
        span_count=row[5],
        error=row[6] > 0,
    )


class TelemetryStore:
    """Spans and logs in SQLite, bounded by count and age; safe to share across threads.

    ``path`` is the database file (created with its tables if missing), or
    ``":memory:"`` for a store that lives as long as the object (its queries then share
    the writer's connection and lock).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_spans: int = 200_000,
        max_logs: int = 500_000,
        retention: float = 86_400.0,
    ) -> None:
        if max_spans < 1 or max_logs < 1:
            raise ValueError("max_spans and max_logs must be at least 1")
        if retention <= 0:
            raise ValueError(f"retention must be a positive number of seconds, got {retention}")
        self.path = str(path)
        self.max_spans = max_spans
        self.max_logs = max_logs
        self.retention = retention
        self._memory = self.path == ":memory:"
        self._lock = threading.Lock()
        self._closed = False
        self._writer = self._connect(reader=False)
        self._writer.executescript(_SCHEMA)
        self._span_count = int(self._writer.execute("SELECT count(*) FROM spans").fetchone()[0])
        self._log_count = int(self._writer.execute("SELECT count(*) FROM logs").fetchone()[0])
        self._last_sweep = time.monotonic()
        self._idle: list[sqlite3.Connection] = []  # read connections not in use
        self._idle_lock = threading.Lock()

    # -- connections -------------------------------------------------------------

    def _connect(self, *, reader: bool) -> sqlite3.Connection:
        # A connection is used by one thread at a time (the writer under its lock, a
        # reader while taken from the pool), not always the thread that opened it.
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        if not self._memory:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute(f"PRAGMA cache_size=-{16_000 if reader else 32_000}")  # KiB
        if reader:
            conn.execute("PRAGMA query_only=1")
        return conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise RuntimeError("the telemetry store is closed")
        if self._memory:
            with self._lock:
                yield self._writer
            return
        # A small pool rather than one connection per thread: thread pools retire idle
        # threads, and a per-thread connection would outlive its thread.
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect(reader=True)
        try:
            yield conn
        finally:
            with self._idle_lock:
                keep = not self._closed and len(self._idle) < _IDLE_READERS
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the telemetry store is closed")
            conn = self._writer
            counts = (self._span_count, self._log_count)
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # nothing was stored (a failed COMMIT, e.g. disk full, rolled back already)
                self._span_count, self._log_count = counts
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- writing ------------------------------------------------------------------

    def add_spans(self, spans: Iterable[Span]) -> int:
        """Store spans in one transaction; the number stored (re-sent spans are not)."""
        rows = []
        traces: set[str] = set()
        trace_services: set[tuple[str, str]] = set()
        for s in spans:
            rows.append(_span_row(s))
            traces.add(s.trace_id)
            trace_services.add((s.service, s.trace_id))
        if not rows:
            return 0
        with self._writing() as conn:
            added = conn.executemany(_INSERT_SPAN, rows).rowcount
            conn.executemany(_SUMMARISE, [{"t": t} for t in traces])
            conn.executemany(
                "INSERT OR IGNORE INTO trace_services (service, trace_id) VALUES (?, ?)",
                trace_services,
            )
            self._span_count += added
            if self._span_count > self.max_spans:
                self._drop_oldest_traces(conn, self._span_count - int(self.max_spans * _KEEP))
            self._maybe_sweep(conn)
        return added

    def add_logs(self, logs: Iterable[LogRecord]) -> int:
        """Store log records in one transaction; the number stored."""
        rows = [_log_row(r) for r in logs]
        if not rows:
            return 0
        with self._writing() as conn:
            conn.executemany(_INSERT_LOG, rows)
            self._log_count += len(rows)
            if self._log_count > self.max_logs:
                self._drop_oldest_logs(conn, self._log_count - int(self.max_logs * _KEEP))
            self._maybe_sweep(conn)
        return len(rows)

    def prune(self) -> None:
        """Delete now what is older than ``retention`` (``add_*`` does so every 10 s)."""
        with self._writing() as conn:
            self._sweep(conn)

    def _drop_oldest_traces(self, conn: sqlite3.Connection, excess: int) -> None:
        doomed: list[tuple[str]] = []
        cursor = conn.execute("SELECT trace_id, span_count FROM traces ORDER BY start_ns")
        while excess > 0 and (chunk := cursor.fetchmany(1000)):
            for trace_id, count in chunk:
                if excess <= 0:
                    break
                doomed.append((trace_id,))
                excess -= count
        cursor.close()
        self._drop_traces(conn, doomed)

    def _drop_traces(self, conn: sqlite3.Connection, doomed: list[tuple[str]]) -> None:
        if not doomed:
            return
        removed = conn.executemany("DELETE FROM spans WHERE trace_id = ?", doomed).rowcount
        conn.executemany("DELETE FROM traces WHERE trace_id = ?", doomed)
        conn.executemany("DELETE FROM trace_services WHERE trace_id = ?", doomed)
        self._span_count -= removed

    def _drop_oldest_logs(self, conn: sqlite3.Connection, excess: int) -> None:
        row = conn.execute(
            "SELECT id FROM logs ORDER BY id LIMIT 1 OFFSET ?", (max(0, excess - 1),)
        ).fetchone()
        if row is not None:
            self._log_count -= conn.execute("DELETE FROM logs WHERE id <= ?", row).rowcount

    def _maybe_sweep(self, conn: sqlite3.Connection) -> None:
        if time.monotonic() - self._last_sweep >= _SWEEP_EVERY:
            self._sweep(conn)

    def _sweep(self, conn: sqlite3.Connection) -> None:
        self._last_sweep = time.monotonic()
        cutoff = time.time_ns() - int(self.retention * 1e9)
        old = conn.execute("SELECT trace_id FROM traces WHERE start_ns < ?", (cutoff,)).fetchall()
        self._drop_traces(conn, old)
        for number in _NAME:  # one range delete per level, on the (level, time_ns) index
            self._log_count -= conn.execute(
                "DELETE FROM logs WHERE level = ? AND time_ns < ?", (number, cutoff)
            ).rowcount

    # -- reading ------------------------------------------------------------------

    def search_logs(
        self,
        *,
        level: str | None = None,
        text: str | None = None,
        trace_id: str | None = None,
        service: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 200,
    ) -> list[LogRecord]:
        """Log records newest first; every filter given must hold.

        ``level`` is a minimum (``"warning"`` also gives error and critical);
        ``since_ns`` and ``until_ns`` are inclusive bounds on the record's time. A
        ``text`` search over all levels from info down picks the ``limit`` newest
        *arrivals* that match (the same records unless a batch came in late), then
        orders them by time.
        """
        if limit <= 0:
            return []
        where: list[str] = []
        params: list[Any] = []
        if since_ns is not None:
            where.append("time_ns >= ?")
            params.append(since_ns)
        if until_ns is not None:
            where.append("time_ns <= ?")
            params.append(until_ns)
        if text:
            condition, text_params = _text_filter(text)
            where.append(condition)
            params += text_params
        minimum = level_number(level) if level is not None else 10
        newest = "ORDER BY time_ns DESC, id DESC LIMIT ?"
        with self._reading() as conn:
            if trace_id is not None:
                sql = _query(
                    _SELECT_LOGS + " INDEXED BY logs_by_trace",
                    ["trace_id = ?", "level >= ?", *where]
                    + (["service = ?"] if service is not None else []),
                    newest,
                )
                args = [trace_id.lower(), minimum, *params]
                args += [service] if service is not None else []
                return [_log(r) for r in conn.execute(sql, [*args, limit])]
            if text and minimum <= _NUMBER["info"]:
                # Text over (nearly) every level: one sequential scan, newest arrivals
                # first, beats index-ordered scans whose every row is a random read.
                sql = _query(
                    _SELECT_LOGS,
                    ["level >= ?", *where] + (["service = ?"] if service is not None else []),
                    "ORDER BY id DESC LIMIT ?",
                )
                args = [minimum, *params] + ([service] if service is not None else [])
                rows = conn.execute(sql, [*args, limit]).fetchall()
                rows.sort(key=lambda r: (r[1], r[0]), reverse=True)
                return [_log(r) for r in rows]
            # One index-ordered scan per level, merged: each stops after `limit` rows, so
            # a rare level costs as little as a common one.
            if service is None:
                sql = _query(
                    _SELECT_LOGS + " INDEXED BY logs_by_level", ["level = ?", *where], newest
                )
                lead = []
            else:
                sql = _query(
                    _SELECT_LOGS + " INDEXED BY logs_by_service",
                    ["service = ?", "level = ?", *where],
                    newest,
                )
                lead = [service]
            per_level = [
                conn.execute(sql, [*lead, number, *params, limit]).fetchall()
                for number in _NAME
                if number >= minimum
            ]
        merged = heapq.merge(*per_level, key=lambda r: (r[1], r[0]), reverse=True)
        return [_log(r) for _, r in zip(range(limit), merged, strict=False)]

    def traces(
        self,
        *,
        service: str | None = None,
        since_ns: int | None = None,
        min_duration_ms: float | None = None,
        errors_only: bool = False,
        limit: int = 50,
    ) -> list[TraceSummary]:
        """Trace summaries, newest start first.

        ``service`` matches a trace any of whose spans comes from that service.
        """
        if limit <= 0:
            return []
        where: list[str] = []
        params: list[Any] = []
        if errors_only:
            where.append("error_count > 0")
        if since_ns is not None:
            where.append("start_ns >= ?")
            params.append(since_ns)
        if min_duration_ms is not None:
            where.append("end_ns - start_ns >= ?")
            params.append(int(min_duration_ms * 1e6))
        if service is not None:
            where.append(
                "EXISTS (SELECT 1 FROM trace_services AS s"
                " WHERE s.service = ? AND s.trace_id = traces.trace_id)"
            )
            params.append(service)
        index = " INDEXED BY traces_with_errors" if errors_only else " INDEXED BY traces_by_start"
        sql = _query(_SELECT_TRACES + index, where, "ORDER BY start_ns DESC LIMIT ?")
        with self._reading() as conn:
            return [_summary(r) for r in conn.execute(sql, [*params, limit])]

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of one trace, by start time (empty if the trace is not stored)."""
        with self._reading() as conn:
            rows = conn.execute(
                _query(_SELECT_SPANS, ["trace_id = ?"], "ORDER BY start_ns, id"),
                (trace_id.lower(),),
            ).fetchall()
        return [_span(r) for r in rows]

    def services(self) -> list[str]:
        """Names of the services that have spans or logs stored, sorted."""
        # A loose index scan: one index seek per distinct name, not one row per record.
        sql = """
        WITH RECURSIVE
          s(name) AS (SELECT min(service) FROM trace_services UNION ALL
                      SELECT (SELECT min(service) FROM trace_services WHERE service > s.name)
                      FROM s WHERE s.name IS NOT NULL),
          l(name) AS (SELECT min(service) FROM logs INDEXED BY logs_by_service UNION ALL
                      SELECT (SELECT min(service) FROM logs INDEXED BY logs_by_service
                              WHERE service > l.name)
                      FROM l WHERE l.name IS NOT NULL)
        SELECT name FROM s WHERE name IS NOT NULL
        UNION SELECT name FROM l WHERE name IS NOT NULL
        ORDER BY name
        """
        with self._reading() as conn:
            return [r[0] for r in conn.execute(sql)]

    def stats(self) -> dict[str, Any]:
        """Counts (spans, traces, logs, services), limits and the database size in bytes."""
        with self._reading() as conn:
            traces = conn.execute("SELECT count(*) FROM traces").fetchone()[0]
            spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
            logs = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        size = pages * page_size
        if not self._memory:
            wal = Path(self.path + "-wal")
            size += wal.stat().st_size if wal.exists() else 0
        return {
            "spans": spans,
            "traces": traces,
            "logs": logs,
            "services": len(self.services()),
            "max_spans": self.max_spans,
            "max_logs": self.max_logs,
            "retention_s": self.retention,
            "db_bytes": size,
            "path": self.path,
        }

    def close(self) -> None:
        """Close every connection; later calls raise RuntimeError. Idempotent."""
        with self._lock:
            if self._closed:
                return
            with self._idle_lock:
                self._closed = True  # readers in use close themselves when done
                idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()
            self._writer.close()

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
