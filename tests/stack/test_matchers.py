"""Alertmanager matchers: parsed, written back quoted, evaluated as Alertmanager does."""

from __future__ import annotations

import pytest

from glassbox.stack.matchers import Matcher, label_name, matches_all, parse_matcher


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('component="database"', Matcher("component", "=", "database")),
        ("component=database", Matcher("component", "=", "database")),
        (' team != "payments" ', Matcher("team", "!=", "payments")),
        ('service=~"shop|api"', Matcher("service", "=~", "shop|api")),
        ("severity!~warning|info", Matcher("severity", "!~", "warning|info")),
        ('name="two words"', Matcher("name", "=", "two words")),
        ('name="say \\"hi\\""', Matcher("name", "=", 'say "hi"')),
        ('path=~"db\\d+"', Matcher("path", "=~", "db\\d+")),
        ('empty=""', Matcher("empty", "=", "")),
    ],
)
def test_parse(text: str, expected: Matcher) -> None:
    assert parse_matcher(text) == expected


def test_text_round_trips_through_the_parser() -> None:
    for matcher in (
        Matcher("component", "=", "database"),
        Matcher("name", "=", 'say "hi"'),
        Matcher("path", "=~", "db\\d+|a\\\\b"),
        Matcher("note", "!=", "line\nbreak"),
    ):
        assert parse_matcher(matcher.text()) == matcher
    assert Matcher("component", "=", "database").text() == 'component="database"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("component", "is not an Alertmanager matcher"),
        ('1component="x"', "is not a label name"),
        ('__name__="x"', "reserved by Prometheus"),
        ("component=two words", "quote a value holding spaces"),
        ('component="a"b"', "must be escaped"),
        ('component=~"(unclosed"', "is not a regular expression"),
    ],
)
def test_bad_matchers_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_matcher(text)


def test_matching_follows_alertmanager() -> None:
    labels = {"component": "database", "severity": "critical"}
    assert parse_matcher('component="database"').matches(labels)
    assert not parse_matcher('component="cache"').matches(labels)
    # a regular expression matches the whole value
    assert parse_matcher('component=~"data.*"').matches(labels)
    assert not parse_matcher('component=~"data"').matches(labels)
    assert parse_matcher('component!~"cache|queue"').matches(labels)
    # a missing label is the empty string
    assert parse_matcher('team=""').matches(labels)
    assert parse_matcher('team!="payments"').matches(labels)
    assert not parse_matcher('team=~".+"').matches(labels)
    both = [parse_matcher('component="database"'), parse_matcher('severity="warning"')]
    assert not matches_all(both, labels)
    assert matches_all([], labels)


def test_label_name() -> None:
    assert label_name("component") == "component"
    with pytest.raises(ValueError, match="not a label name"):
        label_name("com-ponent")
