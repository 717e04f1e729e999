"""The console's OTLP/HTTP receiver against hostile export requests.

Random bytes, truncated and bit-flipped protobuf, made-up field values (64-bit
timestamps, ids of any length, nested attributes), glassbox JSON log lines of any
shape, wrong content types and encodings, gzip bombs and oversized bodies. Invariants:
the answer is 200 or a 4xx whose body is a ``google.rpc.Status`` with a message, never
a 5xx; a refused request stores nothing, an accepted one stores every record it
decoded (one transaction); and the server keeps serving.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google.rpc import status_pb2
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from starlette.applications import Starlette
from starlette.testclient import TestClient

from glassbox.console.app import ConsoleServer
from glassbox.console.otlp import MAX_BODY_BYTES, otlp_routes
from glassbox.console.store import TelemetryStore
from tests.robustness.fuzzing import fuzz

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ALLOWED = frozenset({200, 400, 413, 415})


class Receiver:
    """The OTLP routes over a fresh store, driven in-process."""

    def __init__(self, directory: Path) -> None:
        # records from 1970 on are kept (the default retention would sweep old ones)
        self.store = TelemetryStore(directory / "telemetry.sqlite", retention=3e9)
        self.app = Starlette(routes=list(otlp_routes(self.store)))
        self.client = TestClient(self.app)

    def counts(self) -> tuple[int, int]:
        stats = self.store.stats()
        return int(stats["spans"]), int(stats["logs"])

    def post(
        self, signal: str, body: bytes, headers: dict[str, Any]
    ) -> tuple[httpx.Response, tuple[int, int], tuple[int, int]]:
        before = self.counts()
        response = self.client.post(f"/v1/{signal}", content=body, headers=headers)
        return response, before, self.counts()


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    r = Receiver(tmp_path_factory.mktemp("otlp"))
    yield r
    r.store.close()


def assert_clear_answer(response: httpx.Response, media: str) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.content[:300])
    if response.status_code == 200:
        return
    if media == JSON:
        message = orjson.loads(response.content)["message"]
    else:
        status = status_pb2.Status()
        status.ParseFromString(response.content)
        message = status.message
    assert message, response.content


# -- strategies -------------------------------------------------------------------------

u64 = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1]))
ids = st.one_of(st.binary(min_size=0, max_size=20), st.sampled_from([b"\0" * 16, b"\1" * 16]))
planted = st.sampled_from(["<script>window.__pwned=1</script>", '"><img src=x onerror=1>', "\0"])


def any_values() -> st.SearchStrategy[AnyValue]:
    leaves = st.one_of(
        st.builds(lambda s: AnyValue(string_value=s), st.one_of(st.text(max_size=30), planted)),
        st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1)),
        st.builds(lambda f: AnyValue(double_value=f), st.floats()),
        st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
        st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=20)),
        st.just(AnyValue()),
    )

    def nest(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
        def array(values: list[AnyValue]) -> AnyValue:
            out = AnyValue()
            out.array_value.values.extend(values)
            return out

        def kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
            out = AnyValue()
            out.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in pairs)
            return out

        return st.one_of(
            st.lists(children, max_size=3).map(array),
            st.lists(st.tuples(st.text(max_size=8), children), max_size=3).map(kvlist),
        )

    return st.recursive(leaves, nest, max_leaves=12)


attributes = st.lists(
    st.tuples(st.one_of(st.text(max_size=12), st.just("service.name")), any_values()), max_size=4
)


@st.composite
def trace_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource = request.resource_spans.add()
        for key, value in draw(attributes):
            resource.resource.attributes.add(key=key, value=value)
        scope = resource.scope_spans.add()
        for _ in range(draw(st.integers(0, 3))):
            span = scope.spans.add()
            span.trace_id = draw(st.one_of(ids, st.binary(min_size=16, max_size=16)))
            span.span_id = draw(st.one_of(ids, st.binary(min_size=8, max_size=8)))
            span.parent_span_id = draw(ids)
            span.name = draw(st.one_of(st.text(max_size=30), planted))
            span.kind = draw(st.integers(-5, 10))  # type: ignore[assignment]  # any int
            span.start_time_unix_nano = draw(u64)
            span.end_time_unix_nano = draw(u64)
            span.status.code = draw(st.integers(-3, 5))  # type: ignore[assignment]
            span.status.message = draw(st.text(max_size=20))
            for key, value in draw(attributes):
                span.attributes.add(key=key, value=value)
            for _ in range(draw(st.integers(0, 2))):
                event = span.events.add(name=draw(st.text(max_size=10)))
                event.time_unix_nano = draw(u64)
    return request


json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
        st.text(max_size=20), planted,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=15,
)  # fmt: skip


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def glassbox_lines(draw: st.DrawFn) -> str:
    """What glassbox's JSON renderer prints, with any fields, values and nesting."""
    fields = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
    fields["event"] = draw(json_values)
    for key in draw(st.sets(st.sampled_from(["level", "logger", "trace_id", "span_id",
                                             "service", "timestamp"]))):  # fmt: skip
        fields[key] = draw(
            st.one_of(
                json_values,
                st.sampled_from(
                    [
                        "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00",
                        "0001-01-01T00:00:00+14:00",
                        "2026-01-01T00:00:00Z", "error", "4bf92f3577b34da6a3ce929d0e0e4736",
                    ]
                ),
            )
        )  # fmt: skip
    if draw(st.booleans()):
        fields["nested"] = _deep(draw(st.integers(1, 1000)))
    return json.dumps(fields)


@st.composite
def log_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    for key, value in draw(attributes):
        resource.resource.attributes.add(key=key, value=value)
    scope = resource.scope_logs.add()
    scope.scope.name = draw(st.text(max_size=10))
    for _ in range(draw(st.integers(0, 3))):
        record = scope.log_records.add()
        body = draw(st.one_of(glassbox_lines().map(lambda s: AnyValue(string_value=s)),
                              any_values()))  # fmt: skip
        record.body.CopyFrom(body)
        record.time_unix_nano = draw(u64)
        record.observed_time_unix_nano = draw(u64)
        record.severity_number = draw(st.integers(-2, 30))  # type: ignore[assignment]
        record.severity_text = draw(st.one_of(st.text(max_size=8), st.just("WARN")))
        record.trace_id = draw(ids)
        record.span_id = draw(ids)
        for key, value in draw(attributes):
            record.attributes.add(key=key, value=value)
    return request


def _truncate(data: bytes, cut: float) -> bytes:
    return data[: int(len(data) * cut)]


def _flip(data: bytes, seed: int) -> bytes:
    if not data:
        return data
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(1 + len(out) // 50):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


content_types = st.sampled_from(
    [PROTOBUF, JSON, f"{PROTOBUF}; charset=utf-8", "APPLICATION/JSON", "text/plain", "",
     "application/x-protobuf\x00", "multipart/form-data; boundary=x", "application/grpc"]
)  # fmt: skip
encodings = st.sampled_from(
    [None, None, "gzip", "identity", "GZIP", "deflate", "br", "gzip, gzip", ""]
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes, dict[str, Any]]:
    signal = draw(st.sampled_from(["traces", "logs"]))
    request = draw(trace_requests() if signal == "traces" else log_requests())
    media = draw(content_types)
    if "json" in media.lower():
        from google.protobuf import json_format

        document = json_format.MessageToDict(request)
        raw = draw(st.one_of(st.just(json.dumps(document).encode()),
                             json_values.map(lambda v: json.dumps(v).encode()),
                             st.just(b"[" * 5000 + b"]" * 5000)))  # fmt: skip
    else:
        raw = request.SerializeToString()
    kind = draw(st.sampled_from(["as-is", "as-is", "truncated", "flipped", "random"]))
    if kind == "truncated":
        raw = _truncate(raw, draw(st.floats(0, 1)))
    elif kind == "flipped":
        raw = _flip(raw, draw(st.integers(0, 2**32)))
    elif kind == "random":
        raw = draw(st.binary(max_size=300))
    headers: dict[str, Any] = {"content-type": media}
    encoding = draw(encodings)
    if encoding is not None:
        headers["content-encoding"] = encoding
        if encoding.lower() == "gzip":
            raw = gzip.compress(raw)
            if draw(st.booleans()):
                raw = _truncate(raw, draw(st.floats(0, 1)))
    return signal, raw, headers


# -- tests ------------------------------------------------------------------------------


@fuzz(300)
@given(bodies())
def test_any_export_request_gets_200_or_a_clear_4xx(
    receiver: Receiver, case: tuple[str, bytes, dict[str, Any]]
) -> None:
    signal, raw, headers = case
    response, before, after = receiver.post(signal, raw, headers)
    media = JSON if "json" in headers["content-type"].lower() else PROTOBUF
    assert_clear_answer(response, media)
    if response.status_code != 200:
        assert after == before, "a refused request stored something"


@fuzz(150)
@given(trace_requests())
def test_every_well_formed_span_is_stored_whatever_its_values(
    receiver: Receiver, request: ExportTraceServiceRequest
) -> None:
    response, before, after = receiver.post(
        "traces", request.SerializeToString(), {"content-type": PROTOBUF}
    )
    assert response.status_code == 200, response.content
    valid = {
        (s.trace_id, s.span_id)
        for r in request.resource_spans
        for ss in r.scope_spans
        for s in ss.spans
        if len(s.trace_id) == 16 and s.trace_id.strip(b"\0")
        and len(s.span_id) == 8 and s.span_id.strip(b"\0")
    }  # fmt: skip
    # a span id seen before (an exporter's retry) is stored once
    assert before[0] <= after[0] <= before[0] + len(valid)
    for trace_id, span_id in valid:
        stored = receiver.store.trace(trace_id.hex())
        assert span_id.hex() in {s.span_id for s in stored}


@fuzz(150)
@given(log_requests())
def test_every_log_record_is_stored_whatever_its_body(
    receiver: Receiver, request: ExportLogsServiceRequest
) -> None:
    response, before, after = receiver.post(
        "logs", request.SerializeToString(), {"content-type": PROTOBUF}
    )
    assert response.status_code == 200, response.content
    records = sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
    assert after[1] == before[1] + records


@pytest.mark.parametrize(
    "line",
    [
        json.dumps({"event": "deep", "nested": _deep(400)}),
        json.dumps({"event": "far future", "timestamp": "9999-12-31T23:59:59+00:00"}),
        json.dumps({"event": "long ago", "timestamp": "0001-01-01T00:00:00+14:00"}),
    ],
)
def test_a_glassbox_line_of_any_shape_is_stored(receiver: Receiver, line: str) -> None:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = line
    response, before, after = receiver.post(
        "logs", request.SerializeToString(), {"content-type": PROTOBUF}
    )
    assert response.status_code == 200, response.content
    assert after[1] == before[1] + 1


def test_a_timestamp_past_the_64_bit_range_is_stored(receiver: Receiver) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x07" * 16, b"\x08" * 8, "late"
    span.start_time_unix_nano = span.end_time_unix_nano = 2**64 - 1
    response, _, _ = receiver.post(
        "traces", request.SerializeToString(), {"content-type": PROTOBUF}
    )
    assert response.status_code == 200, response.content
    assert [s.name for s in receiver.store.trace("07" * 16)] == ["late"]


@pytest.mark.parametrize("length", [b"\xb2", b"\xb9\xb2\xb3"])
def test_a_content_length_of_non_ascii_digits_is_not_a_server_error(
    receiver: Receiver, length: bytes
) -> None:
    response, _, _ = receiver.post(
        "traces", b"", {"content-type": PROTOBUF, "content-length": length}
    )
    assert response.status_code in ALLOWED, response.content


def test_gzip_bomb_and_oversized_body_are_refused(receiver: Receiver) -> None:
    bomb = gzip.compress(b"\0" * (MAX_BODY_BYTES + 1024), compresslevel=9)
    response, before, after = receiver.post(
        "traces", bomb, {"content-type": PROTOBUF, "content-encoding": "gzip"}
    )
    assert response.status_code == 413
    assert after == before
    response, before, after = receiver.post(
        "logs", b"\0" * (MAX_BODY_BYTES + 1), {"content-type": PROTOBUF}
    )
    assert response.status_code == 413
    assert after == before


def _valid_export() -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x0a" * 16, b"\x0b" * 8, "still serving"
    span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    return request.SerializeToString()


def test_a_real_server_keeps_serving_after_hostile_requests(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path / "telemetry.sqlite")
    server = ConsoleServer(Starlette(routes=list(otlp_routes(store)))).start()
    rng = random.Random(7)
    answered: dict[int, int] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            hostile: list[tuple[str, bytes, dict[str, str]]] = [
                ("traces", rng.randbytes(2000), {"content-type": PROTOBUF}),
                ("logs", _valid_export()[:17], {"content-type": PROTOBUF}),
                ("logs", b"[" * 100_000, {"content-type": JSON}),
                ("traces", b"\x1f\x8b" + rng.randbytes(500), {"content-type": PROTOBUF,
                                                               "content-encoding": "gzip"}),
                ("traces", b"x" * (MAX_BODY_BYTES + 1), {"content-type": PROTOBUF}),
                ("traces", b"{}", {"content-type": "text/html"}),
                ("logs", json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
                    {"body": {"stringValue": json.dumps({"event": 1, "x": _deep(900)})}}
                ]}]}]}).encode(), {"content-type": JSON}),
            ]  # fmt: skip
            for signal, body, headers in hostile * 3:
                response = client.post(f"/v1/{signal}", content=body, headers=headers)
                answered[response.status_code] = answered.get(response.status_code, 0) + 1
                assert response.status_code in ALLOWED, (signal, headers, response.content)
            response = client.post(
                "/v1/traces", content=_valid_export(), headers={"content-type": PROTOBUF}
            )
            assert response.status_code == 200
        assert [s.name for s in store.trace("0a" * 16)] == ["still serving"]
        assert set(answered) <= ALLOWED
    finally:
        server.stop()
        store.close()
