"""alertmanager.yml: static labels, matcher routes, user inhibitions, receivers' own messages."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from glassbox.exceptions import ConfigurationError
from glassbox.stack.components import collect
from glassbox.stack.config import RESERVED_ALERT_LABELS, StackConfig, parse_config
from glassbox.stack.render.alertmanager import (
    INBOX_OPSGENIE_KEY,
    MESSAGES_FILE,
    OPSGENIE_PRIORITY,
    InboxTarget,
    alertmanager_yml,
    expected_receivers,
    render_alertmanager,
)
from glassbox.stack.render.prometheus import render_prometheus

STARTER: str = files("glassbox.stack").joinpath("starter.toml").read_text(encoding="utf-8")
INBOX = InboxTarget("http://127.0.0.1:9999", "127.0.0.1", 2525)


def config_with(**changes: Any) -> StackConfig:
    """The starter with a component label on the database and the given top-level changes."""
    data = tomllib.loads(STARTER)
    data["dependencies"][0]["labels"] = {"component": "database", "team": "data"}
    data["services"][0]["labels"] = {"team": "shop"}
    data.update(changes)
    return parse_config(data)


def routing(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads(STARTER)["routing"]
    data["routes"].insert(
        0,
        {"severity": "critical", "matchers": ['component="database"'], "receivers": ["team-email"]},
    )
    data["routes"].insert(1, {"matchers": ['team=~"data|ops"'], "receivers": ["team-slack"]})
    data.update(extra)
    return data


def test_static_labels_reach_every_alert_of_their_owner_and_its_tests() -> None:
    config = config_with()
    bundles = collect(config)
    by_bundle = {b.name: b for b in bundles}
    assert all(("team", "shop") in a.labels for a in by_bundle["service-shop"].alerts)
    assert all(("team", "shop") in a.labels for a in by_bundle["slo"].alerts)
    db = by_bundle["dependency-db"].alerts
    assert db
    assert all({("component", "database"), ("team", "data")} <= set(a.labels) for a in db)
    assert not any(a.labels for a in by_bundle["dependency-cache"].alerts)
    files_ = render_prometheus(config, bundles)
    rules = yaml.safe_load(files_["prometheus/rules/dependency-db.yml"])
    for rule in rules["groups"][0]["rules"]:
        assert rule["labels"]["component"] == "database"
    tests = [t for rel, t in files_.items() if rel.startswith("prometheus/tests/dependency-db")]
    fired = [
        alert["exp_labels"]
        for text in tests
        for case in yaml.safe_load(text)["tests"]
        for check in case["alert_rule_test"]
        for alert in check["exp_alerts"]
    ]
    assert fired
    assert all(labels["component"] == "database" for labels in fired)


def test_reserved_labels_cover_every_label_the_alerts_set() -> None:
    data = tomllib.loads(STARTER)
    data["dependencies"] += [
        {"name": "docs", "kind": "mongodb", "targets": ["127.0.0.1:9216"]},
        {"name": "vectors", "kind": "qdrant", "targets": ["127.0.0.1:6333"]},
        {"name": "docker", "kind": "containers", "targets": ["127.0.0.1:8080"]},
    ]
    carried = {
        label for b in collect(parse_config(data)) for a in b.alerts for label in a.expr_labels
    }
    assert carried <= RESERVED_ALERT_LABELS


def test_matcher_routes_and_their_expected_receivers() -> None:
    config = config_with(routing=routing())
    doc = yaml.safe_load(
        render_alertmanager(config, collect(config))["alertmanager/alertmanager.yml"]
    )
    routes = doc["route"]["routes"]
    assert routes[0] == {
        "receiver": "team-email",
        "matchers": ['severity="critical"', 'component="database"'],
        "continue": False,
    }
    assert routes[1]["matchers"] == ['team=~"data|ops"']
    db_down = {"alertname": "PostgresDown", "severity": "critical", "component": "database"}
    assert expected_receivers(config, db_down) == ["team-email"]
    assert expected_receivers(config, {**db_down, "severity": "warning", "team": "data"}) == [
        "team-slack"
    ]
    assert expected_receivers(config, {"severity": "critical", "team": "shop"}) == [
        "oncall",
        "team-slack",
    ]
    assert expected_receivers(config, {"severity": "info"}) == ["team-email"]


def test_user_inhibit_rules_follow_glassbox_own() -> None:
    inhibit = [
        {
            "source_matchers": ['alertname="PostgresDown"'],
            "target_matchers": ["component=database", 'alertname!="PostgresDown"'],
            "equal": ["dependency"],
        },
        {"source_matchers": ['severity="critical"'], "target_matchers": ['team="shop"']},
    ]
    config = config_with(routing=routing(inhibit=inhibit))
    bundles = collect(config)
    rules = yaml.safe_load(alertmanager_yml(config, bundles))["inhibit_rules"]
    assert rules[-2:] == [
        {
            "source_matchers": ['alertname="PostgresDown"'],
            "target_matchers": ['component="database"', 'alertname!="PostgresDown"'],
            "equal": ["dependency"],
        },
        {"source_matchers": ['severity="critical"'], "target_matchers": ['team="shop"']},
    ]
    assert rules[:-2] == yaml.safe_load(alertmanager_yml(config_with(), bundles))["inhibit_rules"]


def _receivers(config: StackConfig, inbox: InboxTarget | None = None) -> dict[str, Any]:
    doc = yaml.safe_load(alertmanager_yml(config, collect(config), inbox=inbox))
    return {r["name"]: r for r in doc["receivers"]}


def test_receivers_own_messages_are_named_templates() -> None:
    data = tomllib.loads(STARTER)
    data["receivers"][0]["message"] = {"summary": "{{ .CommonLabels.alertname }} is paging"}
    data["receivers"][1]["message"] = {
        "title": "{{ .CommonLabels.component }} / {{ .CommonLabels.alertname }}",
        "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
    }
    data["receivers"][2]["message"] = {"subject": "[shop] {{ .Status }}", "html": "<b>x</b>"}
    config = parse_config(data)
    rendered = render_alertmanager(config, collect(config))
    messages = rendered[MESSAGES_FILE]
    assert (
        '{{ define "glassbox.team-slack.title" }}{{ .CommonLabels.component }} /'
        " {{ .CommonLabels.alertname }}{{ end }}" in messages
    )
    assert '{{ define "glassbox.oncall.summary" }}' in messages
    for real in (True, False):
        receivers = _receivers(config, None if real else INBOX)
        slack = receivers["team-slack"]["slack_configs"][0]
        assert slack["title"] == '{{ template "glassbox.team-slack.title" . }}'
        assert slack["text"] == '{{ template "glassbox.team-slack.text" . }}'
        pager = receivers["oncall"]["pagerduty_configs"][0]
        assert pager["description"] == '{{ template "glassbox.oncall.summary" . }}'
        email = receivers["team-email"]["email_configs"][0]
        assert email["headers"]["Subject"] == '{{ template "glassbox.team-email.subject" . }}'
        assert email["html"] == '{{ template "glassbox.team-email.html" . }}'
        assert email["text"] == '{{ template "glassbox.text" . }}'  # no body: the default


def test_defaults_are_unchanged_without_messages() -> None:
    config = parse_config(tomllib.loads(STARTER))
    rendered = render_alertmanager(config, collect(config))
    assert MESSAGES_FILE not in rendered
    receivers = _receivers(config)
    assert receivers["team-slack"]["slack_configs"][0]["title"] == (
        '{{ template "glassbox.title" . }}'
    )
    assert "html" not in receivers["team-email"]["email_configs"][0]


def test_opsgenie_receiver_reads_its_key_from_a_file() -> None:
    data = tomllib.loads(STARTER)
    data["receivers"].append(
        {
            "name": "genie",
            "kind": "opsgenie",
            "api_key": {"env": "OPSGENIE_API_KEY"},
            "message": {"text": "{{ .CommonAnnotations.description }}"},
        }
    )
    config = parse_config(data)
    assert config.receiver("genie").secrets() == {"api_key": config.receiver("genie").api_key}
    (genie,) = _receivers(config)["genie"]["opsgenie_configs"]
    assert genie == {
        "api_key_file": "secrets/genie_api_key",
        "send_resolved": True,
        "message": '{{ template "glassbox.title" . }}',
        "description": '{{ template "glassbox.genie.text" . }}',
        "priority": OPSGENIE_PRIORITY,
        "source": "glassbox",
    }
    (local,) = _receivers(config, INBOX)["genie"]["opsgenie_configs"]
    assert local["api_url"] == "http://127.0.0.1:9999/opsgenie/genie/"
    assert local["api_key"] == INBOX_OPSGENIE_KEY
    assert "api_key_file" not in local
    data["receivers"][-1]["api_key"] = "inline-key"
    with pytest.raises(ConfigurationError, match="never written inline"):
        parse_config(data)
    del data["receivers"][-1]["api_key"]
    with pytest.raises(ConfigurationError, match="an opsgenie receiver needs api_key"):
        parse_config(data)
    data["receivers"][-1]["api_key"] = {"env": "OPSGENIE_API_KEY"}
    data["receivers"][-1]["message"] = {"title": "x"}
    with pytest.raises(
        ConfigurationError, match="opsgenie receiver's message takes summary and text"
    ):
        parse_config(data)


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool comes from scripts/setup.sh")
def test_amtool_reads_the_messages_and_refuses_a_broken_one(tmp_path: Path) -> None:
    data = tomllib.loads(STARTER)
    data["receivers"][1]["message"] = {"title": "{{ .CommonLabels.alertname | toUpper }}"}
    config = parse_config(data)

    def check(rendered: dict[str, str]) -> subprocess.CompletedProcess[str]:
        root = tmp_path / "am"
        shutil.rmtree(root, ignore_errors=True)
        for rel, text in rendered.items():
            path = root / Path(rel).relative_to("alertmanager")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (root / "secrets").mkdir()
        for receiver in config.receivers:
            for name in receiver.secrets():
                (root / "secrets" / f"{receiver.name}_{name}").write_text("x\n")
        return subprocess.run(
            ["amtool", "check-config", "alertmanager.yml"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )

    rendered = render_alertmanager(config, collect(config))
    assert check(rendered).returncode == 0
    rendered[MESSAGES_FILE] = rendered[MESSAGES_FILE].replace("toUpper }}", "toUpper }")
    broken = check(rendered)
    assert broken.returncode != 0
    assert "messages.tmpl" in broken.stdout + broken.stderr
