"""Alertmanager label matchers: parse, write back and evaluate ``component="database"``.

glassbox.toml takes matchers in Alertmanager's syntax (``name=value``, ``name="value"``,
with ``=``, ``!=``, ``=~`` or ``!~``); :func:`parse_matcher` checks one and
:meth:`Matcher.text` writes it in the quoted form both Alertmanager parsers (classic
and UTF-8) read alike. :meth:`Matcher.matches` decides as Alertmanager does: a missing
label is the empty string, and a regular expression must match the whole value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["LABEL_NAME", "Matcher", "label_name", "matches_all", "parse_matcher"]

Op = Literal["=", "!=", "=~", "!~"]

#: A Prometheus label name.
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*\Z")
_MATCHER = re.compile(r"^\s*([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*?)\s*\Z", re.DOTALL)
_BARE = re.compile(r'^[^"\s{},]*\Z')
_OPS: dict[str, Op] = {"=": "=", "!=": "!=", "=~": "=~", "!~": "!~"}


def label_name(value: str) -> str:
    """``value`` if it is a Prometheus label name, else a ValueError saying the rule."""
    if not LABEL_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a label name: use letters, digits and '_', not starting"
            " with a digit (for example 'component')"
        )
    if value.startswith("__"):
        raise ValueError(f"{value!r}: names starting with '__' are reserved by Prometheus")
    return value


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher."""

    name: str
    op: Op
    value: str

    def text(self) -> str:
        """The matcher as Alertmanager reads it: ``name="value"`` with the value quoted."""
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` matches (a missing label is ``""``)."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = re.fullmatch(self.value, value, re.DOTALL) is not None
        return found if self.op == "=~" else not found


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy every matcher (no matchers: any labels)."""
    return all(m.matches(labels) for m in matchers)


def _unquote(raw: str) -> str:
    """Alertmanager's unescaping: ``\\n``, ``\\"`` and ``\\\\``; any other escape is kept."""
    out: list[str] = []
    chars = iter(raw)
    for char in chars:
        if char != "\\":
            if char == '"':
                raise ValueError('a double quote inside the value must be escaped as \\"')
            out.append(char)
            continue
        following = next(chars, None)
        if following is None:
            out.append("\\")
        elif following == "n":
            out.append("\n")
        elif following in '"\\':
            out.append(following)
        else:
            out.append("\\" + following)
    return "".join(out)


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher; a ValueError names what is wrong and shows the form."""
    example = 'use name="value" with =, !=, =~ or !~, for example \'component="database"\''
    match = _MATCHER.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an Alertmanager matcher: {example}")
    name, op, raw = match.groups()
    try:
        label_name(name)
    except ValueError as exc:
        raise ValueError(f"matcher {text!r}: {exc}") from None
    if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
        try:
            value = _unquote(raw[1:-1])
        except ValueError as exc:
            raise ValueError(f"matcher {text!r}: {exc}") from None
    elif _BARE.match(raw):
        value = raw
    else:
        raise ValueError(
            f"matcher {text!r}: quote a value holding spaces, quotes, commas or braces,"
            f' for example {name}{op}"two words"'
        )
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"matcher {text!r}: {value!r} is not a regular expression: {exc}"
            ) from None
    return Matcher(name, _OPS[op], value)
