"""The telemetry store: what goes in comes back, filters hold, retention bounds hold."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glassbox.console.store import (
    LEVELS,
    LogRecord,
    Span,
    SpanEvent,
    TelemetryStore,
    TraceSummary,
    level_number,
)

NOW = time.time_ns()
MS = 1_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    s = TelemetryStore(tmp_path / "telemetry.db")
    yield s
    s.close()


def tid(n: int) -> str:
    return f"{n:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def span(
    trace: int,
    span_no: int,
    parent: int | None = None,
    *,
    start: int = 0,
    duration_ms: float = 1.0,
    service: str = "shop",
    name: str = "op",
    status: str = "unset",
) -> Span:
    begin = NOW + start
    return Span(
        trace_id=tid(trace),
        span_id=sid(span_no),
        parent_span_id=None if parent is None else sid(parent),
        name=name,
        kind="internal",
        service=service,
        start_ns=begin,
        end_ns=begin + int(duration_ms * MS),
        status_code=status,  # type: ignore[arg-type]
    )


def record(
    n: int,
    *,
    level: str = "info",
    message: str = "hello",
    service: str = "shop",
    trace: int | None = None,
    attributes: dict[str, object] | None = None,
    time_ns: int | None = None,
) -> LogRecord:
    return LogRecord(
        time_ns=NOW + n * MS if time_ns is None else time_ns,
        service=service,
        level=level,  # type: ignore[arg-type]
        logger="app",
        message=message,
        trace_id=None if trace is None else tid(trace),
        span_id=None if trace is None else sid(trace),
        attributes=attributes or {},
    )


# -- spans and traces -----------------------------------------------------------------


def test_spans_round_trip_ordered_by_start(store: TelemetryStore) -> None:
    root = Span(
        trace_id=tid(1),
        span_id=sid(1),
        name="GET /items/{id}",
        kind="server",
        service="shop",
        start_ns=NOW,
        end_ns=NOW + 25 * MS,
        status_code="error",
        status_message="boom",
        attributes={"http.status_code": 500, "ok": False, "ratio": 0.5, "tags": ["a", "b"]},
        events=[SpanEvent(name="exception", time_ns=NOW + MS, attributes={"type": "E"})],
    )
    child = span(1, 2, 1, start=5 * MS, duration_ms=10, name="SELECT", service="db")
    assert store.add_spans([child, root]) == 2  # the child arrives first
    got = store.trace(tid(1))
    assert got == [root, child]
    assert got[0].duration_ms == 25.0
    assert got[1].parent_span_id == sid(1)
    assert store.trace(tid(1).upper()) == got
    assert store.trace(tid(2)) == []


def test_a_resent_span_is_stored_once(store: TelemetryStore) -> None:
    spans = [span(1, 1), span(1, 2, 1)]
    assert store.add_spans(spans) == 2
    assert store.add_spans(spans) == 0  # an exporter's retry
    assert len(store.trace(tid(1))) == 2
    assert store.traces()[0].span_count == 2
    assert store.stats()["spans"] == 2


def test_trace_summary_root_extent_and_errors(store: TelemetryStore) -> None:
    # children first, root in a later request: the summary follows
    store.add_spans([span(1, 2, 1, start=2 * MS, duration_ms=3, name="child")])
    assert store.traces()[0].root_name == "child"  # best so far: earliest span
    store.add_spans(
        [
            span(1, 1, None, start=0, duration_ms=10, name="root", service="front"),
            span(1, 3, 1, start=4 * MS, duration_ms=9, status="error"),
        ]
    )
    (summary,) = store.traces()
    assert summary.trace_id == tid(1)
    assert summary.root_name == "root"
    assert summary.service == "front"
    assert summary.span_count == 3
    assert summary.start_ns == NOW
    assert summary.duration_ms == 13.0  # last end (4 + 9) minus first start
    assert summary.error is True


def test_root_of_a_trace_continued_from_a_remote_caller(store: TelemetryStore) -> None:
    # the caller's span (99) is not stored: the earliest span is the root
    store.add_spans([span(1, 2, 1, start=MS, name="inner"), span(1, 1, 99, name="entry")])
    assert store.traces()[0].root_name == "entry"


def test_traces_filters(store: TelemetryStore) -> None:
    store.add_spans(
        [
            span(1, 1, start=0, duration_ms=5, service="front"),
            span(1, 2, 1, start=MS, duration_ms=1, service="db"),
            span(2, 3, start=10 * MS, duration_ms=500, service="front"),
            span(3, 4, start=20 * MS, duration_ms=2, service="worker", status="error"),
            span(4, 5, start=30 * MS, duration_ms=1, service="front"),
        ]
    )

    def ids(found: list[TraceSummary]) -> list[str]:
        return [t.trace_id for t in found]

    assert ids(store.traces()) == [tid(4), tid(3), tid(2), tid(1)]  # newest first
    assert ids(store.traces(limit=2)) == [tid(4), tid(3)]
    assert ids(store.traces(service="db")) == [tid(1)]  # any span's service counts
    assert ids(store.traces(service="front")) == [tid(4), tid(2), tid(1)]
    assert ids(store.traces(service="nobody")) == []
    assert ids(store.traces(since_ns=NOW + 10 * MS)) == [tid(4), tid(3), tid(2)]
    assert ids(store.traces(min_duration_ms=100)) == [tid(2)]
    assert ids(store.traces(errors_only=True)) == [tid(3)]
    assert ids(store.traces(errors_only=True, service="front")) == []
    assert store.traces(limit=0) == []


# -- logs -----------------------------------------------------------------------------


def test_logs_round_trip_newest_first(store: TelemetryStore) -> None:
    records = [record(i, level=LEVELS[i % 5], message=f"m{i}") for i in range(20)]
    assert store.add_logs(records) == 20
    found = store.search_logs()
    assert [r.message for r in found] == [f"m{i}" for i in reversed(range(20))]
    assert all(r.id > 0 for r in found)
    first = found[-1]
    assert (first.time_ns, first.level, first.logger) == (NOW, "debug", "app")
    assert first.service == "shop"
    assert [r.message for r in store.search_logs(limit=3)] == ["m19", "m18", "m17"]


def test_search_logs_level_is_a_minimum(store: TelemetryStore) -> None:
    store.add_logs(record(i, level=level) for i, level in enumerate(LEVELS * 3))
    assert {r.level for r in store.search_logs(level="warning")} == {
        "warning",
        "error",
        "critical",
    }
    assert len(store.search_logs(level="warning")) == 9
    assert {r.level for r in store.search_logs(level="ERROR")} == {"error", "critical"}
    assert {r.level for r in store.search_logs(level="fatal")} == {"critical"}  # alias
    assert len(store.search_logs(level="debug")) == 15
    with pytest.raises(ValueError, match="log level"):
        store.search_logs(level="loud")


def test_search_logs_text_is_a_literal_case_insensitive_substring(store: TelemetryStore) -> None:
    store.add_logs(
        [
            record(1, message="Disk 100% full"),
            record(2, message="disk 1000 full"),  # '%' as a wildcard would match this
            record(3, message="user_id missing"),
            record(4, message="userXid missing"),  # '_' as a wildcard would match this
            record(5, message="plain", attributes={"Path": "/Checkout"}),
            record(6, message="Grüße aus KÖLN"),
            record(7, message="back\\slash"),
            record(10, message="Hauptstraße 1"),
        ]
    )

    def text(t: str) -> list[str]:
        return [r.message for r in store.search_logs(text=t)]

    assert text("100%") == ["Disk 100% full"]
    assert text("DISK") == ["disk 1000 full", "Disk 100% full"]
    assert text("user_id") == ["user_id missing"]
    assert text("%") == ["Disk 100% full"]
    assert text("_") == ["user_id missing"]
    assert text("checkout") == ["plain"]  # attribute values
    assert text("path") == ["plain"]  # and keys
    assert text("köln") == ["Grüße aus KÖLN"]  # non-ASCII folds too
    assert text("k\\s") == ["back\\slash"]
    assert text("GRÜSSE") == ["Grüße aus KÖLN"]  # full case folding: ß is ss
    assert text("STRASSE") == ["Hauptstraße 1"]  # also for an ASCII needle
    assert text("nothing like it") == []
    # with a level that leaves few records, the search goes through the level index
    store.add_logs([record(8, message="Disk 100% FULL again", level="error")])
    found = store.search_logs(text="100% full", level="warning")
    assert [r.message for r in found] == ["Disk 100% FULL again"]
    assert [r.message for r in store.search_logs(text="100% full")] == [
        "Disk 100% FULL again",
        "Disk 100% full",
    ]
    store.add_logs([record(9, message="ДИСК полон", level="critical")])
    assert [r.message for r in store.search_logs(text="диск", level="error")] == ["ДИСК полон"]
    assert [r.message for r in store.search_logs(text="диск")] == ["ДИСК полон"]


def test_search_logs_text_cannot_inject_sql(store: TelemetryStore) -> None:
    store.add_logs([record(1, message="it's fine")])
    for evil in ("' OR 1=1 --", "'; DROP TABLE logs; --", '" OR ""="', "\\' OR 1 --"):
        assert store.search_logs(text=evil) == []
        assert store.search_logs(service=evil) == []
        assert store.search_logs(trace_id=evil) == []
        assert store.traces(service=evil) == []
    assert [r.message for r in store.search_logs(text="it's")] == ["it's fine"]
    assert store.stats()["logs"] == 1


def test_search_logs_by_trace_service_and_time(store: TelemetryStore) -> None:
    store.add_logs(
        [
            record(1, trace=7, service="front"),
            record(2, trace=7, service="db", level="error"),
            record(3, trace=8, service="front"),
            record(4, service="front"),
            record(5, service="db"),
        ]
    )

    def times(found: list[LogRecord]) -> list[int]:
        return [(r.time_ns - NOW) // MS for r in found]

    assert times(store.search_logs(trace_id=tid(7))) == [2, 1]
    assert times(store.search_logs(trace_id=tid(7).upper(), level="error")) == [2]
    assert times(store.search_logs(trace_id=tid(7), service="front")) == [1]
    assert store.search_logs(trace_id=tid(7))[0].span_id == sid(7)
    assert times(store.search_logs(service="db")) == [5, 2]
    assert times(store.search_logs(service="front", level="warning")) == []
    assert times(store.search_logs(since_ns=NOW + 2 * MS, until_ns=NOW + 4 * MS)) == [4, 3, 2]
    assert times(store.search_logs(since_ns=NOW + 4 * MS)) == [5, 4]
    assert times(store.search_logs(until_ns=NOW + MS)) == [1]
    assert times(store.search_logs(service="front", since_ns=NOW + 2 * MS)) == [4, 3]


# -- retention ------------------------------------------------------------------------


def test_span_count_stays_bounded_and_newest_traces_stay(tmp_path: Path) -> None:
    with TelemetryStore(tmp_path / "t.db", max_spans=100) as store:
        for batch in range(30):  # 30 batches of 4 traces of 3 spans: 360 spans
            spans = [
                span(t, t * 10 + i, None if i == 0 else t * 10, start=t * MS)
                for t in range(batch * 4 + 1, batch * 4 + 5)
                for i in range(3)
            ]
            store.add_spans(spans)
            assert store.stats()["spans"] <= 100
        kept = {t.trace_id for t in store.traces(limit=1000)}
        assert tid(120) in kept  # the newest
        assert tid(1) not in kept  # the oldest
        assert len(kept) * 3 == store.stats()["spans"]  # whole traces go
        newest = max(int(t, 16) for t in kept)
        assert sorted(int(t, 16) for t in kept) == list(range(newest - len(kept) + 1, newest + 1))
        assert all(len(store.trace(t)) == 3 for t in kept)


def test_log_count_stays_bounded_and_newest_lines_stay(tmp_path: Path) -> None:
    with TelemetryStore(tmp_path / "t.db", max_logs=1000) as store:
        for batch in range(25):
            numbers = range(batch * 100, batch * 100 + 100)
            store.add_logs(record(n, message=f"n{n}") for n in numbers)
            assert store.stats()["logs"] <= 1000
        # one request larger than the maximum keeps its own newest lines
        store.add_logs(record(5000 + i, message=f"n{5000 + i}") for i in range(1500))
        stats = store.stats()
        assert 900 <= stats["logs"] <= 1000
        kept = [int(r.message[1:]) for r in store.search_logs(limit=5000)]
        assert kept[0] == 6499
        assert kept == list(range(6499, 6499 - len(kept), -1))  # contiguous newest


def test_retention_by_age(tmp_path: Path) -> None:
    day_ago = time.time_ns() - 2 * 3600 * 10**9
    with TelemetryStore(tmp_path / "t.db", retention=3600) as store:
        store.add_spans([span(1, 1, start=day_ago - NOW), span(2, 2)])
        store.add_logs([record(0, time_ns=day_ago, message="old"), record(1, message="new")])
        store.prune()
        assert [t.trace_id for t in store.traces()] == [tid(2)]
        assert store.trace(tid(1)) == []
        assert [r.message for r in store.search_logs()] == ["new"]
        assert store.stats()["spans"] == 1
        assert store.stats()["logs"] == 1


def test_bad_limits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_spans"):
        TelemetryStore(tmp_path / "t.db", max_spans=0)
    with pytest.raises(ValueError, match="retention"):
        TelemetryStore(tmp_path / "t.db", retention=0)


# -- the rest -------------------------------------------------------------------------


def test_services_stats_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with TelemetryStore(path) as store:
        store.add_spans([span(1, 1, service="front"), span(1, 2, 1, service="db")])
        store.add_logs([record(1, service="worker"), record(2, service="front")])
        assert store.services() == ["db", "front", "worker"]
        stats = store.stats()
        assert (stats["spans"], stats["traces"], stats["logs"], stats["services"]) == (2, 1, 2, 3)
        assert stats["db_bytes"] > 0
    with TelemetryStore(path, max_logs=2) as again:  # the data outlives the process
        assert again.services() == ["db", "front", "worker"]
        assert len(again.trace(tid(1))) == 2
        again.add_logs([record(3)])  # the count read at open drives retention
        assert again.stats()["logs"] <= 2
    with pytest.raises(RuntimeError, match="closed"):
        again.search_logs()
    again.close()  # idempotent


def test_in_memory_store() -> None:
    with TelemetryStore(":memory:") as store:
        store.add_spans([span(1, 1)])
        store.add_logs([record(1)])
        assert len(store.trace(tid(1))) == 1
        assert len(store.search_logs()) == 1


def test_concurrent_writers_and_readers(store: TelemetryStore) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(worker: int) -> None:
        try:
            for batch in range(20):
                base = worker * 10_000 + batch * 10
                store.add_spans(span(base + i, base + i) for i in range(10))
                store.add_logs(record(base + i) for i in range(10))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        try:
            while not stop.is_set():
                store.search_logs(level="info", text="hello")
                store.traces(errors_only=False)
                store.services()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(60)
    stop.set()
    for t in readers:
        t.join(60)
    assert errors == []
    stats = store.stats()
    assert (stats["spans"], stats["traces"], stats["logs"]) == (800, 800, 800)


def _open_files(path: str) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if fd.exists() and str(fd.resolve()) == path)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_short_lived_threads_leave_no_connections_behind(store: TelemetryStore) -> None:
    store.add_logs([record(1)])
    path = str(Path(store.path).resolve())
    before = _open_files(path)
    for _ in range(30):  # like a thread pool retiring idle workers
        t = threading.Thread(target=store.search_logs, kwargs={"text": "hello"})
        t.start()
        t.join()
    assert _open_files(path) <= before + 4  # a small pool, not one per thread ever seen
    store.close()
    assert _open_files(path) == 0


def test_the_database_is_wal_with_the_query_indexes(store: TelemetryStore) -> None:
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"logs_by_level", "logs_by_service", "logs_by_trace", "traces_by_start"} <= indexes
    finally:
        conn.close()


def test_level_numbers() -> None:
    assert [level_number(n) for n in LEVELS] == [10, 20, 30, 40, 50]
    assert level_number(" WARN ") == 30
    with pytest.raises(ValueError, match="not one of"):
        level_number("verbose")
