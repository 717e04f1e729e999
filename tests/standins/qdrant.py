"""A Qdrant stand-in speaking Qdrant's REST API, enough for a health check, a scrape
and the collection calls of examples/kato.

Qdrant cannot be installed here (no Debian package). This server answers ``/healthz``,
``/livez`` and ``/readyz`` with Qdrant's texts, ``/metrics`` with the families Qdrant's
``src/common/metrics.rs`` writes (``app_info``, ``collections_total``, ``cluster_enabled``,
``rest_responses_total{method,endpoint,status}`` and its ``fail`` and duration gauges,
``endpoint`` being the route pattern), and the collection endpoints: create, get, list,
upsert points, count and scroll with ``match`` filters, in Qdrant's envelope
``{"result": ..., "status": "ok", "time": seconds}``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "1.13.4"
Route = tuple[str, str, str]  # method, pattern, method of QdrantStandIn

_ROUTES: tuple[Route, ...] = (
    ("GET", "/healthz", "_healthz"),
    ("GET", "/livez", "_livez"),
    ("GET", "/readyz", "_readyz"),
    ("GET", "/metrics", "_metrics"),
    ("GET", "/collections", "_list"),
    ("GET", "/collections/{name}", "_get"),
    ("PUT", "/collections/{name}", "_create"),
    ("PUT", "/collections/{name}/points", "_upsert"),
    ("POST", "/collections/{name}/points/count", "_count"),
    ("POST", "/collections/{name}/points/scroll", "_scroll"),
)


class QdrantError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Collection:
    size: int
    distance: str
    points: dict[str | int, tuple[list[float], dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _Stats:
    count: int = 0
    fail: int = 0
    timed: int = 0
    total: float = 0.0
    low: float = float("inf")
    high: float = 0.0


class QdrantStandIn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.collections: dict[str, Collection] = {}
        self.stats: dict[tuple[str, str, int], _Stats] = {}
        self.operations = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        stand_in = self

        class Bound(_Handler):
            owner = stand_in

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Bound)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering (the data stays, as on a restarted Qdrant with storage)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # -- bookkeeping ----------------------------------------------------------------------

    def record(self, method: str, pattern: str, status: int, seconds: float) -> None:
        with self._lock:
            stats = self.stats.setdefault((method, pattern, status), _Stats())
            stats.count += 1
            stats.fail += status >= 400
            if status == 200:  # Qdrant reports timings of 200 answers only
                stats.timed += 1
                stats.total += seconds
                stats.low = min(stats.low, seconds)
                stats.high = max(stats.high, seconds)

    def exposition(self) -> str:
        out: list[str] = []

        def family(name: str, help: str, kind: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help}\n# TYPE {name} {kind}\n")
            out.extend(f"{name}{labels} {_number(value)}\n" for labels, value in samples)

        with self._lock:
            family("app_info", "information about qdrant server", "counter",
                   [(f'{{name="qdrant",version="{VERSION}"}}', 1)])  # fmt: skip
            family("collections_total", "number of collections", "gauge",
                   [("", len(self.collections))])  # fmt: skip
            family("collections_full_total", "number of full collections", "gauge",
                   [("", len(self.collections))])  # fmt: skip
            family("collections_aggregated_total", "number of aggregated collections", "gauge",
                   [("", 0)])  # fmt: skip
            family("cluster_enabled", "is cluster support enabled", "counter", [("", 0)])
            if not self.stats:
                return "".join(out)
            rows = sorted(self.stats.items())

            def labels(key: tuple[str, str, int]) -> str:
                return f'{{method="{key[0]}",endpoint="{key[1]}",status="{key[2]}"}}'

            family("rest_responses_total", "total number of responses", "counter",
                   [(labels(k), s.count) for k, s in rows])  # fmt: skip
            family("rest_responses_fail_total", "total number of failed responses", "counter",
                   [(labels(k), s.fail) for k, s in rows])  # fmt: skip
            timed = [(k, s) for k, s in rows if k[2] == 200 and s.timed]
            if timed:
                family("rest_responses_avg_duration_seconds", "average response duration",
                       "gauge", [(labels(k), s.total / s.timed) for k, s in timed])  # fmt: skip
                family("rest_responses_min_duration_seconds", "minimum response duration",
                       "gauge", [(labels(k), s.low) for k, s in timed])  # fmt: skip
                family("rest_responses_max_duration_seconds", "maximum response duration",
                       "gauge", [(labels(k), s.high) for k, s in timed])  # fmt: skip
        return "".join(out)

    # -- the API ----------------------------------------------------------------------------

    def collection(self, name: str) -> Collection:
        found = self.collections.get(name)
        if found is None:
            raise QdrantError(404, f"Not found: Collection `{name}` doesn't exist!")
        return found

    def _healthz(self, name: str, body: Any) -> str:
        return "healthz check passed"

    def _livez(self, name: str, body: Any) -> str:
        return "livez check passed"

    def _readyz(self, name: str, body: Any) -> str:
        return "all shards are ready"

    def _metrics(self, name: str, body: Any) -> str:
        return self.exposition()

    def _list(self, name: str, body: Any) -> Any:
        return {"collections": [{"name": n} for n in sorted(self.collections)]}

    def _get(self, name: str, body: Any) -> Any:
        found = self.collection(name)
        return {
            "status": "green",
            "optimizer_status": "ok",
            "segments_count": 1,
            "points_count": len(found.points),
            "indexed_vectors_count": 0,
            "config": {"params": {"vectors": {"size": found.size, "distance": found.distance}}},
            "payload_schema": {},
        }

    def _create(self, name: str, body: Any) -> Any:
        vectors = (body or {}).get("vectors")
        if not isinstance(vectors, dict) or not isinstance(vectors.get("size"), int):
            raise QdrantError(400, "Format error in JSON body: missing field `vectors`")
        with self._lock:
            if name in self.collections:
                raise QdrantError(409, f"Wrong input: Collection `{name}` already exists!")
            self.collections[name] = Collection(vectors["size"], str(vectors.get("distance")))
        return True

    def _upsert(self, name: str, body: Any) -> Any:
        found = self.collection(name)
        points = (body or {}).get("points")
        if not isinstance(points, list):
            raise QdrantError(400, "Format error in JSON body: missing field `points`")
        for point in points:
            vector = point.get("vector")
            if not isinstance(vector, list) or len(vector) != found.size:
                got = len(vector) if isinstance(vector, list) else 0
                raise QdrantError(
                    400,
                    f"Wrong input: Vector dimension error: expected dim: {found.size}, got {got}",
                )
        with self._lock:
            for point in points:
                found.points[_point_id(point.get("id"))] = (
                    point["vector"],
                    point.get("payload") or {},
                )
            self.operations += 1
            return {"operation_id": self.operations, "status": "completed"}

    def _matching(self, name: str, body: Any) -> list[tuple[str | int, dict[str, Any]]]:
        found = self.collection(name)
        condition = (body or {}).get("filter") or {}
        with self._lock:
            items = sorted(found.points.items(), key=lambda kv: str(kv[0]))
        return [(pid, payload) for pid, (_, payload) in items if _passes(payload, condition)]

    def _count(self, name: str, body: Any) -> Any:
        return {"count": len(self._matching(name, body))}

    def _scroll(self, name: str, body: Any) -> Any:
        limit = int((body or {}).get("limit", 10))
        offset = (body or {}).get("offset")
        matching = self._matching(name, body)
        if offset is not None:
            matching = [m for m in matching if str(m[0]) >= str(offset)]
        page, rest = matching[:limit], matching[limit:]
        return {
            "points": [{"id": pid, "payload": payload} for pid, payload in page],
            "next_page_offset": rest[0][0] if rest else None,
        }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _point_id(value: Any) -> str | int:
    if isinstance(value, int) and value >= 0:
        return value
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise QdrantError(
            400, f"Format error in JSON body: value {value} is not a valid point ID"
        ) from None


def _matches(payload: dict[str, Any], condition: dict[str, Any]) -> bool:
    have = payload.get(condition.get("key", ""))
    values = have if isinstance(have, list) else [have]
    match = condition.get("match") or {}
    if "value" in match:
        return match["value"] in values
    if "any" in match:
        return any(v in values for v in match["any"])
    return False


def _passes(payload: dict[str, Any], condition: dict[str, Any]) -> bool:
    must = condition.get("must") or []
    should = condition.get("should") or []
    must_not = condition.get("must_not") or []
    return (
        all(_matches(payload, c) for c in must)
        and (not should or any(_matches(payload, c) for c in should))
        and not any(_matches(payload, c) for c in must_not)
    )


def _route(method: str, path: str) -> tuple[str, str, str] | None:
    for verb, pattern, handler in _ROUTES:
        regex = "^" + re.sub(r"\{[a-z_]+\}", "([^/]+)", pattern) + "$"
        found = re.match(regex, path)
        if verb == method and found:
            return pattern, handler, found.group(1) if found.groups() else ""
    return None


class _Handler(BaseHTTPRequestHandler):
    owner: QdrantStandIn
    server_version = "qdrant"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        start = time.perf_counter()
        path = self.path.split("?", 1)[0]
        routed = _route(method, path)
        if routed is None:
            self._send(404, "text/plain", b"")
            return
        pattern, handler, name = routed
        status, text, content_type = 200, "", "application/json"
        try:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            result = getattr(self.owner, handler)(name, body)
            if isinstance(result, str):
                text = result
                content_type = (
                    "text/plain; version=0.0.4" if handler == "_metrics" else "text/plain"
                )
            else:
                elapsed = time.perf_counter() - start
                text = json.dumps({"result": result, "status": "ok", "time": elapsed})
        except QdrantError as exc:
            status = exc.status
            text = json.dumps({"status": {"error": str(exc)}, "time": time.perf_counter() - start})
        except json.JSONDecodeError as exc:
            status = 400
            text = json.dumps({"status": {"error": f"Format error in JSON body: {exc}"}, "time": 0})
        self._send(status, content_type, text.encode())
        self.owner.record(method, pattern, status, time.perf_counter() - start)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")
