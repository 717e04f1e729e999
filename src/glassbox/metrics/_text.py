"""Small helpers shared by the exposition writers."""

from __future__ import annotations

from collections.abc import Sequence

from glassbox.metrics.catalogue import format_value

__all__ = ["escape_help", "escape_label_value", "fmt", "label_block"]


def escape_label_value(value: str) -> str:
    """Escape a label value for the text and OpenMetrics formats."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def escape_help(text: str) -> str:
    """Escape a HELP string."""
    return text.replace("\\", r"\\").replace("\n", r"\n")


def label_block(names: Sequence[str], values: Sequence[str]) -> str:
    """``name="value",...`` without braces; empty when there are no labels."""
    return ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True))


def fmt(value: float) -> str:
    """Spell a sample value: integers without a fraction, floats as Prometheus does."""
    if type(value) is int:
        return str(value)
    return format_value(value)
