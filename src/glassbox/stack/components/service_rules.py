"""The service's own rules: ``[[services.rules]]``, ``[[services.recordings]]``, label overflow.

Each custom rule becomes recording rules named ``level:metric:operations`` (the level
is ``service`` plus the rule's ``by`` labels, ``service_tool_name``) and one alert on
them, with promtool cases generated from the rule's own values: one that fires, one
that stays quiet and, where the rule has a ``min_rate`` guard, a trickle of traffic
that stays quiet too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from glassbox.exceptions import ConfigurationError
from glassbox.metrics.catalogue import le_label
from glassbox.metrics.registry import OVERFLOW_METRIC
from glassbox.stack.components._cases import case, samples
from glassbox.stack.config import Selector, Service, ServiceRule, duration_seconds
from glassbox.stack.model import Alert, AlertCase, Expected, Panel, Query, Recording, Series

__all__ = ["OVERFLOW_WINDOW", "custom_rules", "overflow_alert", "overflow_panel"]

#: The increase window and the hold time of BusinessLabelOverflow.
OVERFLOW_WINDOW = "15m"

Labels = Mapping[str, str]


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _series(name: str, labels: Labels, values: str) -> Series:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return Series(f"{name}{{{inner}}}", values)


def _grow(name: str, labels: Labels, per_sample: float, count: int) -> Series:
    return _series(name, labels, f"0+{_fmt(per_sample)}x{count}")


def _expect(value: float, labels: Labels) -> Expected:
    return Expected(tuple(sorted(labels.items())), value)


def _other(*values: str) -> str:
    """A label value different from each of ``values``."""
    return next(v for v in ("other", "another", "a_third") if v not in values)


def _matching(selector: Selector) -> dict[str, str]:
    """Label values that satisfy every matcher of the selector."""
    return {m.label: m.value if m.op == "=" else _other(m.value) for m in selector.matchers}


def _pq(quantile: float) -> str:
    return "p" + f"{quantile * 100:g}".replace(".", "_")


class _Rule:
    """Names, selectors and test labels of one custom rule."""

    def __init__(self, service: Service, rule: ServiceRule) -> None:
        self.rule = rule
        self.service = service.name
        self.window = service.alerts.window
        self.group = ", ".join(("service", *rule.by))
        self.level = "_".join(("service", *rule.by))
        self.sel = f'{{service="{service.name}"}}'
        #: The labels of the test series (``by`` labels take the value ``a``).
        self.base = {
            "service": service.name,
            "instance": "127.0.0.1:8000",
            "job": service.name,
            **{label: "a" for label in rule.by},
        }

    def rate(self, selector: Selector) -> Recording:
        """The per-second rate of a counter selector, summed by service and ``by``."""
        part = selector.metric.removesuffix("_total")
        for m in selector.matchers:
            value = re.sub(r"[^a-zA-Z0-9_]", "_", m.value)
            part += f"_{m.label}_{'not_' if m.op == '!=' else ''}{value}"
        return Recording(
            f"{self.level}:{part}:rate{self.window}",
            f"sum by ({self.group}) (rate({selector.promql(self.service)}[{self.window}]))",
        )

    def alert_labels(self, labels: Labels) -> dict[str, str]:
        return {k: labels[k] for k in ("service", *self.rule.by)}

    @property
    def where(self) -> str:
        """Who the description is about: the service and the ``by`` labels."""
        by = ", ".join(f"{label}={{{{ $labels.{label} }}}}" for label in self.rule.by)
        return "{{ $labels.service }}" + (f" ({by})" if by else "")


class _Timing:
    """Sample step and evaluation points, as for the service's other alerts."""

    def __init__(self, service: Service, step: int) -> None:
        self.step = step
        self.window = samples(duration_seconds(service.alerts.window), step)

    def at(self, held: str) -> int:
        """The sample at which an alert held ``held`` has fired (with margin)."""
        return self.window + samples(duration_seconds(held), self.step) + 3


def _ratio(r: _Rule, timing: _Timing) -> tuple[list[Recording], Alert]:
    rule = r.rule
    step, at = timing.step, timing.at(rule.for_)
    assert rule.numerator is not None
    assert rule.denominator is not None
    num, den = rule.numerator, rule.denominator
    t, guard = rule.threshold, rule.min_rate or 0.0
    num_rec, den_rec = r.rate(num), r.rate(den)
    expr = f"{num_rec.record}{r.sel} / {den_rec.record}{r.sel} > {t}"
    if guard:
        expr += f" and on ({r.group}) {den_rec.record}{r.sel} >= {guard}"
    length = at + 5
    bad_labels = {**r.base, **_matching(num)}
    if num.metric == den.metric:
        # the numerator is a part of the denominator: bad events match both, good
        # events match the denominator and fail a matcher of the numerator
        narrow = num.narrowing(den)
        assert narrow is not None
        wide = den.matcher(narrow.label)
        good_labels = {
            **r.base,
            **_matching(den),
            narrow.label: narrow.value
            if narrow.op == "!="
            else _other(narrow.value, *([wide.value] if wide else [])),
        }

        def traffic(total: float, bad: float) -> list[Series]:
            out = [_grow(num.metric, bad_labels, bad, length)]
            if total > bad:
                out.append(_grow(den.metric, good_labels, total - bad, length))
            return out
    else:
        den_labels = {**r.base, **_matching(den)}

        def traffic(total: float, bad: float) -> list[Series]:
            return [
                _grow(num.metric, bad_labels, bad, length),
                _grow(den.metric, den_labels, total, length),
            ]

    # events per sample: well above the guard, failing half-way between t and 100 %
    total = max(1000.0, 4 * guard * step)
    failing = total * (1 + t) / 2
    cases = [
        case(
            "ratio above the threshold",
            traffic(total, failing),
            at,
            _expect(failing / total, r.alert_labels(bad_labels)),
            step=step,
        ),
        case("ratio below the threshold", traffic(total, total * t / 5), at, step=step),
    ]
    if guard:
        slow = guard * step / 2
        cases.append(
            case(
                "a trickle of events below min_rate does not fire",
                traffic(slow, slow),
                at,
                step=step,
            )
        )
    alert = Alert(
        rule.name,
        expr,
        rule.for_,
        rule.severity,
        rule.summary or f"{num} / {den} is above {t * 100:g}%",
        f"{r.where}: {num} / {den} is {{{{ $value | humanizePercentage }}}} over"
        f" {r.window} (threshold {t * 100:g}%"
        + (f", at {guard:g}/s or more of {den})." if guard else ")."),
        cases=tuple(cases),
        expr_labels=("service", *rule.by),
    )
    return [num_rec, den_rec], alert


def _rate(r: _Rule, timing: _Timing) -> tuple[list[Recording], Alert]:
    rule = r.rule
    assert rule.metric is not None
    metric, t = rule.metric, rule.threshold
    step, at = timing.step, timing.at(rule.for_)
    rec = r.rate(metric)
    labels = {**r.base, **_matching(metric)}
    firing = r.alert_labels(labels)
    fast = 2 * t if t > 0 else 1.0
    description = (
        f"{r.where}: {metric} increases at {{{{ $value | humanize }}}}/s over {r.window}"
        f" (threshold {t:g}/s)."
    )
    cases: list[AlertCase]
    if rule.kind == "rate_above":
        expr = f"{rec.record}{r.sel} > {t}"
        summary = f"{metric} increases faster than {t:g} per second"
        length = at + 5
        cases = [
            case(
                "rate above the threshold",
                [_grow(metric.metric, labels, fast * step, length)],
                at,
                _expect(fast, firing),
                step=step,
            ),
            case(
                "rate below the threshold",
                [_grow(metric.metric, labels, t / 2 * step, length)],
                at,
                step=step,
            ),
        ]
    else:
        expr = f"{rec.record}{r.sel} < {t}"
        summary = f"{metric} increases slower than {t:g} per second"
        if not rule.by:
            # one expected series: its absence is a stop too (with by, Prometheus
            # cannot tell which group went missing)
            expr += f" or absent({rec.record}{r.sel}) * 0"
            description += " No series at all counts as 0/s."
        # grows fast for a window, then stops; evaluated once the stop is held
        grow = timing.window
        stop = at + grow
        length = stop + 5
        stopped = _series(
            metric.metric,
            labels,
            f"0+{_fmt(fast * step)}x{grow} {_fmt(fast * step * grow)}x{length - grow}",
        )
        cases = [
            case("the counter stops increasing", [stopped], stop, _expect(0, firing), step=step),
            case(
                "rate above the threshold",
                [_grow(metric.metric, labels, fast * step, length)],
                stop,
                step=step,
            ),
        ]
        if not rule.by:
            up = _series(
                "up", {k: r.base[k] for k in ("service", "instance", "job")}, f"1x{length}"
            )
            cases.append(
                case(
                    "the counter has no series",
                    [up],
                    stop,
                    _expect(0, {"service": r.service}),
                    step=step,
                )
            )
    alert = Alert(
        rule.name,
        expr,
        rule.for_,
        rule.severity,
        rule.summary or summary,
        description,
        cases=tuple(cases),
        expr_labels=("service", *rule.by),
    )
    return [rec], alert


def _quantile(r: _Rule, timing: _Timing) -> tuple[list[Recording], Alert]:
    rule = r.rule
    step, at = timing.step, timing.at(rule.for_)
    assert rule.metric is not None
    assert rule.quantile is not None
    assert rule.buckets is not None
    metric, q, t, guard = rule.metric, rule.quantile, rule.threshold, rule.min_rate or 0.0
    name = metric.metric
    w = r.window
    rec = Recording(
        f"{r.level}:{name}:{_pq(q)}_{w}",
        f"histogram_quantile({q}, sum by ({r.group}, le)"
        f" (rate({metric.promql(r.service, '_bucket')}[{w}])))",
    )
    recs = [rec]
    expr = f"{rec.record}{r.sel} > {t}"
    if guard:
        count = Recording(
            f"{r.level}:{name}_count:rate{w}",
            f"sum by ({r.group}) (rate({metric.promql(r.service, '_count')}[{w}]))",
        )
        recs.append(count)
        expr += f" and on ({r.group}) {count.record}{r.sel} >= {guard}"
    labels = {**r.base, **_matching(metric)}
    bounds = [*rule.buckets, float("inf")]
    length = at + 5

    def observations(per_sample: float, slow: bool) -> list[Series]:
        """Every observation in the bucket just above ``t`` (slow) or in the first one."""
        first = next(i for i, b in enumerate(bounds) if b > t) if slow else 0
        out = [
            _grow(
                f"{name}_bucket",
                {**labels, "le": "+Inf" if b == float("inf") else le_label(b)},
                per_sample if i >= first else 0,
                length,
            )
            for i, b in enumerate(bounds)
        ]
        out.append(_grow(f"{name}_count", labels, per_sample, length))
        return out

    upper = next(b for b in rule.buckets if b > t)
    value = t + (upper - t) * q  # linear interpolation inside the bucket above t
    per_sample = max(600.0, 4 * guard * step)
    cases = [
        case(
            "slow observations",
            observations(per_sample, slow=True),
            at,
            _expect(value, r.alert_labels(labels)),
            step=step,
        ),
        case("fast observations", observations(per_sample, slow=False), at, step=step),
    ]
    if guard:
        cases.append(
            case(
                "a trickle of slow observations below min_rate does not fire",
                observations(guard * step / 2, slow=True),
                at,
                step=step,
            )
        )
    alert = Alert(
        rule.name,
        expr,
        rule.for_,
        rule.severity,
        rule.summary or f"{_pq(q).replace('_', '.')} of {name} is above {le_label(t)} s",
        f"{r.where}: {_pq(q).replace('_', '.')} of {metric} is"
        f" {{{{ $value | humanizeDuration }}}} over {w} (threshold {le_label(t)} s).",
        cases=tuple(cases),
        expr_labels=("service", *rule.by),
    )
    return recs, alert


def custom_rules(
    service: Service, *, step: int, recorded: Sequence[Recording] = ()
) -> tuple[list[Recording], list[Alert]]:
    """Recordings and alerts of the service's ``[[services.rules]]`` and ``recordings``.

    A rate already recorded, by ``recorded`` (the service's generated recordings) or by
    another rule, is read from that recording rule. ``step`` is the sample step of the
    service's other promtool cases.
    """
    timing = _Timing(service, step)
    known = {rec.record: rec.expr for rec in recorded}
    new: list[Recording] = []
    alerts: list[Alert] = []
    for i, rule in enumerate(service.rules):
        make = {"ratio": _ratio, "quantile_above": _quantile}.get(rule.kind, _rate)
        recs, alert = make(_Rule(service, rule), timing)
        for rec in recs:
            seen = known.get(rec.record)
            if seen is None:
                known[rec.record] = rec.expr
                new.append(rec)
            elif seen != rec.expr:
                raise ConfigurationError(
                    f"service {service.name}: rules[{i}] ({rule.name}) records {rec.record} as"
                    f" {rec.expr}, which is already recorded as {seen}; change the selector"
                )
        alerts.append(alert)
    new += [Recording(r.name, r.expr) for r in service.recordings]
    return new, alerts


def overflow_alert(service: Service) -> Alert:
    """BusinessLabelOverflow: values of a capped business-metric label are being folded.

    Held as long as its window, so it notifies when the folding goes on, and each
    notification names the metric and the label.
    """
    s = service.name
    w = for_ = OVERFLOW_WINDOW
    step = 60
    at = samples(2 * duration_seconds(w), step) + 3
    length = at + 5
    labels = {
        "service": s,
        "instance": "127.0.0.1:8000",
        "job": s,
        "metric": "orders_total",
        "label": "customer_id",
    }
    firing = {k: labels[k] for k in ("service", "metric", "label")}
    return Alert(
        "BusinessLabelOverflow",
        f'sum by (service, metric, label) (increase({OVERFLOW_METRIC}{{service="{s}"}}[{w}])) > 0',
        for_,
        "warning",
        "A business-metric label has reached its cap",
        "{{ $labels.service }} folded values of label {{ $labels.label }} of"
        " {{ $labels.metric }} into __overflow__ ({{ $value | humanize }} times in"
        f" {w}): the label has more distinct values than its cap. Keep unbounded values"
        " (ids, raw paths) out of metric labels; put them in logs or traces.",
        cases=(
            case(
                "values are being folded",
                [_grow(OVERFLOW_METRIC, labels, 2, length)],
                at,
                _expect(2 * duration_seconds(w) / step, firing),
                step=step,
            ),
            case(
                "an old overflow no longer grows",
                [_series(OVERFLOW_METRIC, labels, f"40x{length}")],
                at,
                step=step,
            ),
        ),
        expr_labels=("service", "metric", "label"),
    )


def overflow_panel(selector: str) -> Panel:
    """The business dashboard's panel of folded label values.

    The SDK exposes the counter only once a value was folded, so no series reads as 0.
    """
    rate = f"rate({OVERFLOW_METRIC}{{{selector}}}[$__rate_interval])"
    return Panel(
        "Label values folded into __overflow__",
        (Query(f"sum by (metric, label) ({rate}) or vector(0)", "{{metric}} {{label}}"),),
        unit="ops",
        description="Above zero: a label of a business metric has more distinct values than"
        " its cap, and the excess is counted under __overflow__ (alert BusinessLabelOverflow).",
    )
