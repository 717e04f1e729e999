"""Business metrics: declaration checks, label caps, @measured for sync and async."""

from __future__ import annotations

import asyncio

import pytest

import glassbox
from glassbox.exceptions import ConfigurationError, DuplicateMetricError, MetricNameError
from glassbox.metrics.business import Timer
from tests.metrics.helpers import parse, value


@pytest.fixture
def registry() -> glassbox.Registry:
    return glassbox.Registry()


def test_counter_gauge_histogram_under_a_namespace(registry: glassbox.Registry) -> None:
    obs = registry.counter("observations", "Observations.", ["processor_id"], namespace="kato")
    docs = registry.gauge("documents_ingested", "Docs in the index.", namespace="kalki")
    size = registry.histogram("batch_size", "Batch sizes.", buckets=(1, 10, 100), namespace="kato")
    obs.inc(2, "p1")
    obs.labels(processor_id="p2").inc()
    docs.set(41)
    docs.inc()
    size.observe(5)
    size.observe(500)
    samples = parse(registry.render())
    assert value(samples, "kato_observations_total", processor_id="p1") == 2
    assert value(samples, "kato_observations_total", processor_id="p2") == 1
    assert value(samples, "kalki_documents_ingested") == 42
    assert value(samples, "kato_batch_size_bucket", le="10.0") == 1
    assert value(samples, "kato_batch_size_bucket", le="+Inf") == 2
    assert value(samples, "kato_batch_size_sum") == 505


def test_series_without_labels_are_exposed_at_zero_before_use(
    registry: glassbox.Registry,
) -> None:
    registry.counter("db_errors", "Database errors.", namespace="kalki")
    registry.gauge("queue_depth", "Jobs waiting.")
    registry.histogram("batch_size", "Batch sizes.", buckets=(1, 10))
    registry.counter("llm_errors", "LLM errors.", ["provider"])  # labelled: nothing yet
    samples = parse(registry.render())
    assert value(samples, "kalki_db_errors_total") == 0
    assert value(samples, "queue_depth") == 0
    assert value(samples, "batch_size_bucket", le="+Inf") == 0
    assert value(samples, "batch_size_count") == 0
    assert not [name for name, _ in samples if name.startswith("llm_errors")]
    # each capped label's overflow count starts at 0 too, so the first fold is a rise
    overflow = "glassbox_label_overflow_total"
    assert value(samples, overflow, metric="llm_errors_total", label="provider") == 0


def test_total_suffix_is_not_doubled(registry: glassbox.Registry) -> None:
    c = registry.counter("jobs_total", "Jobs.")
    assert c.name == "jobs_total"
    c.inc()
    assert value(parse(registry.render()), "jobs_total") == 1


def test_label_cap_folds_excess_and_counts_overflow(registry: glassbox.Registry) -> None:
    c = registry.counter("logins", "Logins.", ["user"], label_cap=3)
    for i in range(10):
        c.inc(1, f"user-{i}")
    samples = parse(registry.render())
    users = {dict(labels)["user"] for (name, labels) in samples if name == "logins_total"}
    assert users == {"user-0", "user-1", "user-2", "__overflow__"}
    assert value(samples, "logins_total", user="__overflow__") == 7
    assert value(samples, "glassbox_label_overflow_total", metric="logins_total", label="user") == 7
    c.inc(1, "user-1")  # an admitted value keeps its own series
    assert value(parse(registry.render()), "logins_total", user="user-1") == 2


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.counter("bad-name"), MetricNameError, "not a valid Prometheus metric name"),
        (lambda r: r.counter("ok", labels=["le"]), MetricNameError, "reserved"),
        (lambda r: r.counter("ok", labels=["a", "a"]), MetricNameError, "repeats"),
        (lambda r: r.counter("ok", labels=["__x"]), MetricNameError, "not a valid label name"),
        (lambda r: r.counter("ok", labels=["x"], label_cap=0), ConfigurationError, "at least 1"),
        (lambda r: r.histogram("h", buckets=(2, 1)), ConfigurationError, "strictly increasing"),
        (lambda r: r.histogram("h", buckets=()), ConfigurationError, "at least one"),
        (lambda r: r.gauge("g", mode="avg"), ConfigurationError, "multiprocess mode"),
        (lambda r: r.measured("m", {"status": "x"}), ConfigurationError, "'status' is set"),
    ],
)
def test_bad_declarations_fail_at_setup(
    registry: glassbox.Registry, call: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call(registry)  # type: ignore[operator]


def test_conflicting_registration_is_an_error_identical_is_reused(
    registry: glassbox.Registry,
) -> None:
    first = registry.counter("orders", "Orders.", ["kind"])
    assert registry.counter("orders", "Orders.", ["kind"]) is first
    with pytest.raises(DuplicateMetricError, match="already registered"):
        registry.gauge("orders_total", "Orders.", ["kind"])
    with pytest.raises(DuplicateMetricError, match="already registered"):
        registry.counter("orders", "Orders.", ["other"])


def test_wrong_label_values_raise_at_call_site(registry: glassbox.Registry) -> None:
    c = registry.counter("calls", "Calls.", ["a", "b"])
    with pytest.raises(ValueError, match="expected 2 label values"):
        c.inc(1, "x")
    with pytest.raises(ValueError, match="expected labels"):
        c.labels(a="1", c="2")
    with pytest.raises(ValueError, match="only go up"):
        c.inc(-1, "x", "y")


def test_measured_sync_and_async(registry: glassbox.Registry) -> None:
    @registry.measured("tool_executions", {"tool_name": "search"})
    def search(fail: bool) -> str:
        if fail:
            raise RuntimeError("down")
        return "hit"

    @registry.measured("tool_executions", {"tool_name": "fetch"})
    async def fetch(fail: bool) -> str:
        await asyncio.sleep(0)
        if fail:
            raise TimeoutError
        return "page"

    assert search(False) == "hit"
    with pytest.raises(RuntimeError):
        search(True)
    assert asyncio.run(fetch(False)) == "page"
    assert asyncio.run(fetch(False)) == "page"
    with pytest.raises(TimeoutError):
        asyncio.run(fetch(True))
    samples = parse(registry.render())
    total = "tool_executions_total"
    assert value(samples, total, tool_name="search", status="success") == 1
    assert value(samples, total, tool_name="search", status="error") == 1
    assert value(samples, total, tool_name="fetch", status="success") == 2
    assert value(samples, total, tool_name="fetch", status="error") == 1
    assert value(samples, "tool_executions_duration_seconds_count", tool_name="fetch") == 3
    assert search.__name__ == "search"
    assert asyncio.iscoroutinefunction(fetch)


def test_red_names_cannot_be_taken_by_business_metrics(registry: glassbox.Registry) -> None:
    from starlette.applications import Starlette

    glassbox.instrument(Starlette(), service="svc", registry=registry)
    with pytest.raises(DuplicateMetricError, match="RED"):
        registry.counter("http_requests", "clash")


def test_histogram_time_as_context_manager_and_decorator(registry: glassbox.Registry) -> None:
    latency = registry.histogram("step_seconds", "Steps.", ["step"], buckets=(0.05, 10))

    with latency.time("parse") as timer:
        assert isinstance(timer, Timer)
        assert timer.seconds is None
    assert timer.seconds is not None
    assert 0 <= timer.seconds < 5
    with pytest.raises(KeyError), latency.time("parse"):
        raise KeyError("observed all the same")

    @latency.time("load")
    def load(n: int) -> int:
        return n * 2

    @latency.time(step="fetch")
    async def fetch() -> str:
        async with latency.time("nested"):
            await asyncio.sleep(0.06)
        return "page"

    assert load(2) == 4
    assert load(3) == 6
    assert asyncio.run(fetch()) == "page"
    assert asyncio.iscoroutinefunction(fetch)
    assert load.__name__ == "load"
    samples = parse(registry.render())
    assert value(samples, "step_seconds_count", step="parse") == 2
    assert value(samples, "step_seconds_count", step="load") == 2
    assert value(samples, "step_seconds_count", step="fetch") == 1
    # the sleep puts both fetch and nested above the 50 ms bucket
    assert value(samples, "step_seconds_bucket", step="fetch", le="0.05") == 0
    assert value(samples, "step_seconds_bucket", step="nested", le="0.05") == 0
    assert value(samples, "step_seconds_bucket", step="nested", le="10.0") == 1


def test_histogram_time_unlabelled_child_and_label_cap(registry: glassbox.Registry) -> None:
    total = registry.histogram("run_seconds", "Runs.")
    with total.time():
        pass
    per_user = registry.histogram("user_seconds", "Per user.", ["user"], label_cap=2)
    for user in ("a", "b", "c", "d"):
        with per_user.labels(user).time():
            pass
    with per_user.time("e"):
        pass
    samples = parse(registry.render())
    assert value(samples, "run_seconds_count") == 1
    assert value(samples, "user_seconds_count", user="__overflow__") == 3
    assert value(samples, "glassbox_label_overflow_total", metric="user_seconds", label="user") == 3
    with pytest.raises(ValueError, match="label values"):
        per_user.time()


def test_measure_with_runtime_labels_sync_and_async(registry: glassbox.Registry) -> None:
    class Tool:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, fail: bool) -> str:
            with registry.measure("tool_executions", tool_name=self.name):
                if fail:
                    raise RuntimeError("down")
                return "ok"

        async def arun(self, fail: bool) -> str:
            async with registry.measure("tool_executions", tool_name=self.name):
                await asyncio.sleep(0)
                if fail:
                    raise TimeoutError
                return "ok"

    search, fetch = Tool("search"), Tool("fetch")
    assert search.run(False) == "ok"
    with pytest.raises(RuntimeError):
        search.run(True)
    assert asyncio.run(fetch.arun(False)) == "ok"
    with pytest.raises(TimeoutError):
        asyncio.run(fetch.arun(True))
    samples = parse(registry.render())
    total = "tool_executions_total"
    assert value(samples, total, tool_name="search", status="success") == 1
    assert value(samples, total, tool_name="search", status="error") == 1
    assert value(samples, total, tool_name="fetch", status="success") == 1
    assert value(samples, total, tool_name="fetch", status="error") == 1
    assert value(samples, "tool_executions_duration_seconds_count", tool_name="fetch") == 2


def test_measure_and_measured_share_metrics(registry: glassbox.Registry) -> None:
    @registry.measured(
        "tool_executions",
        {"tool_name": "search", "kind": "web"},
        duration_name="tool_execution_duration_seconds",
        namespace="ai",
    )
    def search() -> None:
        return None

    search()
    # labels in another order, a label named like an option goes through the mapping
    with registry.measure(
        "tool_executions",
        namespace="ai",
        duration_name="tool_execution_duration_seconds",
        kind="db",
        tool_name="lookup",
    ):
        pass
    with registry.measure("jobs", {"help": "x"}):
        pass
    samples = parse(registry.render())
    counter, hist = "ai_tool_executions_total", "ai_tool_execution_duration_seconds_count"
    assert value(samples, counter, tool_name="search", kind="web", status="success") == 1
    assert value(samples, counter, tool_name="lookup", kind="db", status="success") == 1
    assert value(samples, hist, tool_name="lookup", kind="db") == 1
    assert value(samples, hist, tool_name="search", kind="web") == 1
    assert value(samples, "jobs_total", help="x", status="success") == 1
    assert "ai_tool_executions_duration_seconds" not in registry.families
    assert list(registry.families["ai_tool_executions_total"].labelnames) == [
        "tool_name",
        "kind",
        "status",
    ]


def test_measure_rejects_status_and_other_label_sets(registry: glassbox.Registry) -> None:
    with pytest.raises(ConfigurationError, match="'status' is set"):
        registry.measure("calls", status="ok")
    with registry.measure("calls", tool_name="a"):
        pass
    with pytest.raises(DuplicateMetricError, match="already registered"):
        registry.measure("calls", other="b")
    with pytest.raises(DuplicateMetricError, match="already registered"):
        registry.measure("calls", duration_name="calls_total", tool_name="a")


def test_measure_labels_are_capped(registry: glassbox.Registry) -> None:
    registry.counter("sessions", "Sessions.", ["session_id", "status"], label_cap=2)
    for i in range(5):
        with registry.measure("sessions", session_id=f"s{i}"):
            pass
    samples = parse(registry.render())
    assert value(samples, "sessions_total", session_id="__overflow__", status="success") == 3
