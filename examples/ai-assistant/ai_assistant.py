"""AI Assistant System: chat with an LLM and tools, monitored with glassbox.

Run (after ``./scripts/setup.sh``)::

    AI_ASSISTANT_DATABASE_URL=postgresql://assistant@127.0.0.1:5432/assistant \\
    AI_ASSISTANT_REDIS_URL=redis://127.0.0.1:6379/0 \\
    AI_ASSISTANT_LLM_URL=http://127.0.0.1:8081 \\
    .venv/bin/uvicorn --factory --app-dir examples/ai-assistant ai_assistant:create_app \\
        --host 127.0.0.1 --port 8000

``AI_ASSISTANT_DATABASE_URL`` PostgreSQL (conversations) and ``AI_ASSISTANT_REDIS_URL`` Redis
(reply and tool-result cache) are critical: readiness fails without them; a Redis outage
only turns cache lookups into ``result="error"``. ``AI_ASSISTANT_LLM_URL`` is an
OpenAI-style API (``POST /v1/chat/completions``, ``GET /health``; model
``AI_ASSISTANT_LLM_MODEL``), checked as ``llm-api``, non-critical (degraded only); unset,
replies are echoed and ``summarize`` fails. ``GLASSBOX_HEALTH_TOKEN`` protects
``/health/detailed``; ``GLASSBOX_EXAMPLE_FAULTS=1`` adds ``/admin/faults``.

Metrics: ``http_requests_total{method,route,status}``, ``http_request_duration_seconds``,
``http_requests_in_progress`` (the guide's ``active_connections``), ``http_exceptions_total``,
``http_client_requests_total{peer="llm-api",method,status}`` and its duration,
``tool_executions_total{tool_name,status}``, ``tool_execution_duration_seconds{tool_name}``
and ``cache_requests_total{cache_type,result}`` (the hit ratio is computed in PromQL).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import string
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

import glassbox
from glassbox.demo.faults import Faults
from glassbox.health import checks
from glassbox.logs import get_logger

TOOL_LABEL_CAP = 50  # tools can be registered at runtime: more than this fold into __overflow__
TOOL_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

metrics = glassbox.REGISTRY
# Declared for their help text and the tool_name cap; MetricsToolMixin fills them.
metrics.counter(
    "tool_executions", "Tool executions by outcome.", ["tool_name", "status"],
    label_cap=TOOL_LABEL_CAP,
)  # fmt: skip
metrics.histogram(
    "tool_execution_duration_seconds", "Tool execution duration in seconds.", ["tool_name"],
    label_cap=TOOL_LABEL_CAP, buckets=TOOL_BUCKETS,
)  # fmt: skip
cache_requests = metrics.counter(
    "cache_requests", "Cache lookups by result (hit, miss, error).", ["cache_type", "result"]
)
log = get_logger("ai_assistant")


@dataclass(frozen=True, slots=True)
class ToolResult:
    output: str


class ToolError(ValueError):
    """The tool refused its parameters (answered 422)."""


class MetricsToolMixin:
    """Counts and times every execution under the tool's own (runtime) name."""

    name: str

    async def execute(self, parameters: dict[str, Any]) -> ToolResult:
        raise NotImplementedError

    async def execute_with_metrics(self, parameters: dict[str, Any]) -> ToolResult:
        start, status = time.perf_counter(), "error"
        try:  # any exception (or a cancellation) counts as an error and propagates
            async with metrics.measure(
                "tool_executions", duration_name="tool_execution_duration_seconds",
                buckets=TOOL_BUCKETS, tool_name=self.name,
            ):  # fmt: skip
                result = await self.execute(parameters)
            status = "success"
            return result
        finally:
            log.info("tool executed", tool_name=self.name, status=status,
                     duration_ms=round((time.perf_counter() - start) * 1000, 2))  # fmt: skip


class CurrentTime(MetricsToolMixin):
    name = "current_time"

    async def execute(self, parameters: dict[str, Any]) -> ToolResult:
        zone = str(parameters.get("timezone", "UTC"))
        try:
            return ToolResult(datetime.now(ZoneInfo(zone)).isoformat(timespec="seconds"))
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown time zone {zone!r}") from None


class Template(MetricsToolMixin):
    """A prompt tool registered at runtime: ``$name`` placeholders filled from parameters."""

    def __init__(self, name: str, template: str) -> None:
        self.name, self.template = name, string.Template(template)

    async def execute(self, parameters: dict[str, Any]) -> ToolResult:
        try:
            return ToolResult(self.template.substitute({k: str(v) for k, v in parameters.items()}))
        except KeyError as exc:
            raise ToolError(f"missing parameter {exc.args[0]!r}") from None


class ChatRequest(BaseModel):
    message: str
    conversation_id: str | None = None


class ToolCall(BaseModel):
    parameters: dict[str, Any] = {}


class ToolSpec(BaseModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    template: str = Field(max_length=4000)


def create_app() -> FastAPI:
    database_url = os.environ["AI_ASSISTANT_DATABASE_URL"]
    redis_url = os.environ["AI_ASSISTANT_REDIS_URL"]
    llm_url = os.environ.get("AI_ASSISTANT_LLM_URL", "").rstrip("/")
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=5, open=False, timeout=2)
    cache = aioredis.from_url(
        redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True
    )
    llm_model = os.environ.get("AI_ASSISTANT_LLM_MODEL", "assistant")
    llm = glassbox.instrument_client(
        httpx.AsyncClient(base_url=llm_url or "http://llm.invalid", timeout=10), peer="llm-api"
    )
    faults = Faults()

    class Search(MetricsToolMixin):
        name = "search"

        async def execute(self, parameters: dict[str, Any]) -> ToolResult:
            query = str(parameters.get("query", "")).strip().lower()
            if not query:
                raise ToolError("query is required")
            key = "search:" + hashlib.sha256(query.encode()).hexdigest()
            hit = await cached("tool_result", key)
            if hit is not None:
                return ToolResult(hit)
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT count(*) FROM messages WHERE position(%s in lower(content)) > 0",
                    (query,),
                )
                row = await cur.fetchone()
            output = f"{row[0] if row else 0} messages mention {query!r}"
            await store(key, output)
            return ToolResult(output)

    class Summarize(MetricsToolMixin):
        """The LLM sums up a conversation's last messages (not cached: conversations grow)."""

        name = "summarize"

        async def execute(self, parameters: dict[str, Any]) -> ToolResult:
            messages = await load(str(parameters.get("conversation_id", "")))
            if not messages:
                raise ToolError("no such conversation")
            ask_for = {"role": "user", "content": "Summarize this conversation in one sentence."}
            return ToolResult(await ask([*messages[-50:], ask_for]))

    tools: dict[str, MetricsToolMixin] = {t.name: t for t in (CurrentTime(), Search(), Summarize())}

    async def cached(cache_type: str, key: str) -> str | None:
        try:
            value = await cache.get(key)
        except aioredis.RedisError:  # a cache outage costs speed, not answers
            cache_requests.inc(1, cache_type, "error")
            return None
        cache_requests.inc(1, cache_type, "miss" if value is None else "hit")
        return None if value is None else str(value)

    async def store(key: str, value: str) -> None:
        with contextlib.suppress(aioredis.RedisError):
            await cache.set(key, value, ex=3600)

    async def ask(messages: list[dict[str, str]]) -> str:
        """One chat completion; 502 when the LLM API fails or is not configured."""
        try:
            response = await llm.post(
                "/v1/chat/completions", json={"model": llm_model, "messages": messages}
            )
            response.raise_for_status()
            return str(response.json()["choices"][0]["message"]["content"])
        except (httpx.HTTPError, LookupError, TypeError, ValueError):
            raise HTTPException(status_code=502, detail="LLM API unavailable") from None

    async def complete(prompt: str) -> str:
        if not llm_url:
            return f"echo: {prompt}"
        key = "llm:" + hashlib.sha256(prompt.encode()).hexdigest()
        reply = await cached("llm_response", key)
        if reply is None:
            reply = await ask([{"role": "user", "content": prompt}])
            await store(key, reply)
        return reply

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=False)
        try:
            async with pool.connection(timeout=10) as conn:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS messages (id bigserial PRIMARY KEY,"
                    " conversation_id text NOT NULL, role text NOT NULL, content text NOT NULL,"
                    " created timestamptz NOT NULL DEFAULT now())"
                )
        except Exception:  # readiness reports it; the service still starts
            log.warning("conversation store unavailable at startup")
        yield
        await pool.close()
        await cache.aclose()
        await llm.aclose()

    app = FastAPI(title="ai-assistant", lifespan=lifespan)
    api = APIRouter(prefix="/api", dependencies=[Depends(faults.inject)])

    async def converse(conversation_id: str, message: str) -> dict[str, str]:
        reply = await complete(message)
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO messages (conversation_id, role, content)"
                " VALUES (%s, 'user', %s), (%s, 'assistant', %s)",
                (conversation_id, message, conversation_id, reply),
            )
        return {"conversation_id": conversation_id, "reply": reply}

    async def load(conversation_id: str) -> list[dict[str, str]]:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT role, content FROM messages WHERE conversation_id = %s ORDER BY id",
                (conversation_id,),
            )
            rows = await cur.fetchall()
        return [{"role": r[0], "content": r[1]} for r in rows]

    async def history(conversation_id: str) -> list[dict[str, str]]:
        messages = await load(conversation_id)
        if not messages:
            raise HTTPException(status_code=404, detail="no such conversation")
        return messages

    @api.post("/chat")
    async def chat(request: ChatRequest) -> dict[str, str]:
        return await converse(request.conversation_id or uuid.uuid4().hex, request.message)

    @api.post("/conversations/{conversation_id}/messages")
    async def add_message(conversation_id: str, request: ChatRequest) -> dict[str, str]:
        await history(conversation_id)
        return await converse(conversation_id, request.message)

    @api.get("/conversations/{conversation_id}")
    async def get_conversation(conversation_id: str) -> dict[str, Any]:
        return {"conversation_id": conversation_id, "messages": await history(conversation_id)}

    @api.get("/tools")
    async def list_tools() -> list[str]:
        return sorted(tools)

    @api.post("/tools", status_code=201)
    async def register_tool(spec: ToolSpec) -> dict[str, str]:
        if spec.name in tools:
            raise HTTPException(status_code=409, detail="a tool of that name exists")
        tools[spec.name] = Template(spec.name, spec.template)
        return {"name": spec.name}

    @api.post("/tools/{tool_name}/execute")
    async def execute_tool(tool_name: str, call: ToolCall) -> dict[str, str]:
        tool = tools.get(tool_name)
        if tool is None:  # unknown names never reach a metric label
            raise HTTPException(status_code=404, detail="no such tool")
        try:
            result = await tool.execute_with_metrics(call.parameters)
        except ToolError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return {"tool": tool_name, "output": result.output}

    app.include_router(api)
    exclude = faults.mount(app)  # /admin/faults with GLASSBOX_EXAMPLE_FAULTS=1

    health: list[checks.Check] = [
        checks.Postgres(pool),
        checks.Redis(cache),
        checks.Disk("/", warn=0.85, fail=0.9, critical=False),
        checks.Memory(critical=False),
    ]
    if llm_url:
        health.append(checks.Http(f"{llm_url}/health", name="llm-api", critical=False))
    glassbox.instrument(app, service="ai-assistant", version="1.0.0", health=health,
                        exclude=exclude)  # fmt: skip
    return app
