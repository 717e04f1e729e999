"""The console API's OpenAPI document: valid, complete, and exact about ranges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate
from starlette.routing import Route

from glassbox.console.app import create_console, parse_range
from glassbox.console.openapi import console_document, range_pattern

RANGE = re.compile(f"^({range_pattern()})$")


def _accepted(text: str) -> bool:
    try:
        parse_range(text)
    except ValueError:
        return False
    return True


def test_the_document_is_valid_openapi_and_lists_the_dashboards() -> None:
    document = console_document(["b", "a", "a"])
    validate(document)
    uid = document["paths"]["/api/dashboards/{uid}"]["get"]["parameters"][0]
    assert uid["schema"]["examples"] == ["a", "b"]


def test_every_api_route_is_documented(tmp_path: Path) -> None:
    app = create_console(prometheus_url="http://127.0.0.1:9", alertmanager_url="http://127.0.0.1:9",
                         inbox=None, store=None, dashboards_dir=tmp_path)  # fmt: skip
    routes = {r.path for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/")}
    assert routes == set(console_document()["paths"])


@pytest.mark.parametrize("unit", ["ms", "s", "m", "h", "d", "w", "y"])
def test_the_range_pattern_is_what_parse_range_accepts_at_the_bounds(unit: str) -> None:
    limits = {"ms": 7_776_000_000, "s": 7_776_000, "m": 129_600, "h": 2160, "d": 90, "w": 12}
    most = limits.get(unit, 0)
    for n in {0, 1, 9, 10, 99, 100, most - 1, most, most + 1, most * 10, 10**25}:
        for text in (f"{n}{unit}", f"now-{n}{unit}", f"0{n}{unit}", f" {n}{unit}"):
            assert bool(RANGE.match(text)) == _accepted(text), text
    assert _accepted(f"{most}{unit}") == (most > 0)


@given(st.from_regex(r"\A(now-)?[0-9]{1,12}(ms|s|m|h|d|w|y)\Z") | st.text(max_size=12))
def test_the_range_pattern_matches_exactly_what_parse_range_accepts(text: str) -> None:
    assert bool(RANGE.match(text)) == (text != "" and _accepted(text))
