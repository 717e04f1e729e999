"""Expands the few Go-template forms glassbox's alert descriptions use.

Generated promtool tests state the exact annotations a firing alert must carry, so
the expansion here must equal Prometheus' own: ``{{ $labels.<name> }}`` and
``{{ $value | humanize }}``, ``humanizePercentage`` and ``humanizeDuration`` (the
same formatting as Prometheus' template functions). Anything else is refused, so a
description cannot use a form these tests cannot check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

__all__ = ["expand", "humanize", "humanize_duration", "humanize_percentage"]

_ACTION = re.compile(r"\{\{(.*?)\}\}")
_LABEL = re.compile(r"^\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)$")
_VALUE = re.compile(r"^\$value\s*\|\s*(humanize|humanizePercentage|humanizeDuration)$")


def _g4(value: float) -> str:
    """Go's ``%.4g``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def humanize(value: float) -> str:
    """Prometheus' ``humanize``: 4 significant digits and an SI prefix."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    if abs(value) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix = p
            value /= 1000
        return f"{_g4(value)}{prefix}"
    scaled, prefix = _small(value)
    return f"{_g4(scaled)}{prefix}"


def _small(value: float) -> tuple[float, str]:
    """A value below 1 scaled up by thousands, with its SI prefix (m, u, n, ...)."""
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = p
        value *= 1000
    return value, prefix


def humanize_percentage(value: float) -> str:
    """Prometheus' ``humanizePercentage``: 0.5 becomes ``50%``."""
    return f"{_g4(value * 100)}%"


def humanize_duration(value: float) -> str:
    """Prometheus' ``humanizeDuration``: 0.975 becomes ``975ms``, 90 becomes ``1m 30s``."""
    if math.isnan(value) or math.isinf(value):
        return _g4(value)
    if value == 0:
        return f"{_g4(value)}s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(value)}s"
    scaled, prefix = _small(value)
    return f"{_g4(scaled)}{prefix}s"


_FUNCTIONS = {
    "humanize": humanize,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
}


def expand(template: str, labels: Mapping[str, str], value: float) -> str:
    """The text Prometheus makes of ``template`` for an alert with these labels and value."""

    def action(match: re.Match[str]) -> str:
        body = match.group(1).strip()
        label = _LABEL.match(body)
        if label is not None:
            return labels.get(label.group(1), "")
        function = _VALUE.match(body)
        if function is not None:
            return _FUNCTIONS[function.group(1)](value)
        raise ValueError(
            f"template action {{{{{match.group(1)}}}}} is not one glassbox can check; use"
            " $labels.<name> or $value with humanize, humanizePercentage or humanizeDuration"
        )

    return _ACTION.sub(action, template)
