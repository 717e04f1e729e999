"""``glassbox stack verify``: prove the generated stack with the tools that consume it.

Each step returns the problems it found, as precise messages; verification fails if
any step found one. Steps that run a tool work on a temporary copy of the output
(with placeholder secret files), never on the output itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from glassbox.stack.build import MANIFEST, render_stack
from glassbox.stack.components import collect
from glassbox.stack.config import StackConfig
from glassbox.stack.lint import Vocabulary, lint_alert, lint_expr, lint_recording, vocabulary
from glassbox.stack.matchers import Matcher, matches_all
from glassbox.stack.model import Bundle
from glassbox.stack.render.alertmanager import expected_receivers

__all__ = ["Step", "verify_stack"]

_TOOL_HINT = {
    "promtool": "the Debian package 'prometheus' (./scripts/setup.sh installs it)",
    "amtool": "the Debian package 'prometheus-alertmanager' (./scripts/setup.sh installs it)",
}


@dataclass(slots=True)
class Step:
    """One verification step and what it found."""

    name: str
    problems: list[str] = field(default_factory=list)
    detail: str = ""
    #: What could not be checked on this machine, and why (not failures).
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _run(tool: str, *args: str, cwd: Path, timeout: float = 300) -> tuple[int, str]:
    path = shutil.which(tool)
    if path is None:
        return 127, f"{tool} not found on PATH; install {_TOOL_HINT.get(tool, tool)}"
    proc = subprocess.run(
        [path, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _failure(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.strip()]
    return ["\n".join(lines[-40:])]


@contextmanager
def _copy(directory: Path, config: StackConfig) -> Iterator[Path]:
    """A temporary copy of the stack with placeholder files for every secret."""
    with tempfile.TemporaryDirectory(prefix="glassbox-verify-") as tmp:
        root = Path(tmp) / "stack"
        shutil.copytree(directory, root)
        for sub in ("alertmanager", "prometheus"):
            secrets = root / sub / "secrets"
            secrets.mkdir(parents=True, exist_ok=True)
        for receiver in config.receivers:
            for name in receiver.secrets():
                (root / "alertmanager" / "secrets" / f"{receiver.name}_{name}").write_text(
                    "placeholder\n"
                )
        for remote in config.prometheus.remote_write:
            for name in ("basic_auth_password", "bearer_token"):
                (root / "prometheus" / "secrets" / f"{remote.name}_{name}").write_text("x\n")
        for service in config.services:
            (root / "prometheus" / "secrets" / f"{service.name}_metrics_token").write_text("x\n")
        yield root


def _up_to_date(config: StackConfig, directory: Path, bundles: Sequence[Bundle]) -> Step:
    step = Step("output matches glassbox.toml")
    expected = render_stack(config, bundles=bundles)
    for rel, text in expected.items():
        path = directory / rel
        if not path.is_file():
            step.problems.append(f"{path}: missing; run 'glassbox stack build'")
        elif path.read_text(encoding="utf-8") != text:
            step.problems.append(
                f"{path}: differs from what glassbox.toml gives; run 'glassbox stack build'"
                " (edits belong in glassbox.toml)"
            )
    on_disk = {
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST
    }
    for rel in sorted(on_disk - set(expected)):
        step.problems.append(f"{directory / rel}: not part of the generated stack")
    step.detail = f"{len(expected)} files"
    return step


def _promtool(root: Path) -> list[Step]:
    prom = root / "prometheus"
    steps = []
    code, out = _run("promtool", "check", "config", "prometheus.yml", cwd=prom)
    steps.append(Step("promtool check config", [] if code == 0 else _failure(out)))
    rules = sorted(p.name for p in (prom / "rules").glob("*.yml"))
    code, out = _run("promtool", "check", "rules", *[f"rules/{r}" for r in rules], cwd=prom)
    steps.append(
        Step("promtool check rules", [] if code == 0 else _failure(out), f"{len(rules)} files")
    )
    tests = sorted(p.name for p in (prom / "tests").glob("*.yml"))
    code, out = _run("promtool", "test", "rules", *tests, cwd=prom / "tests", timeout=900)
    count = sum(
        len((yaml.safe_load((prom / "tests" / t).read_text()) or {}).get("tests", []))
        for t in tests
    )
    steps.append(
        Step(
            "promtool test rules (every alert fires and stays quiet)",
            [] if code == 0 else _failure(out),
            f"{count} cases",
        )
    )
    return steps


def _route_probes(config: StackConfig, bundles: Sequence[Bundle]) -> list[dict[str, str]]:
    """Label sets whose receivers the routes test checks, without repeats.

    Each severity alone and with each service; every generated alert as it reaches
    Alertmanager (with Prometheus' external labels), cut down to the labels the routes
    read; and for each route, labels built from its own matchers.
    """
    probes: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}

    def add(labels: dict[str, str]) -> None:
        probes.setdefault(tuple(sorted(labels.items())), labels)

    for severity in ("critical", "warning", "info"):
        for service in [None, *(s.name for s in config.services)]:
            labels = {"severity": severity, "alertname": "Probe"}
            if service:
                labels["service"] = service
            add(labels)
    routes = [r.label_matchers() for r in config.routing.routes]
    read = {"severity", "service"} | {m.name for matchers in routes for m in matchers}
    seen: dict[str, set[str]] = {}
    for bundle in bundles:
        for alert in bundle.alerts:
            for case in alert.cases:
                for expected in case.firing:
                    labels = {
                        **config.prometheus.external_labels,
                        **dict(expected.labels),
                        "alertname": alert.name,
                        "severity": alert.severity,
                        **dict(alert.labels),
                    }
                    for key, value in labels.items():
                        seen.setdefault(key, set()).add(value)
                    add({k: v for k, v in labels.items() if k in read})
    for matchers in routes:
        labels = {}
        for m in matchers:
            if m.op == "=":
                labels[m.name] = m.value
            elif m.op == "=~":
                fits = sorted(v for v in seen.get(m.name, ()) if m.matches({m.name: v}))
                if fits:
                    labels[m.name] = fits[0]
        if labels and matches_all(matchers, labels):
            add(labels)
    return list(probes.values())


def _templates(am: Path) -> Step:
    """Each template alertmanager.yml calls, rendered by amtool on its example alerts."""
    step = Step("amtool template render (every receiver message renders)")
    text = (am / "alertmanager.yml").read_text(encoding="utf-8")
    names = sorted(set(re.findall(r'\{\{-?\s*template\s+"([^"]+)"', text)))
    for name in names:
        code, out = _run(
            "amtool",
            "template",
            "render",
            "--template.glob=templates/*.tmpl",
            f'--template.text={{{{ template "{name}" . }}}}',
            cwd=am,
        )
        if code != 0:
            step.problems.append(f"template {name!r}: {_failure(out)[0]}")
    step.detail = f"{len(names)} templates"
    return step


def _amtool(root: Path, config: StackConfig, bundles: Sequence[Bundle]) -> list[Step]:
    am = root / "alertmanager"
    code, out = _run("amtool", "check-config", "alertmanager.yml", cwd=am)
    steps = [Step("amtool check-config", [] if code == 0 else _failure(out))]
    if code == 0:
        steps.append(_templates(am))
    routes = Step("amtool config routes test (each alert and route reaches its receivers)")
    tried = 0
    for labels in _route_probes(config, bundles):
        want = expected_receivers(config, labels)
        code, out = _run(
            "amtool",
            "config",
            "routes",
            "test",
            "--config.file=alertmanager.yml",
            f"--verify.receivers={','.join(want)}",
            *[Matcher(k, "=", v).text() for k, v in labels.items()],
            cwd=am,
        )
        tried += 1
        if code != 0:
            routes.problems.append(
                f"labels {labels}: expected receivers {want}; amtool said:"
                f" {out.splitlines()[-1] if out else code}"
            )
    routes.detail = f"{tried} label sets"
    steps.append(routes)
    inhibit = Step("every inhibit-rule label exists on some alert")
    doc = yaml.safe_load((am / "alertmanager.yml").read_text())
    alert_labels = {"alertname", "severity", *config.prometheus.external_labels}
    for bundle in bundles:
        for alert in bundle.alerts:
            alert_labels.update(alert.expr_labels)
            alert_labels.update(k for k, _ in alert.labels)
    for i, rule in enumerate(doc.get("inhibit_rules", [])):
        names = set(rule.get("equal", []))
        for matcher in [*rule.get("source_matchers", []), *rule.get("target_matchers", [])]:
            names.add(matcher.split("=")[0].rstrip("!~"))
        for name in sorted(names - alert_labels):
            inhibit.problems.append(
                f"alertmanager.yml inhibit_rules[{i}]: label {name!r} is on no alert, so the"
                " rule never applies"
            )
    steps.append(inhibit)
    return steps


def _rules(root: Path, config: StackConfig, vocab: Vocabulary) -> Step:
    step = Step("rules: catalogue names, gauges, label matching, le spelling, alert guidelines")
    count = 0
    for path in sorted((root / "prometheus" / "rules").glob("*.yml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert") or rule.get("record")
                where = f"prometheus/rules/{path.name} {group['name']}/{name}"
                problems, _ = lint_recording(
                    str(rule["expr"]),
                    vocab,
                    where=where,
                    record=rule.get("record"),
                    labels=(rule.get("labels") or {}).keys(),
                )
                step.problems += problems
                if "alert" in rule:
                    step.problems += lint_alert(
                        rule,
                        where=where,
                        evaluation_interval=config.prometheus.evaluation_interval,
                    )
                count += 1
    step.detail = f"{count} rules"
    return step


def substitute_variables(expr: str, rate_interval: str = "5m") -> str:
    """Dashboard variables replaced so the query runs as PromQL: Grafana's interval
    builtins by durations, every template variable by ``.*`` (all values)."""
    out = expr.replace("$__rate_interval", rate_interval).replace(
        "${__rate_interval}", rate_interval
    )
    out = out.replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", out)


def _dashboards(root: Path, vocab: Vocabulary) -> Step:
    from glassbox.stack.render.grafana import dashboard_queries, lint_dashboards

    step = Step("dashboards: Grafana lint and every query against the catalogue")
    files = {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted((root / "grafana" / "dashboards").glob("*.json"))
    }
    step.problems += lint_dashboards(files)
    queries = 0
    for rel, text in files.items():
        for title, expr in dashboard_queries(text):
            queries += 1
            where = f"{rel} panel {title!r}"
            step.problems += lint_expr(substitute_variables(expr), vocab, where=where)
    step.detail = f"{len(files)} dashboards, {queries} queries"
    return step


def _schemas(root: Path) -> list[Step]:
    from glassbox.stack.render.compose import check_compose
    from glassbox.stack.render.kubernetes import check_kubernetes
    from glassbox.stack.schemas import SchemaUnavailableError, prometheus_operator_models

    compose = Step("compose.yaml against the compose specification")
    compose.problems += check_compose((root / "compose.yaml").read_text())
    kube = Step("kubernetes/ against Kubernetes and Prometheus Operator schemas")
    files = {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted((root / "kubernetes").rglob("*.yaml"))
    }
    crd = True
    try:
        prometheus_operator_models()
        if shutil.which("node") is None:
            raise SchemaUnavailableError("the Prometheus Operator CRD schema needs Node.js")
    except SchemaUnavailableError as exc:
        # Not a failure of the stack: this machine lacks the schema. Said, not hidden.
        crd = False
        kube.warnings.append(
            f"{exc}; ServiceMonitor and PrometheusRule were checked for structure only"
        )
    kube.problems += check_kubernetes(files, require_crd_schema=crd)
    kube.detail = f"{len(files)} files"
    return [compose, kube]


def verify_stack(
    config: StackConfig,
    directory: Path,
    *,
    progress: Callable[[Step], Any] | None = None,
) -> list[Step]:
    """Run every check on the built stack in ``directory``; returns the steps."""
    bundles = collect(config)
    metrics: dict[str, str] = {}
    for bundle in bundles:
        metrics.update(bundle.metrics)
    recorded = {r.record for b in bundles for g in b.groups for r in g.recordings}
    vocab = vocabulary(config, metrics, recorded)
    steps: list[Step] = []

    def done(step: Step) -> None:
        steps.append(step)
        if progress is not None:
            progress(step)

    if not directory.is_dir():
        done(Step("output exists", [f"{directory}: no such directory; run 'glassbox stack build'"]))
        return steps
    done(_up_to_date(config, directory, bundles))
    with _copy(directory, config) as root:
        for step in _promtool(root):
            done(step)
        for step in _amtool(root, config, bundles):
            done(step)
        done(_rules(root, config, vocab))
        done(_dashboards(root, vocab))
        for step in _schemas(root):
            done(step)
    return steps
