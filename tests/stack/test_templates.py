"""The description expansion equals Prometheus' template functions (Go formatting)."""

from __future__ import annotations

import pytest

from glassbox.stack.templates import expand, humanize, humanize_duration, humanize_percentage


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.5, "500m"),
        (1, "1"),
        (10, "10"),
        (1234.5, "1.234k"),
        (2.5e6, "2.5M"),
        (0.000123, "123u"),
    ],
)
def test_humanize(value: float, text: str) -> None:
    assert humanize(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.975, "975ms"),
        (1.5, "1.5s"),
        (90, "1m 30s"),
        (3600, "1h 0m 0s"),
        (90061, "1d 1h 1m 1s"),
        (0, "0s"),
        (0.0005, "500us"),
    ],
)
def test_humanize_duration(value: float, text: str) -> None:
    assert humanize_duration(value) == text


def test_humanize_percentage_and_expand() -> None:
    assert humanize_percentage(0.5) == "50%"
    assert humanize_percentage(0.0045000000000000005) == "0.45%"
    text = expand(
        "{{ $labels.service }} answered {{ $value | humanizePercentage }} ({{$labels.none}})",
        {"service": "shop"},
        0.525,
    )
    assert text == "shop answered 52.5% ()"
    with pytest.raises(ValueError, match="not one glassbox can check"):
        expand("{{ $value }}", {}, 1.0)
