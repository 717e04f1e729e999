"""The local inbox's HTTP and SMTP endpoints against hostile deliveries.

Random JSON and bytes, mutated Slack/PagerDuty/webhook payloads, form bodies, deep
nesting, odd receiver names and query strings, raw emails. Invariants: never a 5xx
(SMTP: never the 451 of a local error); a refused delivery stores nothing, an accepted
one stores exactly one row holding the payload as sent; the inbox keeps serving.
"""

from __future__ import annotations

import copy
import json
import smtplib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from glassbox.local.inbox import MAX_BODY_BYTES, Inbox
from tests.local.test_inbox import ROUTING_KEY, webhook_body
from tests.robustness.fuzzing import fuzz

SLACK = {
    "text": "[FIRING:1] HighErrorRate",
    "attachments": [{"title": "[FIRING:1] HighErrorRate", "text": "severity=critical",
                     "color": "danger", "fallback": "x"}],
}  # fmt: skip
PAGERDUTY = {
    "routing_key": ROUTING_KEY,
    "event_action": "trigger",
    "dedup_key": "abc",
    "payload": {"summary": "HighErrorRate", "source": "prometheus", "severity": "critical",
                "custom_details": {"firing": "alertname=HighErrorRate"}},
}  # fmt: skip
VALID = {"slack": SLACK, "pagerduty": PAGERDUTY, "webhook": webhook_body()}


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inbox]:
    with Inbox(tmp_path_factory.mktemp("inbox") / "inbox.sqlite") as running:
        yield running


@pytest.fixture(scope="module")
def client(inbox: Inbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=inbox.http_url, timeout=30) as http:
        yield http


def path(kind: str, receiver: str) -> str:
    name = quote(receiver, safe="")
    return f"/pagerduty/{name}/v2/enqueue" if kind == "pagerduty" else f"/{kind}/{name}"


# -- strategies -------------------------------------------------------------------------

planted = st.sampled_from(["<script>window.__pwned=1</script>", '"><img src=x onerror=1>'])
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20), planted),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=15,
)  # fmt: skip


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


@st.composite
def payloads(draw: st.DrawFn, kind: str) -> Any:
    data = copy.deepcopy(VALID[kind])
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(_paths(data)))
        if not where:
            data = draw(st.one_of(json_values, st.just(data)))
            continue
        parent: Any = data
        for part in where[:-1]:
            parent = parent[part]
        if draw(st.booleans()):
            parent[where[-1]] = draw(st.one_of(json_values, st.integers(0, 1000).map(_deep)))
        else:
            del parent[where[-1]]
    return data


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    kind = draw(st.sampled_from(["slack", "pagerduty", "webhook"]))
    receiver = draw(st.one_of(st.sampled_from(["ops", "team-a", "x" * 200, "x" * 201, "é"]),
                              st.text(min_size=1, max_size=30)))  # fmt: skip
    shape = draw(st.sampled_from(["json", "json", "json", "form", "bytes", "deep", "utf16"]))
    headers = {"content-type": draw(st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]))}  # fmt: skip
    if shape == "json":
        body = json.dumps(draw(payloads(kind))).encode()
    elif shape == "form":
        headers["content-type"] = "application/x-www-form-urlencoded"
        body = urlencode({"payload": json.dumps(draw(payloads(kind)))}).encode()
        if draw(st.booleans()):
            body = draw(st.binary(max_size=200))
    elif shape == "deep":
        body = b"[" * draw(st.integers(200, 3000))
    elif shape == "utf16":
        body = json.dumps(draw(payloads(kind))).encode("utf-16")
    else:
        body = draw(st.binary(max_size=300))
    return kind, receiver, body, headers


# -- HTTP -------------------------------------------------------------------------------


@fuzz(300)
@given(deliveries())
def test_any_delivery_is_accepted_whole_or_refused_with_a_4xx(
    inbox: Inbox, client: httpx.Client, case: tuple[str, str, bytes, dict[str, str]]
) -> None:
    kind, receiver, body, headers = case
    before = inbox.deliveries(limit=1)
    response = client.post(path(kind, receiver), content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text[:200])
    after = inbox.deliveries(limit=2)
    newest = before[0].id if before else 0
    added = [d for d in after if d.id > newest]
    if response.status_code >= 300:
        # 3xx: an encoded '/' in the name (which config names cannot hold) is redirected
        assert response.status_code < 400 or response.text, "an error without a message"
        assert added == [], "a refused delivery was stored"
        return
    assert len(added) == 1
    if kind != "slack" or headers["content-type"] != "application/x-www-form-urlencoded":
        assert added[0].payload == json.loads(body)
    assert added[0].receiver == receiver


@pytest.mark.parametrize("depth", [254, 256, 300, 1023])
@pytest.mark.parametrize("kind", ["slack", "pagerduty", "webhook"])
def test_deeply_nested_json_is_a_4xx_not_a_server_error(
    inbox: Inbox, client: httpx.Client, kind: str, depth: int
) -> None:
    payload = copy.deepcopy(VALID[kind])
    deep = '{"x":' * depth + '"leaf"' + "}" * depth  # past what json.dumps can write
    body = json.dumps(payload)[:-1] + f', "extra": {deep}}}'
    before = len(inbox.deliveries())
    response = client.post(path(kind, "deep"), content=body.encode())
    assert response.status_code < 500, response.text[:200]
    stored = inbox.deliveries()
    if response.status_code < 300:
        assert stored[0].payload["extra"] == json.loads(deep)
    else:
        assert response.text
        assert len(stored) == before


queries = st.dictionaries(
    st.sampled_from(["receiver", "kind", "since", "limit", "other"]),
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "nan", "inf",
                         "-1e400", "1e400", "\xb2", "\u0661", "0", "10001", "webhook", "99" * 20]),
    ),
)  # fmt: skip


@fuzz(200)
@given(queries)
def test_any_deliveries_query_is_answered_without_a_server_error(
    client: httpx.Client, params: dict[str, str]
) -> None:
    response = client.get("/api/deliveries", params=params)
    assert response.status_code in (200, 400), (params, response.text[:200])
    assert isinstance(response.json(), list if response.status_code == 200 else dict)


@pytest.mark.parametrize(
    "params",
    [
        {"since": "not a time"},
        {"limit": "\xb2"},
        {"limit": "\xb9\xb2"},
    ],
)
def test_out_of_range_queries_are_a_400(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get("/api/deliveries", params=params)
    assert response.status_code == 400, response.text[:200]
    assert response.json()["error"]


def test_a_content_length_of_non_ascii_digits_is_not_a_server_error(inbox: Inbox) -> None:
    from glassbox.local import inbox as module

    store = inbox._open_store()
    with TestClient(module._app(store)) as local:
        for kind in ("slack", "pagerduty", "webhook"):
            response = local.post(
                path(kind, "ops"),
                content=json.dumps(VALID[kind]).encode(),
                headers={"content-length": b"\xb2"},
            )
            assert response.status_code < 500, (kind, response.text)


def test_oversized_bodies_are_refused_and_the_inbox_keeps_serving(
    inbox: Inbox, client: httpx.Client
) -> None:
    before = len(inbox.deliveries())
    for kind in ("slack", "pagerduty", "webhook"):
        response = client.post(path(kind, "big"), content=b" " * (MAX_BODY_BYTES + 1))
        assert response.status_code == 413
    assert len(inbox.deliveries()) == before
    response = client.post(path("webhook", "after"), json=webhook_body())
    assert response.status_code == 200
    assert inbox.deliveries(limit=1)[0].receiver == "after"


# -- SMTP -------------------------------------------------------------------------------

emails = st.one_of(
    st.binary(max_size=500),
    st.builds(
        lambda headers, body: headers + b"\r\n\r\n" + body,
        st.lists(
            st.one_of(
                st.sampled_from([b"Subject: [FIRING:1] X", b"X-Glassbox-Receiver: ops",
                                 b"Content-Type: text/plain; charset=utf-8",
                                 b"Content-Type: multipart/mixed; boundary=zz",
                                 b"Content-Transfer-Encoding: base64", b"Subject: =?utf-8?b?!!?=",
                                 b"X-Glassbox-Receiver: \xff\xfe", b"From: <<>>@@",
                                 b": empty name"]),
                st.binary(max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b),
            ),
            max_size=6,
        ).map(b"\r\n".join),
        st.binary(max_size=300),
    ),
)  # fmt: skip


@fuzz(60)
@given(emails)
def test_any_email_is_recorded_or_refused_without_a_local_error(inbox: Inbox, raw: bytes) -> None:
    before = inbox.deliveries(kind="email", limit=1)
    host, port = inbox.smtp_address
    code = 250
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        try:
            smtp.sendmail("am@example.com", ["ops@inbox"], raw)
        except smtplib.SMTPDataError as exc:
            code = exc.smtp_code
    after = inbox.deliveries(kind="email", limit=1)
    assert code != 451, "a local error in the inbox"
    if code == 250:
        assert after
        assert not before or after[0].id > before[0].id
    else:
        assert after == before


def test_the_inbox_answers_after_the_fuzzing(inbox: Inbox, client: httpx.Client) -> None:
    assert client.get("/api/health").json() == {"status": "ok"}
    response = client.post(path("slack", "final"), json=SLACK)
    assert response.status_code == 200
    assert inbox.deliveries("final")[0].payload == SLACK
