"""SLO bundle: SLI recording rules, multi-window multi-burn-rate alerts, budget.

For each SLO the numerator (bad events) and the denominator (all events) are recorded
separately for every window, always aggregated ``by (service)`` and labelled with the
SLO's name, so every ratio divides series with identical labels. The alert windows and
factors are the Google SRE workbook's: page on 14.4x over 1h and 5m or 6x over 6h and
30m; ticket on 3x over 1d and 2h or 1x over 3d and 6h. Every burn-rate alert has a
minimum-traffic guard (the service's ``alerts.min_request_rate``) so a trickle of
failing requests at night does not page.
"""

from __future__ import annotations

from glassbox.metrics.catalogue import le_label
from glassbox.stack.components._cases import case, counter, expect
from glassbox.stack.config import Service, Slo, StackConfig
from glassbox.stack.model import (
    Alert,
    AlertCase,
    Bundle,
    Dashboard,
    Panel,
    Query,
    Recording,
    Row,
    RuleGroup,
    Series,
    Variable,
)

__all__ = ["ERRORS", "REQUESTS", "WINDOWS", "slo_bundle"]

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
ERRORS = "slo:sli_errors:rate{window}"
REQUESTS = "slo:sli_requests:rate{window}"
BUDGET_REMAINING = "slo:error_budget_remaining:ratio"
OBJECTIVE = "slo:objective:ratio"
#: (severity, long window, short window, burn-rate factor, for)
PAGE = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
TICKET = (("1d", "2h", 3.0), ("3d", "6h", 1.0))


def _sli(service: Service, slo: Slo, window: str) -> tuple[str, str]:
    """(bad-events rate, all-events rate) expressions over ``window``."""
    c = service.catalogue
    sel = f'service="{service.name}"'
    if slo.kind == "availability":
        total = c.requests_total.name
        all_rate = f"sum by (service) (rate({total}{{{sel}}}[{window}]))"
        # a service without a single 5xx has an error rate of 0, not none: without the
        # `or`, the budget and burn-rate series vanish exactly when all is well
        return (
            f'sum by (service) (rate({total}{{{sel},status=~"5.."}}[{window}]))'
            f" or 0 * {all_rate}",
            all_rate,
        )
    assert slo.threshold is not None
    duration = c.request_duration.name
    le = le_label(slo.threshold)
    return (
        f"sum by (service) (rate({duration}_count{{{sel}}}[{window}]))"
        f' - sum by (service) (rate({duration}_bucket{{{sel},le="{le}"}}[{window}]))',
        f"sum by (service) (rate({duration}_count{{{sel}}}[{window}]))",
    )


def _recordings(service: Service, slo: Slo) -> RuleGroup:
    labels = (("slo", slo.name),)
    rules: list[Recording] = []
    for window in WINDOWS:
        bad, total = _sli(service, slo, window)
        rules.append(Recording(ERRORS.format(window=window), bad, labels))
        rules.append(Recording(REQUESTS.format(window=window), total, labels))
    sel = f'service="{service.name}", slo="{slo.name}"'
    rules.append(
        Recording(
            BUDGET_REMAINING,
            f"1 - (sum_over_time({ERRORS.format(window='5m')}{{{sel}}}[{slo.window}])"
            f" / sum_over_time({REQUESTS.format(window='5m')}{{{sel}}}[{slo.window}]))"
            f" / {slo.error_budget}",
            labels,
        )
    )
    rules.append(
        Recording(OBJECTIVE, f"vector({slo.objective / 100})", (("service", service.name), *labels))
    )
    return RuleGroup(f"{service.name}-slo-{slo.name}", tuple(rules))


def _ratio(window: str, sel: str) -> str:
    return f"{ERRORS.format(window=window)}{{{sel}}} / {REQUESTS.format(window=window)}{{{sel}}}"


def _burn_expr(service: Service, slo: Slo, pairs: tuple[tuple[str, str, float], ...]) -> str:
    sel = f'service="{service.name}", slo="{slo.name}"'
    guard = service.alerts.min_request_rate
    parts = []
    for long, short, factor in pairs:
        limit = round(factor * slo.error_budget, 10)
        parts.append(
            f"(({_ratio(long, sel)}) > {limit} and ({_ratio(short, sel)}) > {limit}"
            f" and on (service, slo) {REQUESTS.format(window=long)}{{{sel}}} >= {guard})"
        )
    return "\n  or\n".join(parts)


def _traffic(
    service: Service, slo: Slo, total: int, bad: int, minutes: int, step: int = 1
) -> list[Series]:
    """``total`` requests a minute of which ``bad`` violate the SLO, sampled every ``step``."""
    total, bad, minutes = total * step, bad * step, minutes // step
    c = service.catalogue
    lab = {
        "service": service.name,
        "instance": "127.0.0.1:8000",
        "job": service.name,
        "method": "GET",
        "route": "/items",
    }
    if slo.kind == "availability":
        return [
            counter(c.requests_total.name, total - bad, minutes, status="200", **lab),
            counter(c.requests_total.name, bad, minutes, status="500", **lab),
        ]
    assert slo.threshold is not None
    duration = c.request_duration.name
    out = []
    for bound in (*c.buckets, float("inf")):
        le = "+Inf" if bound == float("inf") else le_label(bound)
        count = total - bad if bound <= slo.threshold else total
        out.append(counter(f"{duration}_bucket", count, minutes, le=le, status="200", **lab))
    out.append(counter(f"{duration}_count", total, minutes, status="200", **lab))
    return out


def _cases(service: Service, slo: Slo, page: bool) -> tuple[AlertCase, ...]:
    budget = slo.error_budget
    total = 100_000
    exp = {"service": service.name, "slo": slo.name}
    if page:
        bad = min(round(total * 0.9), round(total * budget * 20))
        minutes, at, step = 90, 75, 1
    else:
        bad = round(total * budget * 4.5)  # between the 3x ticket and the 6x page factors
        # three days of samples: one every 10 minutes keeps promtool fast (2h is the
        # shortest window of the ticket alert)
        minutes, at, step = 74 * 60, 73 * 60, 10
    guard_per_min = service.alerts.min_request_rate * 60
    cases = [
        case(
            "burning fast enough" if page else "burning slowly",
            _traffic(service, slo, total, bad, minutes, step),
            at // step,
            expect(bad / total, **exp),
            step=step * 60,
        ),
        case(
            "within budget",
            _traffic(service, slo, total, round(total * budget / 2), minutes, step),
            at // step,
            step=step * 60,
        ),
    ]
    if guard_per_min >= 2:
        trickle = int(guard_per_min // 2)
        cases.append(
            case(
                "a trickle of failing requests does not page",
                _traffic(service, slo, trickle, trickle // 2 or 1, minutes, step),
                at // step,
                step=step * 60,
            )
        )
    return tuple(cases)


def _alerts(config: StackConfig, service: Service, slo: Slo) -> RuleGroup:
    target = f"{slo.objective:g}%"
    kind = (
        "5xx responses"
        if slo.kind == "availability"
        else (f"requests slower than {le_label(slo.threshold or 0)} s")
    )
    alerts = (
        Alert(
            "SLOErrorBudgetBurnFast",
            _burn_expr(service, slo, PAGE),
            "2m",
            "critical",
            "The service burns its error budget fast",
            f"{{{{ $labels.service }}}} SLO {{{{ $labels.slo }}}} ({target} over {slo.window}):"
            f" {{{{ $value | humanizePercentage }}}} {kind} over the last hour burns the"
            " monthly error budget in about two days.",
            labels=(("slo", slo.name),),
            cases=_cases(service, slo, page=True),
            expr_labels=("service", "slo"),
        ),
        Alert(
            "SLOErrorBudgetBurnSlow",
            _burn_expr(service, slo, TICKET),
            "15m",
            "warning",
            "The service burns its error budget faster than it can afford",
            f"{{{{ $labels.service }}}} SLO {{{{ $labels.slo }}}} ({target} over {slo.window}):"
            f" {{{{ $value | humanizePercentage }}}} {kind} over the last day; the budget"
            " will run out before the window ends.",
            labels=(("slo", slo.name),),
            cases=_cases(service, slo, page=False),
            expr_labels=("service", "slo"),
        ),
    )
    return RuleGroup(f"{service.name}-slo-{slo.name}-alerts", alerts)


def _dashboard(config: StackConfig) -> Dashboard:
    sel = 'service=~"$service", slo=~"$slo"'
    return Dashboard(
        uid="glassbox-slo",
        title="SLOs: error budget and burn rates",
        variables=(
            Variable("service", "service", OBJECTIVE),
            Variable("slo", "slo", f'{OBJECTIVE}{{service=~"$service"}}'),
        ),
        rows=(
            Row(
                "Error budget",
                (
                    Panel(
                        "Error budget remaining",
                        (Query(f"{BUDGET_REMAINING}{{{sel}}}", "{{service}} {{slo}}"),),
                        unit="percentunit",
                        kind="stat",
                        thresholds=((0.25, "orange"), (0.5, "green")),
                    ),
                    Panel(
                        "Objective",
                        (Query(f"{OBJECTIVE}{{{sel}}}", "{{service}} {{slo}}"),),
                        unit="percentunit",
                        kind="stat",
                    ),
                ),
            ),
            Row(
                "Burn rates (1 = spending the budget exactly over the window)",
                tuple(
                    Panel(
                        f"Burn rate over {window}",
                        (
                            Query(
                                f"({_ratio(window, sel)})"
                                f" / on (service, slo) (1 - {OBJECTIVE}{{{sel}}})",
                                "{{service}} {{slo}}",
                            ),
                        ),
                        unit="short",
                        thresholds=((factor, "red"),),
                        width=6,
                    )
                    for window, factor in (("5m", 14.4), ("1h", 14.4), ("6h", 6.0), ("3d", 1.0))
                ),
            ),
        ),
    )


def slo_bundle(config: StackConfig) -> Bundle | None:
    """Rules, alerts and the SLO dashboard for every SLO of every service."""
    groups: list[RuleGroup] = []
    for service in config.services:
        for slo in service.slos:
            groups.append(_recordings(service, slo))
            groups.append(_alerts(config, service, slo).labelled(service.labels))
    if not groups:
        return None
    return Bundle(name="slo", groups=tuple(groups), dashboards=(_dashboard(config),))
