"""Business metrics: declaration checks, label caps, @measured for sync and async."""

from __future__ import annotations

import asyncio

import pytest

import glassbox
from glassbox.exceptions import ConfigurationError, DuplicateMetricError, MetricNameError
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
