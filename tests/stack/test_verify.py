"""`glassbox stack verify` on a real build: promtool, amtool, lint, schemas.

Passes on the starter's stack, and each planted defect makes its own step fail.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from glassbox.stack.build import render_stack, write_stack
from glassbox.stack.config import StackConfig, parse_config
from glassbox.stack.verify import Step, verify_stack

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None or shutil.which("amtool") is None,
    reason="promtool and amtool come from ./scripts/setup.sh",
)

STARTER: dict[str, Any] = tomllib.loads(
    files("glassbox.stack").joinpath("starter.toml").read_text(encoding="utf-8")
)


def failing(steps: list[Step]) -> dict[str, list[str]]:
    return {s.name: s.problems for s in steps if not s.ok}


@pytest.fixture(scope="module")
def config() -> StackConfig:
    data = json.loads(json.dumps(STARTER))
    data["dependencies"] += [
        {"name": "docs", "kind": "mongodb", "targets": ["127.0.0.1:9216"]},
        {"name": "vectors", "kind": "qdrant", "targets": ["127.0.0.1:6333"]},
        {"name": "docker", "kind": "containers", "targets": ["127.0.0.1:8080"]},
    ]
    data["services"][0]["alerts"]["memory_limit_bytes"] = 512 * 1024**2
    data["services"][0]["business_metrics"] = [
        {"name": "shop_orders_total", "kind": "counter", "title": "Orders", "by": ["status"]}
    ]
    data["receivers"].append(
        {
            "name": "hook",
            "kind": "webhook",
            "url": "http://127.0.0.1:9999/alerts",
            "bearer_token": {"env": "HOOK_TOKEN"},
        }
    )
    data["routing"]["routes"].append({"severity": "info", "receivers": ["hook"]})
    data["dependencies"][0]["labels"] = {"component": "database"}
    data["services"][0]["labels"] = {"team": "shop"}
    data["routing"]["routes"].insert(
        0, {"matchers": ['component="database"'], "receivers": ["hook", "team-email"]}
    )
    data["routing"]["inhibit"] = [
        {
            "source_matchers": ['alertname="PostgresDown"'],
            "target_matchers": ['team="shop"', 'severity=~"warning|info"'],
        }
    ]
    data["receivers"].append(
        {
            "name": "genie",
            "kind": "opsgenie",
            "api_key": {"env": "OPSGENIE_API_KEY"},
            "message": {"summary": "{{ .CommonLabels.alertname }} on {{ .CommonLabels.team }}"},
        }
    )
    data["receivers"][1]["message"] = {
        "title": "{{ .CommonLabels.alertname }} ({{ .CommonLabels.component }})",
        "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
    }
    data["prometheus"]["remote_write"] = [
        {
            "name": "vm",
            "kind": "victoriametrics",
            "url": "http://127.0.0.1:8428/api/v1/write",
            "bearer_token": {"file": "/run/secrets/vm"},
        }
    ]
    return parse_config(data)


@pytest.fixture(scope="module")
def built(config: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("stack") / "monitoring"
    write_stack(render_stack(config), directory)
    return directory


def test_the_built_stack_passes_every_check(config: StackConfig, built: Path) -> None:
    seen: list[str] = []
    steps = verify_stack(config, built, progress=lambda s: seen.append(s.name))
    assert failing(steps) == {}
    assert seen == [s.name for s in steps]
    names = " | ".join(seen)
    for tool in (
        "promtool check config",
        "promtool check rules",
        "promtool test rules",
        "amtool check-config",
        "amtool template render",
        "amtool config routes test",
        "compose",
        "kubernetes",
    ):
        assert tool in names
    tests = next(s for s in steps if s.name.startswith("promtool test rules"))
    assert int(tests.detail.split()[0]) >= 60  # every alert: firing and quiet cases


def copy_of(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "monitoring"
    shutil.copytree(built, target)
    return target


def test_an_alert_that_no_longer_fires_fails_its_promtool_test(
    config: StackConfig, built: Path, tmp_path: Path
) -> None:
    stack = copy_of(built, tmp_path)
    rules = stack / "prometheus/rules/service-shop.yml"
    text = rules.read_text()
    assert "> 0.05" in text
    rules.write_text(text.replace("> 0.05", "> 0.95"))
    problems = failing(verify_stack(config, stack))
    assert any(
        "differs from what glassbox.toml gives" in p
        for p in problems["output matches glassbox.toml"]
    )
    (test_step,) = [v for k, v in problems.items() if k.startswith("promtool test rules")]
    assert "ServiceHighErrorRatio: errors above the threshold" in test_step[0]


def test_a_route_that_stops_too_early_fails_the_routes_test(
    config: StackConfig, built: Path, tmp_path: Path
) -> None:
    stack = copy_of(built, tmp_path)
    am = stack / "alertmanager/alertmanager.yml"
    doc = yaml.safe_load(am.read_text())
    (oncall,) = [r for r in doc["route"]["routes"] if r["receiver"] == "oncall"]
    oncall["continue"] = False
    am.write_text(yaml.safe_dump(doc))
    problems = failing(verify_stack(config, stack))
    (routes,) = [v for k, v in problems.items() if k.startswith("amtool config routes")]
    assert any("'severity': 'critical'" in p and "['oncall', 'team-slack']" in p for p in routes)


def test_matcher_routes_and_user_inhibit_rules_are_checked(
    config: StackConfig, built: Path, tmp_path: Path
) -> None:
    stack = copy_of(built, tmp_path)
    am = stack / "alertmanager/alertmanager.yml"
    doc = yaml.safe_load(am.read_text())
    assert doc["route"]["routes"][1]["matchers"] == ['component="database"']
    doc["route"]["routes"][1]["matchers"] = ['component="cache"']
    assert doc["inhibit_rules"][-1]["target_matchers"][0] == 'team="shop"'
    doc["inhibit_rules"][-1]["target_matchers"][0] = 'tier="gold"'
    am.write_text(yaml.safe_dump(doc))
    problems = failing(verify_stack(config, stack))
    (routes,) = [v for k, v in problems.items() if k.startswith("amtool config routes")]
    # the database's alerts, and the route's own probe, miss the receivers of their route
    assert any("'component': 'database'" in p and "['hook', 'team-email']" in p for p in routes)
    (inhibit,) = [v for k, v in problems.items() if k.startswith("every inhibit-rule label")]
    assert any("label 'tier' is on no alert" in p for p in inhibit)


def test_a_dashboard_query_with_a_misspelt_le_fails(
    config: StackConfig, built: Path, tmp_path: Path
) -> None:
    stack = copy_of(built, tmp_path)
    path = stack / "grafana/dashboards/glassbox-shop-overview.json"
    board = json.loads(path.read_text())
    target = board["panels"][1]["targets"][0]
    target["expr"] = 'sum(rate(http_request_duration_seconds_bucket{le="1"}[$__rate_interval]))'
    path.write_text(json.dumps(board))
    problems = failing(verify_stack(config, stack))
    (dash,) = [v for k, v in problems.items() if k.startswith("dashboards")]
    assert any(
        'le="1" on http_request_duration_seconds_bucket matches no series' in p and "1.0" in p
        for p in dash
    )


def test_missing_output_is_reported(config: StackConfig, tmp_path: Path) -> None:
    steps = verify_stack(config, tmp_path / "nowhere")
    assert "run 'glassbox stack build'" in steps[0].problems[0]


def small(message: dict[str, str]) -> StackConfig:
    return parse_config(
        {
            "services": [{"name": "demo", "targets": ["127.0.0.1:8000"]}],
            "receivers": [
                {
                    "name": "chat",
                    "kind": "slack",
                    "api_url": {"env": "SLACK_URL"},
                    "message": message,
                }
            ],
        }
    )


def test_a_message_template_syntax_error_fails_check_config(tmp_path: Path) -> None:
    config = small({"title": "{{ .CommonLabels.alertname | toUpper }"})
    directory = tmp_path / "monitoring"
    write_stack(render_stack(config), directory)
    problems = failing(verify_stack(config, directory))
    assert list(problems) == ["amtool check-config"]
    assert "messages.tmpl" in problems["amtool check-config"][0]


def test_a_message_that_cannot_render_fails_template_render(tmp_path: Path) -> None:
    config = small({"title": "{{ .CommonLabels.alertname }}", "text": "{{ .NoSuchField }}"})
    directory = tmp_path / "monitoring"
    write_stack(render_stack(config), directory)
    problems = failing(verify_stack(config, directory))
    assert list(problems) == ["amtool template render (every receiver message renders)"]
    (problem,) = problems["amtool template render (every receiver message renders)"]
    assert "glassbox.chat.text" in problem
    assert "NoSuchField" in problem


def test_short_windows_and_hold_times_verify_too(tmp_path: Path) -> None:
    """Demo-tuned windows (seconds, not minutes) get promtool cases at their own step."""
    config = parse_config(
        {
            "prometheus": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "services": [
                {
                    "name": "demo",
                    "targets": ["127.0.0.1:8000"],
                    "alerts": {
                        "window": "20s",
                        "error_ratio": 0.1,
                        "error_for": "3s",
                        "down_for": "5s",
                        "dependency_for": "3s",
                        "min_request_rate": 0.5,
                        "latency": [{"quantile": 0.95, "threshold": 0.5, "for": "5s"}],
                    },
                    "slos": [{"name": "availability", "kind": "availability", "objective": 99}],
                }
            ],
            "receivers": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/"}],
        }
    )
    directory = tmp_path / "monitoring"
    write_stack(render_stack(config), directory)
    rules = (directory / "prometheus/rules/service-demo.yml").read_text()
    assert "service:http_request_error_ratio:rate20s" in rules
    assert (directory / "prometheus/tests/service-demo.4s.test.yml").is_file()
    assert failing(verify_stack(config, directory)) == {}
