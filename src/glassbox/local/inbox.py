"""The local inbox: one receiver standing in for Slack, PagerDuty, Opsgenie, email, webhooks.

Under ``glassbox up`` every Alertmanager receiver delivers here instead of the real
service. Each endpoint accepts a delivery exactly as the service it replaces would
(same path shape, same answers to good and bad payloads), and every accepted delivery
is recorded in SQLite so it survives a restart.

URL scheme (``http_url`` is :attr:`Inbox.http_url`, e.g. ``http://127.0.0.1:9095``;
``<receiver>`` is the Alertmanager receiver name, URL-quoted)::

    POST <http_url>/slack/<receiver>                 Slack incoming webhook
                                                     (slack_configs.api_url)
    POST <http_url>/pagerduty/<receiver>/v2/enqueue  PagerDuty Events API v2
                                                     (pagerduty_configs.url)
    POST <http_url>/opsgenie/<receiver>/v2/alerts    Opsgenie Alert API: create, and
         .../v2/alerts/<identifier>/close            close (opsgenie_configs.api_url
                                                     is <http_url>/opsgenie/<receiver>/)
    POST <http_url>/webhook/<receiver>               Alertmanager webhook JSON
                                                     (webhook_configs.url)
    SMTP <smtp_host>:<smtp_port>                     email (email_configs.smarthost,
                                                     require_tls: false, no auth)
    GET  <http_url>/api/deliveries?receiver=&kind=&since=&limit=
                                                     recorded deliveries, newest first
    GET  <http_url>/api/health                       200 {"status": "ok"}

:func:`inbox_receiver_urls` returns those addresses for one receiver.

Answers, as the real services give them:

* Slack: 200 ``ok``; 400 ``invalid_payload`` for a body that is not a JSON object
  (JSON, or a form field ``payload=<json>``), 400 ``no_text`` when there is no
  ``text``, ``attachments`` or ``blocks``, 400 ``too_many_attachments`` above 100,
  400 ``missing_text_or_fallback_or_attachments`` when no attachment has text.
* PagerDuty: 202 ``{"status": "success", "message": "Event processed",
  "dedup_key": ...}``; 400 ``{"status": "invalid event", "message": "Event object is
  invalid", "errors": [...]}`` when the routing key is not 32 characters,
  ``event_action`` is not trigger|acknowledge|resolve, ``dedup_key`` is missing on
  acknowledge/resolve or longer than 255, or a trigger lacks ``payload.summary``
  (at most 1024 characters), ``payload.source`` or a ``payload.severity`` of
  critical|error|warning|info. Any 32-character routing key is accepted.
* Opsgenie: 202 ``{"result": "Request will be processed", "took": ..., "requestId":
  ...}`` for a create or a close; 401 ``{"message": "Could not authenticate"}`` without
  an ``Authorization: GenieKey <key>`` header (any key is accepted); 422 ``{"message":
  "Request body is not processable. Please check the errors.", "errors": {...}}`` when
  a create has no ``message``, a message over 130 characters, an alias over 512, a
  description over 15000 or a priority other than P1-P5, or a close names an
  ``identifierType`` other than id, alias or tiny.
* Webhook: 200 ``{"status": "ok"}`` for a JSON object, 400 otherwise.
* Every body is capped at 1 MiB (413) and JSON nesting at 64 levels (400, as a body
  that is not JSON); an unexpected error answers 500 and is logged,
  so Alertmanager retries and the inbox keeps serving.

The PagerDuty success body, its routing-key error, Slack's ``invalid_payload`` and
Opsgenie's 202 body are the services' documented answers; the other error strings
follow their wording, and their status codes (what Alertmanager acts on: 2xx sent, 4xx
dropped, 5xx retried) match.

Email: the receiver name is the ``X-Glassbox-Receiver`` header, which glassbox's
inbox rendering of ``email_configs`` sets (``headers``); without it, the local part of
the first envelope recipient (``RCPT TO``) is used, so ``to: <receiver>@inbox`` also
works. The recipient address alone cannot name the receiver, since several receivers
may mail the same address.

Each delivery is summarised from its payload: status (firing|resolved, from the
webhook's ``status``, PagerDuty's ``event_action``, an Opsgenie create or close, or the
``[FIRING:n]`` / ``[RESOLVED]`` prefix of a Slack title or email subject, Slack's
colour as a fallback), alert names, severity and title. The raw payload is kept as
received; an Opsgenie close, whose body names no alert, is kept as its ``action``,
``identifier``, ``identifierType`` and ``body``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import re
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import parse_qs, quote

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

__all__ = [
    "MAX_BODY_BYTES",
    "RECEIVER_HEADER",
    "Delivery",
    "Inbox",
    "Kind",
    "Status",
    "inbox_receiver_urls",
]

log = logging.getLogger("glassbox.inbox")

Kind = Literal["slack", "pagerduty", "webhook", "email", "opsgenie"]
Status = Literal["firing", "resolved", "acknowledged", "unknown"]
KINDS: tuple[Kind, ...] = get_args(Kind)

#: Largest request body or email accepted; larger ones get 413 (SMTP: 552).
MAX_BODY_BYTES = 1024 * 1024
#: Email header naming the Alertmanager receiver (set by glassbox's inbox rendering).
RECEIVER_HEADER = "X-Glassbox-Receiver"
#: glassbox's inbox receivers name the alerts of a notification here (Slack:
#: ``callback_id``): ``glassbox-alerts severity=<severity> <alertname> ...``.
ALERTS_HEADER = "X-Glassbox-Alerts"
ALERTS_MARKER = "glassbox-alerts"
#: Rows kept in the store; older deliveries are deleted.
DEFAULT_KEEP = 10_000

_MAX_RECEIVER = 200
_PD_ACTIONS = ("trigger", "acknowledge", "resolve")
_PD_SEVERITIES = ("critical", "warning", "error", "info")
_PD_ROUTING_KEY_LENGTH = 32
_PD_DEDUP_KEY_MAX = 255
_PD_SUMMARY_MAX = 1024
_SLACK_MAX_ATTACHMENTS = 100
_OG_LIMITS = {"message": 130, "alias": 512, "description": 15000}
_OG_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
_OG_IDENTIFIER_TYPES = ("id", "alias", "tiny")
#: Deepest JSON nesting accepted: the store keeps payloads as JSON, whose encoder stops
#: at 255 levels (an alert payload is under 10).
_MAX_DEPTH = 64


def inbox_receiver_urls(
    http_url: str, receiver: str, kind: str, smtp_address: tuple[str, int] | None = None
) -> dict[str, str]:
    """The fields of an Alertmanager receiver config that deliver to the inbox.

    slack: ``{"api_url": ...}``; pagerduty: ``{"url": ...}`` (plus any 32-character
    ``routing_key``); opsgenie: ``{"api_url": ...}`` (plus any ``api_key``);
    webhook: ``{"url": ...}``; email: ``{"smarthost": "host:port"}``
    (needs ``smtp_address``; also set ``require_tls: false`` and the
    ``X-Glassbox-Receiver`` header to the receiver name).
    """
    base = http_url.rstrip("/")
    name = quote(receiver, safe="")
    if kind == "slack":
        return {"api_url": f"{base}/slack/{name}"}
    if kind == "pagerduty":
        return {"url": f"{base}/pagerduty/{name}/v2/enqueue"}
    if kind == "webhook":
        return {"url": f"{base}/webhook/{name}"}
    if kind == "opsgenie":
        return {"api_url": f"{base}/opsgenie/{name}/"}
    if kind == "email":
        if smtp_address is None:
            raise ValueError("email receivers deliver over SMTP: pass smtp_address")
        host, port = smtp_address
        return {"smarthost": f"{_host_for_url(host)}:{port}"}
    raise ValueError(f"unknown receiver kind {kind!r}: use one of {', '.join(KINDS)}")


# -- deliveries -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification the inbox accepted."""

    id: int
    time: datetime
    receiver: str
    kind: Kind
    status: Status
    alertnames: tuple[str, ...]
    severity: str | None
    title: str
    #: The body as received (JSON); for email the parsed message fields.
    payload: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "receiver": self.receiver,
            "kind": self.kind,
            "status": self.status,
            "alertnames": list(self.alertnames),
            "severity": self.severity,
            "title": self.title,
            "payload": self.payload,
        }


@dataclass(frozen=True, slots=True)
class _Summary:
    status: Status
    alertnames: tuple[str, ...]
    severity: str | None
    title: str


_TITLE_RE = re.compile(
    r"^\s*\[(?P<status>FIRING|RESOLVED)(?::\d+)?\]\s*(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)?",
    re.IGNORECASE,
)
_LABEL_ALERTNAME_RE = re.compile(r"alertname\s*=\s*\"?([A-Za-z_:][A-Za-z0-9_:]*)")
_TEXT_SEVERITY_RE = re.compile(
    r"^\s*(?:FIRING|RESOLVED)\s*\[([A-Za-z]+)\]|severity\s*=\s*\"?([A-Za-z]+)",
    re.IGNORECASE | re.MULTILINE,
)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _names(*sources: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for source in sources:
        for name in source:
            if name:
                seen.setdefault(name, None)
    return tuple(seen)


def _from_title(title: str) -> tuple[Status, list[str]]:
    match = _TITLE_RE.match(title)
    if match is None:
        return "unknown", []
    status: Status = "firing" if match["status"].upper() == "FIRING" else "resolved"
    return status, [match["name"]] if match["name"] else []


def _from_text(text: str) -> tuple[list[str], str | None]:
    names = _LABEL_ALERTNAME_RE.findall(text)
    match = _TEXT_SEVERITY_RE.search(text)
    severity = (match[1] or match[2]).lower() if match else None
    return names, severity


def _summarize_webhook(body: dict[str, Any]) -> _Summary:
    raw_status = _str(body.get("status"))
    status: Status = raw_status if raw_status in ("firing", "resolved") else "unknown"  # type: ignore[assignment]
    alerts = [_dict(a) for a in body.get("alerts") or [] if isinstance(a, dict)]
    common = _dict(body.get("commonLabels"))
    names = _names(
        (_str(_dict(a.get("labels")).get("alertname")) for a in alerts),
        [_str(common.get("alertname")), _str(_dict(body.get("groupLabels")).get("alertname"))],
    )
    severity = _str(common.get("severity")) or next(
        (s for a in alerts if (s := _str(_dict(a.get("labels")).get("severity")))), None
    )
    title = _str(_dict(body.get("commonAnnotations")).get("summary")) or next(
        (s for a in alerts if (s := _str(_dict(a.get("annotations")).get("summary")))), ""
    )
    if not title:
        title = f"[{status.upper()}] {' '.join(names)}".strip()
    return _Summary(status, names, severity or None, title)


def _from_marker(value: str, status: Status) -> _Summary | None:
    """The summary glassbox's marker gives: ``glassbox-alerts status=s severity=s A B``."""
    words = value.split()
    if (
        len(words) < 3
        or words[0] != ALERTS_MARKER
        or not words[1].startswith("status=")
        or not words[2].startswith("severity=")
    ):
        return None
    marked = words[1].removeprefix("status=")
    if marked in ("firing", "resolved"):
        status = marked  # type: ignore[assignment]
    names = tuple(dict.fromkeys(words[3:]))
    return _Summary(status, names, words[2].removeprefix("severity=") or None, "")


def _summarize_slack(body: dict[str, Any]) -> _Summary:
    attachments = [_dict(a) for a in body.get("attachments") or [] if isinstance(a, dict)]
    first = attachments[0] if attachments else {}
    title = _str(first.get("title")) or _str(body.get("text")) or _str(first.get("fallback"))
    text = "\n".join([_str(body.get("text"))] + [_str(a.get("text")) for a in attachments])
    status, title_names = _from_title(title)
    if status == "unknown":
        color = _str(first.get("color"))
        status = {"danger": "firing", "good": "resolved"}.get(color, "unknown")  # type: ignore[assignment]
    marked = _from_marker(_str(first.get("callback_id")), status)
    if marked is not None:  # glassbox's own receivers say which alerts, whatever the title
        return _Summary(marked.status, marked.alertnames, marked.severity, title.strip())
    text_names, severity = _from_text(text)
    return _Summary(status, _names(title_names, text_names), severity, title.strip())


def _summarize_pagerduty(body: dict[str, Any]) -> _Summary:
    payload = _dict(body.get("payload"))
    action = _str(body.get("event_action"))
    status: Status = {
        "trigger": "firing",
        "resolve": "resolved",
        "acknowledge": "acknowledged",
    }.get(action, "unknown")  # type: ignore[assignment]
    title = _str(payload.get("summary")) or _str(body.get("description"))
    _, title_names = _from_title(title)
    details = {**_dict(body.get("details")), **_dict(payload.get("custom_details"))}
    text_names, _ = _from_text("\n".join(str(v) for v in details.values()))
    severity = _str(payload.get("severity")) or None
    return _Summary(status, _names(title_names, text_names), severity, title.strip())


def _summarize_opsgenie(body: dict[str, Any]) -> _Summary:
    """A create (the alert as sent) or a close (``action``, ``identifier``, the body)."""
    if body.get("action") == "close":
        return _Summary("resolved", (), None, f"close {_str(body.get('identifier'))}".strip())
    title = _str(body.get("message"))
    details = _dict(body.get("details"))  # Alertmanager puts the common labels here
    _, title_names = _from_title(title)
    names = _names([_str(details.get("alertname"))], title_names)
    return _Summary("firing", names, _str(details.get("severity")) or None, title.strip())


def _summarize_email(fields: dict[str, Any]) -> _Summary:
    subject = _str(fields.get("subject"))
    status, title_names = _from_title(subject)
    for key, value in fields.get("headers") or []:
        if str(key).lower() == ALERTS_HEADER.lower():
            marked = _from_marker(str(value), status)
            if marked is not None:
                return _Summary(marked.status, marked.alertnames, marked.severity, subject.strip())
    text_names, severity = _from_text(_str(fields.get("text")))
    return _Summary(status, _names(title_names, text_names), severity, subject.strip())


_SUMMARIZERS: dict[Kind, Callable[[dict[str, Any]], _Summary]] = {
    "webhook": _summarize_webhook,
    "slack": _summarize_slack,
    "pagerduty": _summarize_pagerduty,
    "email": _summarize_email,
    "opsgenie": _summarize_opsgenie,
}


def _summarize(kind: Kind, body: dict[str, Any]) -> _Summary:
    try:
        return _SUMMARIZERS[kind](body)
    except Exception:  # a summary is best effort; the delivery is still recorded
        log.exception("inbox: cannot summarise a %s delivery", kind)
        return _Summary("unknown", (), None, "")


# -- storage ----------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    receiver TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    alertnames TEXT NOT NULL,
    severity TEXT,
    title TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_receiver ON deliveries (receiver, id);
CREATE INDEX IF NOT EXISTS deliveries_kind ON deliveries (kind, id);
"""


class _Store:
    """Deliveries in SQLite (WAL); one connection serialised by a lock."""

    def __init__(self, path: Path, keep: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._keep = keep
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                path, timeout=10, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise _no_space(path) from exc
            raise OSError(f"the inbox store {path} cannot be opened: {exc}") from exc

    def add(self, receiver: str, kind: Kind, body: dict[str, Any]) -> Delivery:
        summary = _summarize(kind, body)
        now = time.time()
        row = (
            now,
            receiver,
            kind,
            summary.status,
            orjson.dumps(list(summary.alertnames)).decode(),
            summary.severity,
            summary.title,
            orjson.dumps(body).decode(),
        )
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    cursor = self._conn.execute(
                        "INSERT INTO deliveries"
                        " (time, receiver, kind, status, alertnames, severity, title, payload)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    self._conn.execute(
                        "DELETE FROM deliveries WHERE id <="
                        " (SELECT id FROM deliveries ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (self._keep,),
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    # a failed COMMIT (disk full) may have rolled back already
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_FULL:
                    raise
                raise _no_space(self._path) from exc
        return Delivery(
            id=int(cursor.lastrowid or 0),
            time=datetime.fromtimestamp(now, UTC),
            receiver=receiver,
            kind=kind,
            status=summary.status,
            alertnames=summary.alertnames,
            severity=summary.severity,
            title=summary.title,
            payload=body,
        )

    def query(
        self,
        receiver: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("receiver", receiver), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        sql = "SELECT id, time, receiver, kind, status, alertnames, severity, title, payload"
        sql += " FROM deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(-1 if limit is None else limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [_delivery(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _no_space(path: Path) -> OSError:
    return OSError(
        errno.ENOSPC,
        f"no space left on device for the inbox store {path}; deliveries are refused"
        " with a 5xx, so Alertmanager retries them once space is freed",
    )


def _delivery(row: tuple[Any, ...]) -> Delivery:
    id_, when, receiver, kind, status, alertnames, severity, title, payload = row
    return Delivery(
        id=id_,
        time=datetime.fromtimestamp(when, UTC),
        receiver=receiver,
        kind=kind,
        status=status,
        alertnames=tuple(orjson.loads(alertnames)),
        severity=severity,
        title=title,
        payload=orjson.loads(payload),
    )


# -- HTTP -------------------------------------------------------------------------------

_TOO_LARGE = object()
Handler = Callable[[Request], Awaitable[Response]]


class _JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def _read_body(request: Request) -> bytes | object:
    """The body, or ``_TOO_LARGE`` past :data:`MAX_BODY_BYTES` (without reading it all)."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > MAX_BODY_BYTES:
        return _TOO_LARGE
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_BODY_BYTES:
            return _TOO_LARGE
        chunks.append(chunk)
    return b"".join(chunks)


def _receiver(request: Request) -> str | None:
    name = str(request.path_params.get("receiver", ""))
    return name if 0 < len(name) <= _MAX_RECEIVER and name.isprintable() else None


def _nests_within(value: Any, depth: int) -> bool:
    """True if ``value`` has at most ``depth`` levels of objects and arrays."""
    level = [value]
    for _ in range(depth + 1):
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
        if not level:
            return True
    return False


def _parse_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object in ``body``; None if it is not one, or nests past ``_MAX_DEPTH``."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not _nests_within(value, _MAX_DEPTH):
        return None
    return cast(dict[str, Any], value)


def _guarded(error: Callable[[], Response]) -> Callable[[Handler], Handler]:
    """No exception escapes a handler: log it and answer like the service's 5xx."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientDisconnect:
                return Response(status_code=400)
            except OSError as exc:  # the store cannot write (disk full): say so in one line
                log.error("inbox: %s %s not recorded: %s", request.method, request.url.path, exc)
                return error()
            except Exception:
                log.exception("inbox: %s %s failed", request.method, request.url.path)
                return error()

        return run

    return wrap


def _slack_error() -> Response:
    return PlainTextResponse("rollup_error", status_code=500)


def _pd_error() -> Response:
    return _JSON({"status": "error", "message": "Internal error"}, status_code=500)


def _og_answer(status: int, **fields: Any) -> Response:
    """Opsgenie's answer shape: the fields, ``took`` and a ``requestId``."""
    return _JSON({**fields, "took": 0.001, "requestId": str(uuid.uuid4())}, status_code=status)


def _og_error() -> Response:
    return _og_answer(500, message="Internal Server Error")


def _json_error() -> Response:
    return _JSON({"error": "internal error"}, status_code=500)


def _too_large(kind: Kind) -> Response:
    if kind == "slack":
        return PlainTextResponse("request_too_large", status_code=413)
    if kind == "pagerduty":
        return _JSON(
            {"status": "invalid event", "message": "Request too large", "errors": []},
            status_code=413,
        )
    if kind == "opsgenie":
        return _og_answer(413, message="Request too large")
    return _JSON({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)


def _slack_payload(request: Request, body: bytes) -> dict[str, Any] | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        except UnicodeDecodeError:
            return None
        values = form.get("payload")
        return _parse_object(values[0].encode()) if values else None
    return _parse_object(body)


def _slack_check(message: dict[str, Any]) -> str | None:
    attachments = message.get("attachments")
    blocks = message.get("blocks")
    text = message.get("text")
    if attachments is not None and not isinstance(attachments, list):
        return "invalid_payload"
    if blocks is not None and not isinstance(blocks, list):
        return "invalid_payload"
    if not (isinstance(text, str) and text.strip()) and not attachments and not blocks:
        return "no_text"
    if attachments:
        if len(attachments) > _SLACK_MAX_ATTACHMENTS:
            return "too_many_attachments"
        if not all(isinstance(a, dict) for a in attachments):
            return "invalid_payload"
        has_text = any(_str(a.get("text")) or _str(a.get("fallback")) for a in attachments)
        if not has_text and not _str(text) and not blocks:
            return "missing_text_or_fallback_or_attachments"
    return None


def _pd_errors(event: dict[str, Any]) -> list[str]:
    """What PagerDuty's Events API v2 would reject in this event."""
    errors: list[str] = []
    routing_key = event.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key.strip():
        errors.append("'routing_key' is missing or blank")
    elif len(routing_key) != _PD_ROUTING_KEY_LENGTH:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if not isinstance(action, str) or not action.strip():
        errors.append("'event_action' is missing or blank")
    elif action not in _PD_ACTIONS:
        errors.append(
            "'event_action' is invalid (must be one of the following: 'trigger',"
            " 'acknowledge' or 'resolve')"
        )
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' is invalid (must be a string)")
    elif isinstance(dedup_key, str) and len(dedup_key) > _PD_DEDUP_KEY_MAX:
        errors.append("Length of 'dedup_key' is too long (maximum is 255 characters)")
    elif action in ("acknowledge", "resolve") and not (dedup_key or "").strip():
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or blank")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.append("'payload.summary' is missing or blank")
            elif len(summary) > _PD_SUMMARY_MAX:
                errors.append(
                    "Length of 'payload.summary' is too long (maximum is 1024 characters)"
                )
            source = payload.get("source")
            if not isinstance(source, str) or not source.strip():
                errors.append("'payload.source' is missing or blank")
            severity = payload.get("severity")
            if not isinstance(severity, str) or not severity.strip():
                errors.append("'payload.severity' is missing or blank")
            elif severity not in _PD_SEVERITIES:
                errors.append(
                    "'payload.severity' is invalid (must be one of the following:"
                    " 'critical', 'warning', 'error' or 'info')"
                )
            timestamp = payload.get("timestamp")
            if timestamp is not None and not _is_iso8601(timestamp):
                errors.append("'payload.timestamp' is invalid (must be an ISO 8601 timestamp)")
            details = payload.get("custom_details")
            if details is not None and not isinstance(details, dict | str | list):
                errors.append("'payload.custom_details' is invalid")
    return errors


def _og_errors(alert: dict[str, Any]) -> dict[str, str]:
    """What Opsgenie's create-alert request would reject, by field."""
    errors: dict[str, str] = {}
    message = alert.get("message")
    if not isinstance(message, str) or not message.strip():
        errors["message"] = "Message can not be empty."
    for field, limit in _OG_LIMITS.items():
        value = alert.get(field)
        if value is not None and not isinstance(value, str):
            errors[field] = f"{field.capitalize()} must be a string."
        elif isinstance(value, str) and len(value) > limit:
            errors[field] = f"{field.capitalize()} can not be longer than {limit} characters."
    priority = alert.get("priority")
    if priority not in (None, "", *_OG_PRIORITIES):
        errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]."
    for field in ("tags", "actions", "responders", "visibleTo"):
        if alert.get(field) is not None and not isinstance(alert.get(field), list):
            errors[field] = f"{field} must be a list."
    if alert.get("details") is not None and not isinstance(alert.get("details"), dict):
        errors["details"] = "details must be an object of strings."
    return errors


def _og_authorized(request: Request) -> bool:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return scheme == "GenieKey" and bool(key.strip())


def _is_iso8601(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _since(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(value)  # ValueError: caller answers 400
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _app(store: _Store) -> Starlette:
    async def record(receiver: str, kind: Kind, body: dict[str, Any]) -> Delivery:
        return await asyncio.to_thread(store.add, receiver, kind, body)

    @_guarded(_slack_error)
    async def slack(request: Request) -> Response:
        receiver = _receiver(request)
        if receiver is None:
            return PlainTextResponse("no_service", status_code=404)
        body = await _read_body(request)
        if not isinstance(body, bytes):
            return _too_large("slack")
        message = _slack_payload(request, body)
        if message is None:
            return PlainTextResponse("invalid_payload", status_code=400)
        problem = _slack_check(message)
        if problem is not None:
            return PlainTextResponse(problem, status_code=400)
        await record(receiver, "slack", message)
        return PlainTextResponse("ok")

    @_guarded(_pd_error)
    async def pagerduty(request: Request) -> Response:
        receiver = _receiver(request)
        if receiver is None:
            return _JSON({"status": "not found"}, status_code=404)
        body = await _read_body(request)
        if not isinstance(body, bytes):
            return _too_large("pagerduty")
        event = _parse_object(body)
        errors = ["Event object is not valid JSON"] if event is None else _pd_errors(event)
        if event is None or errors:
            return _JSON(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status_code=400,
            )
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        await record(receiver, "pagerduty", event)
        return _JSON(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
            status_code=202,
        )

    async def opsgenie_request(request: Request) -> tuple[str, dict[str, Any]] | Response:
        """The receiver and the JSON body of an Opsgenie request, or the error answer."""
        receiver = _receiver(request)
        if receiver is None:
            return _og_answer(404, message="Not Found")
        if not _og_authorized(request):
            return _og_answer(401, message="Could not authenticate")
        body = await _read_body(request)
        if not isinstance(body, bytes):
            return _too_large("opsgenie")
        parsed = _parse_object(body) if body.strip() else {}
        if parsed is None:
            return _og_answer(400, message="Could not parse the request body as JSON.")
        return receiver, parsed

    @_guarded(_og_error)
    async def opsgenie_create(request: Request) -> Response:
        got = await opsgenie_request(request)
        if isinstance(got, Response):
            return got
        receiver, alert = got
        errors = _og_errors(alert)
        if errors:
            return _og_answer(
                422,
                message="Request body is not processable. Please check the errors.",
                errors=errors,
            )
        await record(receiver, "opsgenie", alert)
        return _og_answer(202, result="Request will be processed")

    @_guarded(_og_error)
    async def opsgenie_close(request: Request) -> Response:
        got = await opsgenie_request(request)
        if isinstance(got, Response):
            return got
        receiver, body = got
        identifier_type = request.query_params.get("identifierType") or "id"
        if identifier_type not in _OG_IDENTIFIER_TYPES:
            return _og_answer(
                422,
                message="Request body is not processable. Please check the errors.",
                errors={"identifierType": "Identifier type should be one of [id, alias, tiny]."},
            )
        identifier = str(request.path_params["identifier"])
        await record(
            receiver,
            "opsgenie",
            {
                "action": "close",
                "identifier": identifier,
                "identifierType": identifier_type,
                "body": body,
            },
        )
        return _og_answer(202, result="Request will be processed")

    @_guarded(_json_error)
    async def webhook(request: Request) -> Response:
        receiver = _receiver(request)
        if receiver is None:
            return _JSON({"error": "not found"}, status_code=404)
        body = await _read_body(request)
        if not isinstance(body, bytes):
            return _too_large("webhook")
        message = _parse_object(body)
        if message is None:
            return _JSON(
                {"error": f"the body is not a JSON object (nested at most {_MAX_DEPTH} deep)"},
                status_code=400,
            )
        await record(receiver, "webhook", message)
        return _JSON({"status": "ok"})

    @_guarded(_json_error)
    async def deliveries(request: Request) -> Response:
        params = request.query_params
        kind = params.get("kind") or None
        if kind is not None and kind not in KINDS:
            return _JSON({"error": f"kind must be one of {', '.join(KINDS)}"}, status_code=400)
        try:
            since = _since(params["since"]) if params.get("since") else None
        except ValueError:
            return _JSON(
                {"error": "since must be unix seconds or an ISO 8601 time"}, status_code=400
            )
        raw_limit = params.get("limit") or "1000"
        whole = raw_limit.isascii() and raw_limit.isdigit()
        if not whole or not 0 < int(raw_limit) <= DEFAULT_KEEP:
            return _JSON(
                {"error": f"limit must be a whole number from 1 to {DEFAULT_KEEP}"},
                status_code=400,
            )
        found = await asyncio.to_thread(
            store.query, params.get("receiver") or None, kind, since, int(raw_limit)
        )
        return _JSON([d.to_json() for d in found])

    @_guarded(_json_error)
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/slack/{receiver}", slack, methods=["POST"]),
            Route("/pagerduty/{receiver}/v2/enqueue", pagerduty, methods=["POST"]),
            Route("/opsgenie/{receiver}/v2/alerts", opsgenie_create, methods=["POST"]),
            Route(
                "/opsgenie/{receiver}/v2/alerts/{identifier}/close",
                opsgenie_close,
                methods=["POST"],
            ),
            Route("/webhook/{receiver}", webhook, methods=["POST"]),
            Route("/api/deliveries", deliveries, methods=["GET"]),
            Route("/api/health", health, methods=["GET"]),
        ]
    )


# -- SMTP -------------------------------------------------------------------------------


def _text_part(message: Message, subtype: str) -> str | None:
    if not isinstance(message, EmailMessage):
        return None
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError, AttributeError):
        raw = part.get_payload(decode=True)
        content = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    return content if isinstance(content, str) else None


def _crlf(text: str | None) -> str | None:
    return None if text is None else text.replace("\r\n", "\n")


def _email_fields(mail_from: str | None, rcpt_tos: list[str], raw: bytes) -> dict[str, Any]:
    try:
        message: Message = BytesParser(policy=policy.default).parsebytes(raw)
        headers = [[k, str(v)] for k, v in message.items()]
    except Exception:  # malformed headers: fall back to the lenient legacy parser
        message = BytesParser(policy=policy.compat32).parsebytes(raw)
        headers = [[k, str(v)] for k, v in message.items()]
    text = _text_part(message, "plain")
    if text is None and not message.is_multipart():
        payload = message.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return {
        "mail_from": mail_from or "",
        "rcpt_tos": rcpt_tos,
        "from": str(message.get("From", "")),
        "to": str(message.get("To", "")),
        "subject": str(message.get("Subject", "")),
        "headers": headers,
        "text": _crlf(text) or "",
        "html": _crlf(_text_part(message, "html")),
    }


def _email_receiver(fields: dict[str, Any]) -> str:
    for key, value in fields["headers"]:
        if key.lower() == RECEIVER_HEADER.lower() and value.strip():
            return str(value).strip()[:_MAX_RECEIVER]
    rcpt_tos: list[str] = fields["rcpt_tos"]
    if rcpt_tos:
        local = rcpt_tos[0].strip("<>").rsplit("@", 1)[0]
        if local:
            return local[:_MAX_RECEIVER]
    return "unknown"


class _SmtpHandler:
    """aiosmtpd handler: every message is recorded as one email delivery."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            raw = envelope.original_content or envelope.content or b""
            if isinstance(raw, str):
                raw = raw.encode("utf-8", "surrogateescape")
            fields = _email_fields(envelope.mail_from, list(envelope.rcpt_tos), raw)
            await asyncio.to_thread(self._store.add, _email_receiver(fields), "email", fields)
        except OSError as exc:
            log.error("inbox: an email not recorded: %s", exc)
            return "451 Requested action aborted: local error in processing"
        except Exception:
            log.exception("inbox: cannot record an email")
            return "451 Requested action aborted: local error in processing"
        return "250 Message accepted for delivery"


# -- the server -------------------------------------------------------------------------


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _listen(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"the inbox cannot listen for {what} on {host}:{port}: {exc.strerror}"
        ) from exc
    return sock


class Inbox:
    """The local receiver: HTTP (Slack, PagerDuty, webhook, read API) and SMTP.

    ``start()`` binds both ports (0 picks free ones) and serves from a background
    thread; ``stop()`` shuts down and closes the store. Use it as a context manager::

        with Inbox(tmp / "inbox.sqlite") as inbox:
            post_alert(...)
            inbox.wait_for(lambda d: d.kind == "slack" and d.status == "firing", 10)
    """

    def __init__(
        self,
        store_path: Path | str,
        host: str = "127.0.0.1",
        http_port: int = 0,
        smtp_port: int = 0,
        *,
        keep: int = DEFAULT_KEEP,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.store_path = Path(store_path)
        self.host = host
        self._http_port = http_port
        self._smtp_port = smtp_port
        self._keep = keep
        self._store: _Store | None = None
        self._store_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._stopping = False
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._sockets: list[socket.socket] = []

    # -- addresses

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the HTTP endpoints (the bound port once started)."""
        return f"http://{_host_for_url(self.host)}:{self._http_port}"

    @property
    def smtp_address(self) -> tuple[str, int]:
        """``(host, port)`` of the SMTP server (the bound port once started)."""
        return (self.host, self._smtp_port)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle

    def start(self, timeout: float = 10.0) -> Inbox:
        """Bind, serve in a background thread, return once both servers accept."""
        if self._thread is not None:
            raise RuntimeError("the inbox is already running")
        store = self._open_store()
        try:
            http_sock = _listen(self.host, self._http_port, "HTTP")
            try:
                smtp_sock = _listen(self.host, self._smtp_port, "SMTP")
            except OSError:
                http_sock.close()
                raise
        except OSError:
            self.close()
            raise
        self._sockets = [http_sock, smtp_sock]
        self._http_port = int(http_sock.getsockname()[1])
        self._smtp_port = int(smtp_sock.getsockname()[1])
        self._ready.clear()
        self._failure = None
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run,
            args=(store, http_sock, smtp_sock),
            name="glassbox-inbox",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            failure = self._failure
            self.stop()
            raise RuntimeError(f"the inbox did not start: {failure or 'timed out'}")
        log.info("inbox: HTTP on %s, SMTP on %s:%d", self.http_url, *self.smtp_address)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, wait for the thread, close the store. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            if self._server is not None:
                self._server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                log.warning("inbox: the server thread did not stop within %.0fs", timeout)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets = []
        self._server = None
        self.close()

    def close(self) -> None:
        """Close the store (stop() does it; for an Inbox used only to read)."""
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> Inbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reading

    def deliveries(
        self,
        receiver: str | None = None,
        kind: Kind | None = None,
        *,
        since: datetime | float | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        """Recorded deliveries, newest first (works without start(): reads the store)."""
        if isinstance(since, datetime):
            since = since.timestamp()
        return self._open_store().query(receiver, kind, since, limit)

    def wait_for(
        self,
        predicate: Callable[[Delivery], bool],
        timeout: float = 10.0,
        *,
        interval: float = 0.05,
    ) -> Delivery:
        """The newest delivery matching ``predicate``, polling until ``timeout`` seconds.

        Raises :class:`TimeoutError` (listing what did arrive) at the deadline.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.deliveries()
            for delivery in found:
                if predicate(delivery):
                    return delivery
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = (
                    ", ".join(f"{d.kind}:{d.receiver}:{d.status}" for d in found[:20]) or "nothing"
                )
                raise TimeoutError(
                    f"no matching delivery within {timeout}s; the inbox holds {seen}"
                )
            time.sleep(min(interval, remaining))

    # -- internals

    def _open_store(self) -> _Store:
        with self._store_lock:
            if self._store is None:
                self._store = _Store(self.store_path, self._keep)
            return self._store

    def _run(self, store: _Store, http_sock: socket.socket, smtp_sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(store, http_sock, smtp_sock))
        except BaseException as exc:
            self._failure = exc
            log.exception("inbox: the server stopped with an error")
        finally:
            self._ready.set()

    async def _serve(
        self, store: _Store, http_sock: socket.socket, smtp_sock: socket.socket
    ) -> None:
        import uvicorn
        from aiosmtpd.smtp import SMTP

        loop = asyncio.get_running_loop()
        handler = _SmtpHandler(store)
        connections: weakref.WeakSet[SMTP] = weakref.WeakSet()

        def smtp_protocol() -> SMTP:
            protocol = SMTP(
                handler,
                hostname="glassbox-inbox",
                ident="glassbox inbox",
                data_size_limit=MAX_BODY_BYTES,
                timeout=60,
                loop=loop,
            )
            connections.add(protocol)
            return protocol

        smtp_server = await loop.create_server(smtp_protocol, sock=smtp_sock)
        config = uvicorn.Config(
            _app(store),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
            limit_concurrency=256,
        )
        server = uvicorn.Server(config)
        self._server = server
        if self._stopping:  # stop() ran before the server existed
            server.should_exit = True
        serving = asyncio.create_task(server.serve(sockets=[http_sock]))
        try:
            while not server.started and not serving.done():
                await asyncio.sleep(0.01)
            if not server.started:
                await serving  # raises what stopped it
                raise RuntimeError("uvicorn exited before it started serving")
            self._ready.set()
            await serving
        finally:
            smtp_server.close()
            for protocol in list(connections):
                if protocol.transport is not None:
                    protocol.transport.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(smtp_server.wait_closed(), 5)
