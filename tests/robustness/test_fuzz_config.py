"""The ``glassbox.toml`` loader against random documents and mutated valid configs.

Invariants: a document gives a StackConfig or a ConfigurationError whose every line
names the file and the field; never another exception type (KeyError, TypeError,
OverflowError, RecursionError ...). An accepted config renders. ``glassbox stack
build`` on a bad config leaves the output directory exactly as it was.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from glassbox.cli import app
from glassbox.exceptions import ConfigurationError
from glassbox.stack.build import render_stack
from glassbox.stack.config import StackConfig, duration_seconds, load_config, parse_config
from tests.robustness.fuzzing import fuzz

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
VALID = {
    path.parent.name: tomllib.loads(path.read_text(encoding="utf-8"))
    for path in sorted(EXAMPLES.glob("*/glassbox.toml"))
}
SOURCE = "fuzz/glassbox.toml"

# -- values TOML can hold ---------------------------------------------------------------

words = st.sampled_from(
    [
        "api", "api\n", "API", "a b", "", " ", "x" * 300, "5m", "5m\n", "0s", "-1s", "1h30m",
        "9" * 40 + "s", "9" * 400 + "y", "127.0.0.1:8000", "127.0.0.1:8000\n", "host:99999",
        "http://127.0.0.1:9/hook", "https://user:pw@host/x", "ENV_NAME", "ENV\nNAME",
        "critical", "warning", "slack", "webhook", "email", "pagerduty", "postgres", "redis",
        "latency", "availability", "28d", "30d", "/metrics", "metrics", "<script>", "\x00",
        "\ud7ff", "\U0001f642", "{{ .Labels }}", "${HOME}", "'quoted'", '"dq"', "\\",
    ]
)  # fmt: skip
scalars = st.one_of(
    words,
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 95, 99.9, 100, 0.5, 2.0, 1e308, -0.0, 2**63 - 1]),
    st.booleans(),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.dates(),
    st.times(),
)
keys = st.one_of(
    st.sampled_from(
        [
            "project", "environment", "output", "runbook_url", "prometheus", "services",
            "dependencies", "receivers", "routing", "name", "kind", "targets", "alerts",
            "slos", "objective", "threshold", "window", "latency", "for", "quantile",
            "severity", "url", "api_url", "env", "file", "routes", "receivers",
            "default_receiver", "remote_write", "external_labels", "buckets", "namespace",
            "metrics_token", "business_metrics", "by", "from", "to", "smarthost",
            "scrape_interval", "evaluation_interval", "error_for", "group_by",
        ]
    ),
    st.text(min_size=1, max_size=12),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=30,
)
top_levels = st.dictionaries(keys, documents, max_size=8)


def check(data: Any, source: str = SOURCE) -> StackConfig | None:
    """The config, or None after checking the error names ``source`` on every line."""
    try:
        return parse_config(data, source=source)
    except ConfigurationError as exc:
        message = str(exc)
        assert message, "an empty error message"
        for line in message.splitlines():
            assert line.startswith(f"{source}: "), line
        return None


# -- mutations of valid configs ---------------------------------------------------------


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
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(VALID)))
    data = copy.deepcopy(VALID[name])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)[1:]))
        parent: Any = data
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add", "duplicate"]))
        if action == "replace":
            parent[last] = draw(documents)
        elif action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent[last], dict):
            parent[last][draw(keys)] = draw(documents)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        elif action == "duplicate" and isinstance(parent[last], list) and parent[last]:
            parent[last].append(copy.deepcopy(parent[last][0]))
    return name, data


@fuzz(300)
@given(top_levels)
def test_random_documents_give_a_config_or_a_clear_error(data: dict[str, Any]) -> None:
    check(data)


@fuzz(300)
@given(mutated())
def test_mutated_examples_give_a_config_or_a_clear_error(case: tuple[str, dict[str, Any]]) -> None:
    check(case[1])


@fuzz(12, HealthCheck.filter_too_much)  # most mutations are refused, as they should be
@given(mutated())
def test_an_accepted_mutation_renders(case: tuple[str, dict[str, Any]]) -> None:
    config = check(case[1])
    assume(config is not None)
    assert config is not None
    files = render_stack(config)
    assert files["prometheus/prometheus.yml"]


@fuzz(150)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode)))
def test_random_bytes_on_disk_give_a_config_or_a_clear_error(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "glassbox.toml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigurationError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith(f"{path}: "), message


def test_deep_nesting_on_disk_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "glassbox.toml"
    path.write_text("project = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=str(path)):
        load_config(path)


# -- regressions hypothesis found --------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        ("prometheus", "scrape_interval"),
        ("prometheus", "retention_time"),
        ("routing", "repeat_interval"),
    ],
)
def test_an_absurdly_long_duration_is_a_clear_error(field: tuple[str, str]) -> None:
    data = copy.deepcopy(VALID["keiko"])
    data.setdefault(field[0], {})[field[1]] = "9" * 400 + "y"
    with pytest.raises(ConfigurationError, match=rf"{SOURCE}: {'.'.join(field)}: .*too long"):
        parse_config(data, source=SOURCE)


def test_durations_beyond_prometheus_range_are_refused_and_within_it_exact() -> None:
    assert duration_seconds("292y") == 292 * 365 * 86400
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("1500ms") == 1.5
    with pytest.raises(ValueError, match="too long"):
        duration_seconds("293y")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("services", 0, "name"), "api\n"),
        (("services", 0, "targets", 0), "127.0.0.1:8000\n"),
        (("prometheus", "scrape_interval"), "15s\n"),
        (("receivers", 0, "name"), "ops\n"),
        (("services", 0, "namespace"), "shop\n"),
    ],
)
def test_a_trailing_newline_is_not_part_of_a_valid_value(
    where: tuple[Any, ...], value: str
) -> None:
    data = copy.deepcopy(VALID["keiko"])
    parent: Any = data
    for part in where[:-1]:
        parent = parent[part]
    parent[where[-1]] = value
    assert check(data) is None, f"{value!r} accepted"


def test_keys_that_toml_cannot_hold_as_names_are_refused() -> None:
    data = copy.deepcopy(VALID["keiko"])
    data["prometheus"] = {"external_labels": {"cluster\n": "x"}}
    assert check(data) is None


# -- the CLI leaves the previous stack alone ----------------------------------------------


def _snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(directory)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, int]]]:
    root = tmp_path_factory.mktemp("build")
    config = root / "glassbox.toml"
    config.write_text(tomli_w.dumps(VALID["keiko"]), encoding="utf-8")
    result = CliRunner().invoke(app, ["stack", "build", "-c", str(config), "-o", str(root / "out")])
    assert result.exit_code == 0, result.output
    return root, _snapshot(root / "out")


def _toml(data: dict[str, Any]) -> str | None:
    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError):
        return None


@fuzz(25, HealthCheck.filter_too_much)  # valid mutations are skipped here
@given(mutated())
def test_stack_build_on_a_bad_config_leaves_the_output_untouched(
    built: tuple[Path, dict[str, tuple[str, int]]], case: tuple[str, dict[str, Any]]
) -> None:
    root, before = built
    text = _toml(case[1])
    assume(text is not None)
    assert text is not None
    try:
        parse_config(tomllib.loads(text))
    except ConfigurationError:
        pass
    else:
        assume(False)  # only bad configs here
    config = root / "bad.toml"
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["stack", "build", "-c", str(config), "-o", str(root / "out")])
    assert result.exit_code == 2, result.output
    assert str(config) in result.output
    assert _snapshot(root / "out") == before
    assert sorted(p.name for p in root.iterdir()) == ["bad.toml", "glassbox.toml", "out"]


def test_nan_and_infinity_never_pass_as_numbers() -> None:
    for value in (math.nan, math.inf, -math.inf):
        data = copy.deepcopy(VALID["keiko"])
        data["services"][0].setdefault("alerts", {})["error_ratio"] = value
        assert check(data) is None, value
