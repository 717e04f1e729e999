"""Kalki v2.4: retrieval-augmented answers over ingested documents, monitored with glassbox.

Run (after ``./scripts/setup.sh``)::

    KALKI_DATABASE_URL=postgresql://kalki@127.0.0.1:5432/kalki \\
    KALKI_LLM_URL=http://127.0.0.1:8081 \\
    .venv/bin/uvicorn --factory --app-dir examples/kalki kalki:create_app \\
        --host 127.0.0.1 --port 8000

``KALKI_DATABASE_URL``: PostgreSQL, the documents (critical). ``KALKI_LLM_URL``: an
OpenAI-style chat-completions API; its ``/health`` is a non-critical check, so an LLM
outage degrades Kalki (``warn``, 200) instead of unreadying it. Optional: ``KALKI_REDIS_URL``
(answer cache, non-critical), ``KALKI_QDRANT_URL`` (vector database, critical),
``KALKI_DATA_DIR`` (its disk space and write permission are checked; default ``/``).
``GLASSBOX_TRACE_SAMPLE_RATIO`` defaults to 0.1 here (10 % of traces, parent-based);
``GLASSBOX_EXAMPLE_FAULTS=1`` adds ``/admin/faults`` for the end-to-end test.

Metrics (``kalki`` namespace): ``kalki_requests_total{method,route,status}``,
``kalki_request_duration_seconds``, ``kalki_requests_in_progress``; business:
``kalki_queries_processed_total``, ``kalki_documents_ingested_total``,
``kalki_sessions_active``, ``kalki_session_duration_seconds``,
``kalki_errors_total{error_type}`` (``llm``, ``db``: Kalki's own failures, not the caller's
404 or 422), ``kalki_llm_errors_total``, ``kalki_db_errors_total``,
``kalki_llm_tokens_total{kind}``, ``kalki_db_query_duration_seconds{operation}``; the LLM
API's calls (``glassbox.instrument_client``): ``kalki_client_requests_total{peer,method,
status}``, ``kalki_client_request_duration_seconds{peer}``. JSON logs on stdout; a query
slower than 2 s logs ``slow_query``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

import glassbox
from glassbox.demo.faults import Faults
from glassbox.health import checks
from glassbox.logs import get_logger

LLM_PEER = "llm"  # the peer label of the LLM API's client metrics: an alias, never a URL
ERROR_TYPES = ("llm", "db")  # a fixed enumeration, never exception class names
SLOW_QUERY = 2.0  # seconds: the p99 target; slower queries are logged

metrics = glassbox.REGISTRY
queries = metrics.counter("queries_processed", "Queries answered.", namespace="kalki")
documents = metrics.counter("documents_ingested", "Documents ingested.", namespace="kalki")
sessions_active = metrics.gauge(
    "sessions_active", "Active user sessions.", namespace="kalki", mode="sum"
)
session_duration = metrics.histogram(
    "session_duration_seconds", "Length of closed sessions.", namespace="kalki",
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400),
)  # fmt: skip
errors = metrics.counter(
    "errors", "Kalki's own errors by type.", ["error_type"], namespace="kalki", label_cap=20
)
llm_errors = metrics.counter("llm_errors", "Failed LLM completions.", namespace="kalki")
db_errors = metrics.counter("db_errors", "Database errors.", namespace="kalki")
llm_tokens = metrics.counter(
    "llm_tokens", "LLM tokens used.", ["kind"], namespace="kalki", label_cap=5
)
db_query = metrics.histogram(
    "db_query_duration_seconds", "Database query time.", ["operation"], namespace="kalki"
)
# known label values start at 0, so a first error is a rise, not a series appearing
for _error_type in ERROR_TYPES:
    errors.labels(_error_type)
log = get_logger("kalki")


class Query(BaseModel):
    question: str


class Document(BaseModel):
    title: str
    text: str


class LlmError(RuntimeError):
    """The LLM API failed or answered nonsense."""


def create_app() -> FastAPI:
    database_url = os.environ["KALKI_DATABASE_URL"]
    llm_url = os.environ["KALKI_LLM_URL"].rstrip("/")
    redis_url = os.environ.get("KALKI_REDIS_URL")
    qdrant_url = os.environ.get("KALKI_QDRANT_URL")
    data_dir = os.environ.get("KALKI_DATA_DIR", "/")
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=5, open=False, timeout=2)
    # completions can take long: the timeout is the largest bucket of the client histogram
    llm = glassbox.instrument_client(
        httpx.AsyncClient(base_url=llm_url, timeout=httpx.Timeout(60.0, connect=5.0)),
        peer=LLM_PEER,
        namespace="kalki",
    )
    faults = Faults()
    sessions: dict[str, float] = {}  # id -> opened at (monotonic seconds)

    async def complete(prompt: str) -> str:
        response = await llm.post(
            "/v1/chat/completions",
            json={"model": "kalki-rag", "messages": [{"role": "user", "content": prompt}]},
        )
        if response.status_code != 200:
            raise LlmError(f"LLM API answered {response.status_code}")
        body = response.json()
        usage = body.get("usage", {})
        llm_tokens.inc(usage.get("prompt_tokens", 0), "prompt")
        llm_tokens.inc(usage.get("completion_tokens", 0), "completion")
        return str(body["choices"][0]["message"]["content"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=False)
        try:
            async with db_query.time("migrate"), pool.connection(timeout=10) as conn:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS documents (id text PRIMARY KEY,"
                    " title text NOT NULL, body text NOT NULL)"
                )
        except Exception as exc:  # readiness reports it; the service still starts
            db_errors.inc()
            log.error("db_failed", operation="migrate", error=type(exc).__name__)
        yield
        await llm.aclose()
        await pool.close()

    app = FastAPI(title="kalki", lifespan=lifespan)
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(faults.inject)])

    def fail(status: int, error_type: str, detail: str) -> HTTPException:
        errors.inc(1, error_type)
        return HTTPException(status_code=status, detail=detail)

    def db_failed(operation: str, exc: Exception) -> HTTPException:
        db_errors.inc()
        log.error("db_failed", operation=operation, error=type(exc).__name__)
        return fail(503, "db", "document store unavailable")

    async def context_for(question: str) -> list[str]:
        words = [w for w in question.lower().split() if len(w) > 4][:5] or [question.lower()]
        try:
            async with db_query.time("search"), pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT title FROM documents WHERE lower(body) LIKE ANY(%s) LIMIT 3",
                    ([f"%{w}%" for w in words],),
                )
                return [row[0] for row in await cur.fetchall()]
        except Exception as exc:
            raise db_failed("search", exc) from None

    @api.post("/query")
    async def query(request: Query) -> dict[str, Any]:
        start = time.perf_counter()
        context = await context_for(request.question)
        try:
            answer = await complete(f"context: {context}\nquestion: {request.question}")
        except (LlmError, httpx.HTTPError, LookupError, ValueError) as exc:
            llm_errors.inc()
            log.error("llm_failed", peer=LLM_PEER, error=str(exc)[:200])
            raise fail(502, "llm", "the language model is unavailable") from None
        queries.inc()
        seconds = time.perf_counter() - start
        if seconds > SLOW_QUERY:
            log.warning("slow_query", duration_ms=round(seconds * 1000), sources=len(context))
        return {"answer": answer, "sources": context}

    @api.post("/documents", status_code=201)
    async def ingest(document: Document) -> dict[str, str]:
        if not document.text.strip():
            raise HTTPException(status_code=422, detail="empty document")
        document_id = uuid.uuid4().hex[:12]
        try:
            async with db_query.time("insert_document"), pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO documents (id, title, body) VALUES (%s, %s, %s)",
                    (document_id, document.title, document.text),
                )
        except Exception as exc:
            raise db_failed("insert_document", exc) from None
        documents.inc()
        return {"id": document_id}

    @api.get("/documents/{document_id}")
    async def get_document(document_id: str) -> dict[str, str]:
        try:
            async with db_query.time("get_document"), pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT id, title FROM documents WHERE id = %s", (document_id,)
                )
                row = await cur.fetchone()
        except Exception as exc:
            raise db_failed("get_document", exc) from None
        if row is None:
            raise HTTPException(status_code=404, detail="no such document")
        return {"id": row[0], "title": row[1]}

    @api.post("/sessions", status_code=201)
    async def open_session() -> dict[str, str]:
        session_id = uuid.uuid4().hex  # never a label: it only appears inside the route
        sessions[session_id] = time.monotonic()
        sessions_active.set(len(sessions))
        return {"id": session_id}

    @api.get("/sessions/{session_id}/history")
    async def history(session_id: str) -> dict[str, Any]:
        if session_id not in sessions:
            raise HTTPException(status_code=404, detail="no such session")
        return {"id": session_id, "turns": []}

    @api.delete("/sessions/{session_id}", status_code=204)
    async def close_session(session_id: str) -> None:
        opened = sessions.pop(session_id, None)
        if opened is not None:
            session_duration.observe(time.monotonic() - opened)
        sessions_active.set(len(sessions))

    app.include_router(api)
    exclude = faults.mount(app)  # /admin/faults with GLASSBOX_EXAMPLE_FAULTS=1

    health: list[checks.Check] = [
        checks.Postgres(pool),
        checks.Http(f"{llm_url}/health", name="llm-api", critical=False),
        checks.Disk(data_dir, warn=0.85, fail=0.95, critical=False),
        checks.FunctionCheck(
            lambda: os.access(data_dir, os.W_OK), name="data-dir-writable", critical=False
        ),
    ]
    if qdrant_url:
        health.append(checks.Qdrant(qdrant_url, name="vector-db"))
    if redis_url:
        health.append(checks.Redis(url=redis_url, critical=False))
    glassbox.instrument(
        app,
        service="kalki",
        namespace="kalki",
        version="2.4.0",
        trace_sample_ratio=float(os.environ.get("GLASSBOX_TRACE_SAMPLE_RATIO", "0.1")),
        health=health,
        exclude=exclude,
    )
    return app
