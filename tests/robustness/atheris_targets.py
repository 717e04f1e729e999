"""Coverage-guided fuzz targets (atheris, libFuzzer underneath) for glassbox's parsers.

``python -m tests.robustness.atheris_targets <target> [libFuzzer flags] [corpus dirs]``;
``tests/robustness/test_atheris.py`` runs each for a bounded time. A target crashes (and
libFuzzer saves the input) on any exception but the parser's documented refusal:

- ``config``: bytes as ``glassbox.toml`` through tomllib and ``parse_config``:
  a StackConfig or a ConfigurationError, nothing else.
- ``otlp``: bytes as an OTLP/HTTP export (gzip or not, protobuf or JSON, spans or logs):
  decoded, or OTLPDecodeError / PayloadTooLarge.
- ``headers``: the strings a request controls: Accept, Accept-Encoding, Authorization,
  X-Request-ID, a console range, a Prometheus duration.
"""

from __future__ import annotations

import contextlib
import sys
import tomllib
from collections.abc import Callable
from typing import Literal

import atheris

with atheris.instrument_imports(include=["glassbox"]):
    from glassbox._auth import Protection
    from glassbox.console.app import parse_range
    from glassbox.console.otlp import (
        OTLPDecodeError,
        PayloadTooLarge,
        decode_logs,
        decode_spans,
        decompress,
    )
    from glassbox.exceptions import ConfigurationError
    from glassbox.logs import sane_request_id
    from glassbox.metrics.exposition import wants_gzip, wants_openmetrics
    from glassbox.stack.config import duration_seconds, parse_config

_PROTECTION = Protection(token="t0ken", basic=("user", "pa:ss"))


def config(data: bytes) -> None:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return  # not TOML: the loader's own message, tested elsewhere
    try:
        parse_config(document, source="fuzzed.toml")
    except ConfigurationError as exc:
        message = str(exc)
    else:
        return
    assert "fuzzed.toml" in message, message


def otlp(data: bytes) -> None:
    if not data:
        return
    flags, body = data[0], data[1:]
    encoding: Literal["json", "protobuf"] = "json" if flags & 1 else "protobuf"
    decode = decode_logs if flags & 2 else decode_spans
    try:
        raw = decompress(body, "gzip" if flags & 4 else None, limit=1 << 20)
        decoded = decode(raw, encoding)
    except (OTLPDecodeError, PayloadTooLarge):
        return
    assert decoded.rejected >= 0


def headers(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    text = provider.ConsumeUnicodeNoSurrogates(256)
    assert isinstance(wants_openmetrics(text), bool)
    assert isinstance(wants_gzip(text), bool)
    if _PROTECTION.allows(text):  # only the two credentials, in any case and spacing
        assert text.split()[1:] in (["t0ken"], ["dXNlcjpwYTpzcw=="]), text
    request_id = sane_request_id(text)
    assert request_id is None or ("\n" not in request_id and len(request_id) <= 128)
    for parse in (parse_range, duration_seconds):
        with contextlib.suppress(ValueError):
            assert parse(text) >= 0


TARGETS: dict[str, Callable[[bytes], None]] = {
    "config": config,
    "otlp": otlp,
    "headers": headers,
}


def main() -> None:
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
