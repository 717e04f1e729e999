"""PromQL checks of generated rules and dashboards, on the parsed expression tree.

What promtool cannot know, because it needs glassbox's catalogue:

- every metric a rule or panel reads is one the SDK, a configured exporter or a
  recording rule produces;
- ``rate``/``increase``/``irate`` are never taken of a gauge;
- both sides of every binary operation between vectors provably carry the same labels
  (both aggregated ``by`` the same labels, or matched with ``on``/``ignoring``); this
  is also what keeps numerator and denominator of every ratio grouped alike;
- every ``le`` matcher is spelled exactly as the SDK exposes it (``1.0``, not ``1``);
- alert rules: a known severity, ``for`` of at least two evaluation intervals, no
  ``$value`` in labels, a static summary, a description and a runbook link.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import promql_parser as pp

from glassbox.metrics.catalogue import le_label
from glassbox.stack.config import StackConfig, duration_seconds

__all__ = ["Vocabulary", "lint_alert", "lint_expr", "lint_recording", "vocabulary"]

_RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
_KEEP_LABELS = frozenset(
    {
        "abs", "ceil", "floor", "round", "exp", "ln", "log2", "log10", "sqrt", "clamp",
        "clamp_min", "clamp_max", "rate", "irate", "increase", "delta", "idelta", "deriv",
        "predict_linear", "resets", "changes", "sort", "sort_desc", "timestamp",
        "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
        "count_over_time", "last_over_time", "quantile_over_time", "stddev_over_time",
        "stdvar_over_time", "present_over_time", "holt_winters", "sgn",
    }
)  # fmt: skip
_SCALAR = "scalar"


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What the stack's sources emit: metric types and the ``le`` spellings per histogram."""

    types: Mapping[str, str]
    le_values: Mapping[str, frozenset[str]]
    recorded: frozenset[str]
    #: Label names of recorded series, where the recording rule's result proves them.
    recorded_labels: dict[str, frozenset[str]] = field(default_factory=dict)

    def known(self, name: str) -> bool:
        return name in self.types or name in self.recorded

    def type_of(self, name: str) -> str | None:
        if name in self.recorded:
            return "gauge"
        return self.types.get(name)


def vocabulary(
    config: StackConfig, metrics: Mapping[str, str], recorded: Iterable[str]
) -> Vocabulary:
    """Expand metric types to sample names (``_bucket``, ``_sum``, ``_count`` are counters)."""
    types: dict[str, str] = {}
    for name, kind in metrics.items():
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                types[name + suffix] = "counter"
        elif kind == "summary":
            for suffix in ("_sum", "_count"):
                types[name + suffix] = "counter"
        else:
            types[name] = kind
    types.setdefault("ALERTS", "gauge")
    le: dict[str, frozenset[str]] = {}
    for service in config.services:
        c = service.catalogue
        le[f"{c.request_duration.name}_bucket"] = frozenset(c.le_values())
        for rule in service.rules:
            if rule.metric is not None and rule.buckets is not None:
                bounds = (*(le_label(b) for b in rule.buckets), "+Inf")
                le[f"{rule.metric.metric}_bucket"] = frozenset(bounds)
    return Vocabulary(types, le, frozenset(recorded))


Labels = frozenset[str] | None | str  # a known set, unknown (None), or _SCALAR


def _labels(node: Any, problems: list[str], vocab: Vocabulary, where: str) -> Labels:
    """The label names the node's result carries, checking its children on the way."""
    if isinstance(node, pp.NumberLiteral | pp.StringLiteral):
        return _SCALAR
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr):
        return _labels(node.expr, problems, vocab, where)
    if isinstance(node, pp.VectorSelector):
        _selector(node, problems, vocab, where)
        return vocab.recorded_labels.get(node.name or "")
    if isinstance(node, pp.MatrixSelector):
        _selector(node.vector_selector, problems, vocab, where)
        return vocab.recorded_labels.get(node.vector_selector.name or "")
    if isinstance(node, pp.SubqueryExpr):
        return _labels(node.expr, problems, vocab, where)
    if isinstance(node, pp.Call):
        return _call(node, problems, vocab, where)
    if isinstance(node, pp.AggregateExpr):
        inner = _labels(node.expr, problems, vocab, where)
        if node.param is not None:
            _labels(node.param, problems, vocab, where)
        if str(node.op).lower() in ("topk", "bottomk", "limitk", "limit_ratio"):
            return inner
        modifier = node.modifier
        if modifier is None:
            return frozenset()
        if modifier.type == pp.AggModifierType.By:
            return frozenset(modifier.labels)
        return None
    if isinstance(node, pp.BinaryExpr):
        return _binary(node, problems, vocab, where)
    return None


def _selector(node: Any, problems: list[str], vocab: Vocabulary, where: str) -> None:
    name = node.name
    if name is None:
        return
    if not vocab.known(name):
        problems.append(
            f"{where}: reads {name}, which no instrumented service, configured exporter or"
            " recording rule produces"
        )
    for matcher in node.matchers.matchers:
        if matcher.name == "le" and name in vocab.le_values:
            allowed = vocab.le_values[name]
            if matcher.op == pp.MatchOp.Equal and matcher.value not in allowed:
                problems.append(
                    f'{where}: le="{matcher.value}" on {name} matches no series; the SDK'
                    f" exposes le as {', '.join(sorted(allowed, key=_le_key))}"
                )


def _le_key(value: str) -> float:
    return float("inf") if value == "+Inf" else float(value)


def _call(node: Any, problems: list[str], vocab: Vocabulary, where: str) -> Labels:
    name = node.func.name
    args = list(node.args)
    results = [_labels(arg, problems, vocab, where) for arg in args]
    if name in _RATE_FUNCTIONS and args and isinstance(args[0], pp.MatrixSelector):
        metric = args[0].vector_selector.name
        if metric is not None and vocab.type_of(metric) == "gauge":
            problems.append(
                f"{where}: {name}() of {metric}, which is a gauge; {name}() is only"
                " meaningful for counters (use deriv() or delta() for gauges)"
            )
    if name == "histogram_quantile" and len(results) == 2:
        inner = results[1]
        if isinstance(inner, frozenset):
            if "le" not in inner:
                problems.append(
                    f"{where}: histogram_quantile() over an aggregation without 'le' in"
                    " its by (...) clause returns nothing"
                )
            return inner - {"le"}
        return None
    if name == "absent":
        if args and isinstance(args[0], pp.VectorSelector):
            return frozenset(m.name for m in args[0].matchers.matchers if m.op == pp.MatchOp.Equal)
        return None
    if name == "vector":
        return frozenset()
    if name in ("scalar", "time", "pi"):
        return _SCALAR
    if name in _KEEP_LABELS:
        for result in results:
            if result != _SCALAR:
                return result
    return None


def _binary(node: Any, problems: list[str], vocab: Vocabulary, where: str) -> Labels:
    lhs = _labels(node.lhs, problems, vocab, where)
    rhs = _labels(node.rhs, problems, vocab, where)
    if lhs == _SCALAR:
        return rhs
    if rhs == _SCALAR:
        return lhs
    op = str(node.op).strip().lower()
    modifier = node.modifier
    matching = modifier.matching if modifier is not None else None
    if op == "or":
        return lhs
    if matching is not None and matching.labels:
        on = matching.type == pp.LabelModifierType.Include
        wanted = frozenset(matching.labels)
        if on:
            for side, labels in (("left", lhs), ("right", rhs)):
                if isinstance(labels, frozenset) and not wanted <= labels:
                    problems.append(
                        f"{where}: '{op} on ({', '.join(sorted(wanted))})': the {side}"
                        f" side only carries ({', '.join(sorted(labels))})"
                    )
        if op in ("and", "unless") or _is_filter(node):
            return lhs
        return wanted if on and isinstance(lhs, frozenset) else lhs
    if lhs is None or rhs is None:
        problems.append(
            f"{where}: cannot prove both sides of '{op}' carry the same labels; aggregate"
            " both with by (...) or match them with on (...)"
        )
        return lhs
    assert isinstance(lhs, frozenset)
    assert isinstance(rhs, frozenset)
    if lhs != rhs:
        problems.append(
            f"{where}: the two sides of '{op}' carry different labels,"
            f" ({', '.join(sorted(lhs))}) and ({', '.join(sorted(rhs))}), so they never"
            " match; aggregate both by the same labels"
        )
    return lhs


def _is_filter(node: Any) -> bool:
    op = str(node.op).strip()
    modifier = node.modifier
    return op in ("==", "!=", ">", "<", ">=", "<=") and not (
        modifier is not None and modifier.return_bool
    )


def lint_expr(expr: str, vocab: Vocabulary, *, where: str) -> list[str]:
    """Problems of one PromQL expression (parse errors included)."""
    return lint_recording(expr, vocab, where=where)[0]


def lint_recording(
    expr: str,
    vocab: Vocabulary,
    *,
    where: str,
    record: str | None = None,
    labels: Iterable[str] = (),
) -> tuple[list[str], frozenset[str] | None]:
    """Problems of an expression and the label names of its result.

    With ``record``, the result's labels (plus the rule's own ``labels``) are remembered
    for later expressions that read the recorded series.
    """
    try:
        tree = pp.parse(expr)
    except (ValueError, RuntimeError) as exc:
        return [f"{where}: not valid PromQL: {exc}"], None
    problems: list[str] = []
    result = _labels(tree, problems, vocab, where)
    known = result | frozenset(labels) if isinstance(result, frozenset) else None
    if record is not None and known is not None:
        vocab.recorded_labels[record] = known
    return problems, known


_TEMPLATE = re.compile(r"\{\{")


def lint_alert(rule: Mapping[str, Any], *, where: str, evaluation_interval: str) -> list[str]:
    """The alert guidelines every generated alert follows."""
    problems = []
    labels = rule.get("labels") or {}
    notes = rule.get("annotations") or {}
    if labels.get("severity") not in ("critical", "warning", "info"):
        problems.append(f"{where}: severity label must be critical, warning or info")
    for key, value in labels.items():
        if "$value" in str(value) or "{{" in str(value):
            problems.append(
                f"{where}: label {key} is templated; a label that changes with the value"
                " makes a new alert each evaluation"
            )
    interval = duration_seconds(evaluation_interval)
    held = duration_seconds(str(rule.get("for", "0s")))
    if held < 2 * interval:
        problems.append(
            f"{where}: for: {rule.get('for', '0s')} is shorter than two evaluation"
            f" intervals ({evaluation_interval}); one odd evaluation would notify"
        )
    summary = str(notes.get("summary", ""))
    if not summary or _TEMPLATE.search(summary):
        problems.append(f"{where}: the summary annotation must be static text")
    if not notes.get("description"):
        problems.append(f"{where}: the description annotation is missing")
    if not notes.get("runbook_url"):
        problems.append(f"{where}: the runbook_url annotation is missing")
    return problems
