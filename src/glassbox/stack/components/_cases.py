"""Small builders for promtool test series: one sample every ``step`` seconds."""

from __future__ import annotations

import math

from glassbox.stack.model import Alert, AlertCase, Expected, Series

__all__ = ["case", "const", "counter", "expect", "fire_and_quiet", "samples", "selector"]


def selector(metric: str, **labels: str) -> str:
    """``metric{a="b",...}`` with labels in a stable order."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def const(metric: str, value: float, count: int, **labels: str) -> Series:
    """A gauge that holds ``value`` for ``count`` samples."""
    return Series(selector(metric, **labels), f"{_num(value)}x{count}")


def counter(metric: str, per_sample: float, count: int, **labels: str) -> Series:
    """A counter that grows by ``per_sample`` at every sample from zero."""
    return Series(selector(metric, **labels), f"0+{_num(per_sample)}x{count}")


def expect(value: float, **labels: str) -> Expected:
    return Expected(tuple(sorted(labels.items())), value)


def samples(seconds: float, step: int) -> int:
    """How many samples ``step`` seconds apart cover ``seconds``."""
    return math.ceil(seconds / step)


def case(name: str, series: list[Series], at: int, *firing: Expected, step: int = 60) -> AlertCase:
    """A case evaluated at sample ``at`` (``at * step`` seconds after the start)."""
    return AlertCase(name, tuple(series), _duration(at * step), tuple(firing), f"{step}s")


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return out + (f"{secs}s" if secs or not out else "")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def fire_and_quiet(
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    *,
    fire: list[Series],
    quiet: list[Series],
    value: float,
    labels: dict[str, str],
    at: int = 20,
) -> Alert:
    """An alert with one case that fires (with ``labels`` and ``value``) and one quiet case."""
    return Alert(
        name,
        expr,
        for_,
        severity,  # type: ignore[arg-type]
        summary,
        description,
        cases=(
            case("fires", fire, at, expect(value, **labels)),
            case("quiet", quiet, at),
        ),
        expr_labels=tuple(labels),
    )
