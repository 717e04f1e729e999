"""KATO 3.0 API: processors, sessions, observations and predictions, monitored with glassbox.

Run (after ``./scripts/setup.sh``), once per instance (kato-1..3 share the stores)::

    KATO_MONGO_URL=mongodb://127.0.0.1:27017/?directConnection=true \\
    KATO_QDRANT_URL=http://127.0.0.1:6333 \\
    KATO_REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/uvicorn --factory --app-dir examples/kato kato:create_app \\
        --host 127.0.0.1 --port 8000

``KATO_MONGO_URL`` is the knowledge base (MongoDB), ``KATO_QDRANT_URL`` holds learned
patterns (collection ``kato_patterns``), ``KATO_REDIS_URL`` sessions and their short-term
memory (STM); readiness fails without any of the three. ``KATO_DATA_DIR`` is the disk of
the non-critical disk check (default ``/``). ``GLASSBOX_HEALTH_TOKEN`` protects
``/health/detailed``; ``OTEL_EXPORTER_OTLP_ENDPOINT`` sends traces over OTLP/HTTP;
``GLASSBOX_EXAMPLE_FAULTS=1`` adds ``/admin/faults`` for the end-to-end test.

What it exposes (namespace ``kato``): ``kato_requests_total{method,route,status}``,
``kato_request_duration_seconds``, ``kato_requests_in_progress``, ``kato_exceptions_total``,
``service_info``, and ``kato_observations_total{processor_id}``,
``kato_predictions_total{processor_id}``, ``kato_patterns_stored{processor_id}``,
``kato_stm_size{processor_id}``, ``kato_sessions_active{processor_id}``, and its calls to
Qdrant in ``kato_client_requests_total{peer,method,status}`` and
``kato_client_request_duration_seconds{peer}``. A session id is never a label: it appears
in route templates only. ``/health``, ``/health/ready`` (503 when MongoDB, Qdrant or Redis
fails), ``/health/live`` and ``/health/detailed``; JSON logs on stdout with ``trace_id``,
``level`` and ``service``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient

import glassbox
from glassbox.demo.faults import Faults
from glassbox.health import checks
from glassbox.logs import get_logger

COLLECTION = "kato_patterns"
DIMENSIONS = 8
PROCESSOR = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # processors are few and named: a bounded label

metrics = glassbox.REGISTRY
observations = metrics.counter(
    "observations", "Observations processed.", ["processor_id"], namespace="kato"
)
predictions = metrics.counter(
    "predictions", "Predictions generated.", ["processor_id"], namespace="kato"
)
# read from Qdrant: every worker sees the same number
patterns_stored = metrics.gauge(
    "patterns_stored", "Patterns stored in LTM.", ["processor_id"], namespace="kato", mode="max"
)
# kept per process: workers and instances add up
stm_size = metrics.gauge(
    "stm_size", "Events in short-term memory.", ["processor_id"], namespace="kato", mode="sum"
)
sessions_active = metrics.gauge(
    "sessions_active", "Open sessions.", ["processor_id"], namespace="kato", mode="sum"
)
log = get_logger("kato")


class SessionSpec(BaseModel):
    processor_id: str = Field(pattern=PROCESSOR)


class Observation(BaseModel):
    strings: list[str] = Field(min_length=1, max_length=50)


def embed(symbols: list[str]) -> list[float]:
    """A small bag-of-symbols vector (KATO's real vectors come from its observations)."""
    vector = [0.0] * DIMENSIONS
    for symbol in symbols:
        vector[hashlib.sha1(symbol.encode(), usedforsecurity=False).digest()[0] % DIMENSIONS] += 1.0
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def of_processor(processor: str, *more: dict[str, Any]) -> dict[str, Any]:
    """A Qdrant filter: the points of one processor (matching ``more`` too)."""
    return {"must": [{"key": "processor_id", "match": {"value": processor}}, *more]}


def create_app() -> FastAPI:
    kb: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ["KATO_MONGO_URL"], serverSelectionTimeoutMS=2000, connectTimeoutMS=2000
    )
    qdrant_url = os.environ["KATO_QDRANT_URL"].rstrip("/")
    # kato_client_requests_total{peer="qdrant"} and kato_client_request_duration_seconds
    vectors = glassbox.instrument_client(
        httpx.AsyncClient(base_url=qdrant_url, timeout=2.0), peer="qdrant", namespace="kato"
    )
    cache = aioredis.from_url(
        os.environ["KATO_REDIS_URL"],
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        decode_responses=True,
    )
    faults = Faults()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Qdrant call otherwise

    async def ensure_collection() -> None:
        body = {"vectors": {"size": DIMENSIONS, "distance": "Cosine"}}
        answer = await vectors.put(f"/collections/{COLLECTION}", json=body)
        if answer.status_code not in (200, 409):  # 409: another instance made it
            answer.raise_for_status()

    async def qdrant(method: str, path: str, body: dict[str, Any]) -> Any:
        url = f"/collections/{COLLECTION}{path}"
        answer = await vectors.request(method, url, json=body)
        if answer.status_code == 404:  # Qdrant started empty after this service
            await ensure_collection()
            answer = await vectors.request(method, url, json=body)
        return answer.raise_for_status().json()["result"]

    async def session(session_id: str) -> str:
        processor = await cache.hget(f"kato:session:{session_id}", "processor_id")
        if processor is None:
            raise HTTPException(404, "no such session")
        return str(processor)

    async def load_stm(session_id: str) -> list[list[str]]:
        return [json.loads(e) for e in await cache.lrange(f"kato:stm:{session_id}", 0, -1)]

    async def count_patterns(processor: str) -> int:
        filter_ = of_processor(processor)
        result = await qdrant("POST", "/points/count", {"filter": filter_, "exact": True})
        patterns_stored.set(result["count"], processor)
        return int(result["count"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await ensure_collection()
        except httpx.HTTPError:  # readiness reports it; the service still starts
            log.warning("pattern store unavailable at start", url=qdrant_url)
        yield
        await vectors.aclose()
        await cache.aclose()
        await kb.close()

    app = FastAPI(title="kato", version="3.0.0", lifespan=lifespan)

    @app.exception_handler(aioredis.RedisError)
    async def session_store_down(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "session store unavailable"}, status_code=503)

    @app.exception_handler(httpx.HTTPError)
    async def pattern_store_down(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "pattern store unavailable"}, status_code=503)

    api = APIRouter(dependencies=[Depends(faults.inject)])

    @api.post("/sessions", status_code=201)
    async def create_session(spec: SessionSpec) -> dict[str, str]:
        session_id = uuid.uuid4().hex
        await cache.hset(f"kato:session:{session_id}", "processor_id", spec.processor_id)
        sessions_active.inc(1, spec.processor_id)
        return {"session_id": session_id, "processor_id": spec.processor_id}

    @api.post("/sessions/{session_id}/observe")
    async def observe(session_id: str, observation: Observation) -> dict[str, Any]:
        processor = await session(session_id)
        event = sorted(set(observation.strings))  # KATO sorts the symbols of an event
        length = await cache.rpush(f"kato:stm:{session_id}", json.dumps(event))
        observations.inc(1, processor)
        stm_size.inc(1, processor)
        return {"status": "observed", "stm_length": length}

    @api.get("/sessions/{session_id}/stm")
    async def short_term_memory(session_id: str) -> dict[str, Any]:
        await session(session_id)
        return {"stm": await load_stm(session_id)}

    @api.get("/sessions/{session_id}/predictions")
    async def predict(session_id: str) -> dict[str, Any]:
        processor = await session(session_id)
        symbols = sorted({s for event in await load_stm(session_id) for s in event})
        if not symbols:
            return {"predictions": []}
        filter_ = of_processor(processor, {"key": "symbols", "match": {"any": symbols}})
        page = await qdrant("POST", "/points/scroll", {"filter": filter_, "limit": 10})
        out = []
        for point in page["points"]:
            known = point["payload"]["symbols"]
            matches = sorted(set(symbols) & set(known))
            out.append({"name": point["payload"]["name"], "matches": matches,
                        "potential": round(len(matches) / len(known), 3)})  # fmt: skip
        predictions.inc(len(out), processor)
        return {"predictions": sorted(out, key=lambda p: -p["potential"])}

    @api.post("/sessions/{session_id}/learn")
    async def learn(session_id: str) -> dict[str, Any]:
        processor = await session(session_id)
        stm = await load_stm(session_id)
        if len(stm) < 2:  # KATO learns sequences of two events or more
            return {"pattern_name": None}
        name = "PTRN|" + hashlib.sha1(json.dumps(stm).encode(), usedforsecurity=False).hexdigest()
        symbols = sorted({s for event in stm for s in event})
        point = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kato:{processor}:{name}")),
            "vector": embed(symbols),
            "payload": {"processor_id": processor, "name": name, "events": stm,
                        "symbols": symbols},
        }  # fmt: skip
        await qdrant("PUT", "/points?wait=true", {"points": [point]})
        await cache.delete(f"kato:stm:{session_id}")
        stm_size.dec(len(stm), processor)
        await count_patterns(processor)
        log.info("pattern learned", processor_id=processor, pattern=name, length=len(stm))
        return {"pattern_name": name}

    @api.delete("/sessions/{session_id}", status_code=204)
    async def end_session(session_id: str) -> Response:
        processor = await session(session_id)
        length = await cache.llen(f"kato:stm:{session_id}")
        await cache.delete(f"kato:session:{session_id}", f"kato:stm:{session_id}")
        sessions_active.dec(1, processor)
        stm_size.dec(length, processor)
        return Response(status_code=204)

    @api.get("/processors/{processor_id}/patterns")
    async def patterns(processor_id: Annotated[str, Path(pattern=PROCESSOR)]) -> dict[str, Any]:
        filter_ = of_processor(processor_id)
        page = await qdrant("POST", "/points/scroll", {"filter": filter_, "limit": 100})
        count = await count_patterns(processor_id)
        return {"count": count, "patterns": [p["payload"]["name"] for p in page["points"]]}

    app.include_router(api)
    exclude = faults.mount(app)  # /admin/faults with GLASSBOX_EXAMPLE_FAULTS=1

    health: list[checks.Check] = [
        checks.MongoDB(kb),
        checks.Qdrant(qdrant_url),
        checks.Redis(cache),
        checks.Disk(os.environ.get("KATO_DATA_DIR", "/"), warn=0.8, fail=0.9, critical=False),
        checks.Memory(warn=0.8, fail=0.9, critical=False),
        checks.Cpu(warn=0.8, critical=False),
    ]
    glassbox.instrument(app, service="kato", namespace="kato", version="3.0.0", health=health,
                        exclude=exclude)  # fmt: skip
    return app
