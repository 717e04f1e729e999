"""Small builders for promtool test series (one sample per minute)."""

from __future__ import annotations

from glassbox.stack.model import AlertCase, Expected, Series

__all__ = ["case", "const", "counter", "expect", "selector"]


def selector(metric: str, **labels: str) -> str:
    """``metric{a="b",...}`` with labels in a stable order."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def const(metric: str, value: float, minutes: int, **labels: str) -> Series:
    """A gauge that holds ``value`` for ``minutes``."""
    return Series(selector(metric, **labels), f"{_num(value)}x{minutes}")


def counter(metric: str, per_minute: float, minutes: int, **labels: str) -> Series:
    """A counter that grows by ``per_minute`` every minute from zero."""
    return Series(selector(metric, **labels), f"0+{_num(per_minute)}x{minutes}")


def expect(value: float, **labels: str) -> Expected:
    return Expected(tuple(sorted(labels.items())), value)


def case(
    name: str, series: list[Series], at_minutes: int, *firing: Expected, interval: int = 1
) -> AlertCase:
    """A case evaluated ``at_minutes`` after the series start, one sample per ``interval``."""
    return AlertCase(
        name, tuple(series), _minutes(at_minutes), tuple(firing), interval=f"{interval}m"
    )


def _minutes(total: int) -> str:
    hours, minutes = divmod(total, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
