"""The service bundle: scrape job, RED recording rules, service alerts, dashboards.

The service's own ``[[services.rules]]`` and ``[[services.recordings]]`` join its rule
groups (see :mod:`glassbox.stack.components.service_rules`).

Everything is written against the metric catalogue of the service's SDK
(:class:`~glassbox.metrics.catalogue.RedCatalogue`): names follow its namespace and
every ``le`` value is spelled exactly as the SDK exposes it.
"""

from __future__ import annotations

from glassbox.metrics.catalogue import (
    PROCESS_MEMORY_LIMIT,
    PROCESS_METRICS,
    SERVICE_INFO,
    le_label,
)
from glassbox.metrics.registry import OVERFLOW_METRIC
from glassbox.stack.components._cases import case, const, counter, expect, samples
from glassbox.stack.components.service_rules import custom_rules, overflow_alert, overflow_panel
from glassbox.stack.config import Service, StackConfig, duration_seconds
from glassbox.stack.model import (
    Alert,
    Bundle,
    Dashboard,
    Panel,
    Query,
    Recording,
    Row,
    RuleGroup,
    ScrapeJob,
    Series,
    Variable,
)

__all__ = ["service_bundle", "token_file"]

QUANTILES = (0.5, 0.95, 0.99)


def token_file(service: Service) -> str:
    """Where Prometheus reads the service's /metrics bearer token (relative to its config)."""
    return f"secrets/{service.name}_metrics_token"


def _q(quantile: float) -> str:
    return f"p{round(quantile * 100)}"


class _Names:
    """Recording-rule names of one service's metric prefix and rate window."""

    def __init__(self, service: Service) -> None:
        c = service.catalogue
        self.c = c
        p = c.prefix
        w = service.alerts.window
        self.window = w
        self.sel = f'service="{service.name}"'
        self.requests = f"service:{p}_requests:rate{w}"
        self.errors = f"service:{p}_request_errors:rate{w}"
        self.error_ratio = f"service:{p}_request_error_ratio:rate{w}"
        self.route_requests = f"service_route:{p}_requests:rate{w}"
        self.route_errors = f"service_route:{p}_request_errors:rate{w}"
        self.route_error_ratio = f"service_route:{p}_request_error_ratio:rate{w}"

    def latency(self, quantile: float, by: str = "service") -> str:
        return f"{by}:{self.c.prefix}_request_duration_seconds:{_q(quantile)}_{self.window}"


def _recordings(service: Service, n: _Names) -> list[Recording]:
    c = n.c
    w = n.window
    total, bucket = c.requests_total.name, f"{c.request_duration.name}_bucket"
    rules: list[Recording] = []
    for by, requests, errors, ratio in (
        ("service", n.requests, n.errors, n.error_ratio),
        ("service, route", n.route_requests, n.route_errors, n.route_error_ratio),
    ):
        rules += [
            Recording(requests, f"sum by ({by}) (rate({total}{{{n.sel}}}[{w}]))"),
            # no 5xx is an error rate of 0, not an absent series (a ratio panel with
            # "No data" when all is well reads as broken)
            Recording(
                errors,
                f'sum by ({by}) (rate({total}{{{n.sel},status=~"5.."}}[{w}]))'
                f" or 0 * sum by ({by}) (rate({total}{{{n.sel}}}[{w}]))",
            ),
            # Numerator and denominator carry the same labels: one-to-one division.
            Recording(ratio, f"{errors} / {requests}"),
        ]
    for by, level in (("service", "service"), ("service, route", "service_route")):
        for quantile in QUANTILES:
            rules.append(
                Recording(
                    n.latency(quantile, level),
                    f"histogram_quantile({quantile}, sum by ({by}, le)"
                    f" (rate({bucket}{{{n.sel}}}[{w}])))",
                )
            )
    return rules


def _labels(service: Service, instance: str = "127.0.0.1:8000") -> dict[str, str]:
    return {"service": service.name, "instance": instance, "job": service.name}


def _traffic(service: Service, ok: float, errors: float, count: int) -> list[Series]:
    """Requests per sample: ``ok`` answered 200, ``errors`` answered 500."""
    total = service.catalogue.requests_total.name
    lab = {**_labels(service), "method": "GET", "route": "/items"}
    out = [counter(total, ok, count, status="200", **lab)]
    if errors:
        out.append(counter(total, errors, count, status="500", **lab))
    return out


def _latency_traffic(
    service: Service, per_sample: float, seconds_above: float | None, count: int
) -> list[Series]:
    """Requests whose durations all fall in the bucket just above ``seconds_above``.

    ``None`` puts every request in the first bucket (fast).
    """
    c = service.catalogue
    bucket = f"{c.request_duration.name}_bucket"
    lab = {**_labels(service), "method": "GET", "route": "/items", "status": "200"}
    bounds = [*c.buckets, float("inf")]
    first = (
        0 if seconds_above is None else next(i for i, b in enumerate(bounds) if b > seconds_above)
    )
    out = []
    for i, bound in enumerate(bounds):
        le = "+Inf" if bound == float("inf") else le_label(bound)
        out.append(counter(bucket, per_sample if i >= first else 0, count, le=le, **lab))
    out.append(counter(c.requests_total.name, per_sample, count, **lab))
    return out


def _quantile_value(service: Service, quantile: float, seconds_above: float) -> float:
    """What histogram_quantile gives when every request is in the bucket above ``seconds_above``."""
    bounds = list(service.catalogue.buckets)
    upper_index = next(i for i, b in enumerate(bounds) if b > seconds_above)
    upper = bounds[upper_index]
    lower = bounds[upper_index - 1] if upper_index else 0.0
    return lower + (upper - lower) * quantile


class _Timing:
    """Sample step and evaluation points of the promtool cases of one service.

    Samples come ``step`` seconds apart (a fifth of the rate window, at most a minute),
    and a case is evaluated once the window is full and the alert's ``for`` has passed.
    """

    def __init__(self, service: Service) -> None:
        window = duration_seconds(service.alerts.window)
        self.step = max(1, min(60, int(window // 5)))
        self.window = samples(window, self.step)

    def at(self, held: str) -> int:
        """The sample at which an alert held ``held`` has fired (with margin)."""
        return self.window + samples(duration_seconds(held), self.step) + 3

    def length(self, held: str) -> int:
        return self.at(held) + 5


def _alerts(config: StackConfig, service: Service, n: _Names, custom: list[Alert]) -> RuleGroup:
    s = service.name
    a = service.alerts
    c = n.c
    t = _Timing(service)
    step = t.step
    up_lab = {"service": s, "instance": "127.0.0.1:8000", "job": s}
    guard = f"and on (service) {n.requests}{{{n.sel}}} >= {a.min_request_rate}"
    # requests per sample, half the guard's rate
    slow = a.min_request_rate * step / 2
    # per 1000 requests a sample: half-way between the threshold and 100 %, and a fifth
    failing = round(1000 * (1 + a.error_ratio) / 2)
    failing_ok = int(1000 * a.error_ratio / 5)
    guarded = a.min_request_rate > 0
    err_at, err_len = t.at(a.error_for), t.length(a.error_for)
    alerts: list[Alert] = [
        Alert(
            "ServiceDown",
            f"max by (service) (up{{{n.sel}}}) == 0",
            a.down_for,
            "critical",
            "Every instance of the service is down",
            f"No instance of {{{{ $labels.service }}}} has answered a scrape for {a.down_for}.",
            cases=(
                case(
                    "all instances down",
                    [const("up", 0, t.length(a.down_for), **up_lab)],
                    t.at(a.down_for),
                    expect(0, service=s),
                    step=step,
                ),
                case(
                    "up",
                    [const("up", 1, t.length(a.down_for), **up_lab)],
                    t.at(a.down_for),
                    step=step,
                ),
            ),
            expr_labels=("service",),
        ),
        Alert(
            "ServiceInstanceDown",
            f"max by (service, instance) (up{{{n.sel}}}) == 0",
            a.instance_down_for,
            "warning",
            "An instance of the service is down",
            "{{ $labels.instance }} of {{ $labels.service }} has not answered a scrape"
            f" for {a.instance_down_for}.",
            cases=(
                case(
                    "one instance down",
                    [
                        const("up", 0, t.length(a.instance_down_for), **up_lab),
                        const(
                            "up",
                            1,
                            t.length(a.instance_down_for),
                            **{**up_lab, "instance": "127.0.0.1:8001"},
                        ),
                    ],
                    t.at(a.instance_down_for),
                    expect(0, service=s, instance="127.0.0.1:8000"),
                    step=step,
                ),
                case(
                    "up",
                    [const("up", 1, t.length(a.instance_down_for), **up_lab)],
                    t.at(a.instance_down_for),
                    step=step,
                ),
            ),
            expr_labels=("service", "instance"),
        ),
        Alert(
            "ServiceAbsent",
            f"absent(up{{{n.sel}}})",
            a.absent_for,
            "critical",
            "Prometheus has no target for the service",
            f"Prometheus has had no scrape target for {{{{ $labels.service }}}} for"
            f" {a.absent_for}; check service discovery and the scrape configuration.",
            cases=(
                case(
                    "no target",
                    [
                        const(
                            "up", 1, t.length(a.absent_for), service="other", instance="x", job="o"
                        )
                    ],
                    t.at(a.absent_for),
                    expect(1, service=s),
                    step=step,
                ),
                case(
                    "target present",
                    [const("up", 1, t.length(a.absent_for), **up_lab)],
                    t.at(a.absent_for),
                    step=step,
                ),
            ),
            expr_labels=("service",),
        ),
        Alert(
            "ServiceHighErrorRatio",
            f"{n.error_ratio}{{{n.sel}}} > {a.error_ratio} {guard}",
            a.error_for,
            a.error_severity,
            "The service answers too many requests with 5xx",
            "{{ $labels.service }} answered {{ $value | humanizePercentage }} of requests"
            f" with a 5xx status over {a.window} (threshold {a.error_ratio * 100:g}%).",
            cases=(
                case(
                    "errors above the threshold",
                    _traffic(service, 1000 - failing, failing, err_len),
                    err_at,
                    expect(failing / 1000, service=s),
                    step=step,
                ),
                case(
                    "errors below the threshold",
                    _traffic(service, 1000 - failing_ok, failing_ok, err_len),
                    err_at,
                    step=step,
                ),
                *(
                    (
                        case(
                            "a trickle of failing requests does not page",
                            _traffic(service, slow / 2, slow / 2, err_len),
                            err_at,
                            step=step,
                        ),
                    )
                    if guarded
                    else ()
                ),
            ),
            expr_labels=("service",),
        ),
    ]
    for lat in a.latency:
        threshold = lat.threshold
        name = f"ServiceLatency{_q(lat.quantile).upper()}High"
        value = _quantile_value(service, lat.quantile, threshold)
        at, length = t.at(lat.for_), t.length(lat.for_)
        alerts.append(
            Alert(
                name,
                f"{n.latency(lat.quantile)}{{{n.sel}}} > {threshold} {guard}",
                lat.for_,
                lat.severity,
                f"The service's {_q(lat.quantile)} latency is above its threshold",
                f"{_q(lat.quantile)} latency of {{{{ $labels.service }}}} is"
                f" {{{{ $value | humanizeDuration }}}} over {a.window}"
                f" (threshold {le_label(threshold)} s).",
                cases=(
                    case(
                        "slow requests",
                        _latency_traffic(service, 600, threshold, length),
                        at,
                        expect(value, service=s),
                        step=step,
                    ),
                    case(
                        "fast requests", _latency_traffic(service, 600, None, length), at, step=step
                    ),
                    *(
                        (
                            case(
                                "a trickle of slow requests",
                                _latency_traffic(service, slow, threshold, length),
                                at,
                                step=step,
                            ),
                        )
                        if guarded
                        else ()
                    ),
                ),
                expr_labels=("service",),
            )
        )
    busy = a.saturation_in_progress * 2
    alerts.append(
        Alert(
            "ServiceSaturated",
            f"sum by (service) ({c.in_progress.name}{{{n.sel}}}) > {a.saturation_in_progress}",
            a.saturation_for,
            "warning",
            "The service has many requests in progress",
            "{{ $labels.service }} has had {{ $value | humanize }} requests in progress"
            f" for {a.saturation_for} (threshold {a.saturation_in_progress}).",
            cases=(
                case(
                    "saturated",
                    [const(c.in_progress.name, busy, t.length(a.saturation_for), **up_lab)],
                    t.at(a.saturation_for),
                    expect(busy, service=s),
                    step=step,
                ),
                case(
                    "idle",
                    [const(c.in_progress.name, 1, t.length(a.saturation_for), **up_lab)],
                    t.at(a.saturation_for),
                    step=step,
                ),
            ),
            expr_labels=("service",),
        )
    )
    rss = PROCESS_METRICS[0].name
    limit_metric = PROCESS_MEMORY_LIMIT.name
    at_limit = 2**30
    if a.memory_limit_bytes is not None:
        limit_expr = str(a.memory_limit_bytes)
        limit_series: list[Series] = []
        at_limit = a.memory_limit_bytes
    else:
        # the container's own limit, which the SDK exports where one is set: no limit,
        # no series, no alert
        limit_expr = f"max by (service, instance) ({limit_metric}{{{n.sel}}})"
        limit_series = [const(limit_metric, at_limit, t.length(a.memory_for), **up_lab)]
    memory_cases = [
        case(
            "at the limit",
            [const(rss, at_limit, t.length(a.memory_for), **up_lab), *limit_series],
            t.at(a.memory_for),
            expect(1.0, service=s, instance="127.0.0.1:8000"),
            step=step,
        ),
        case(
            "well below",
            [const(rss, at_limit / 4, t.length(a.memory_for), **up_lab), *limit_series],
            t.at(a.memory_for),
            step=step,
        ),
    ]
    if a.memory_limit_bytes is None:
        memory_cases.append(
            case(
                "no limit set",
                [const(rss, at_limit * 4, t.length(a.memory_for), **up_lab)],
                t.at(a.memory_for),
                step=step,
            )
        )
    alerts.append(
        Alert(
            "ServiceMemoryNearLimit",
            f"max by (service, instance) ({rss}{{{n.sel}}}) / {limit_expr} > {a.memory_ratio}",
            a.memory_for,
            "warning",
            "An instance of the service is close to its memory limit",
            "{{ $labels.instance }} of {{ $labels.service }} uses"
            " {{ $value | humanizePercentage }} of its memory limit.",
            cases=tuple(memory_cases),
            expr_labels=("service", "instance"),
        )
    )
    status = "health_check_status"
    unhealthy = f'min by (service, check) ({status}{{{n.sel}, critical!="false"}}) == 0'
    degraded = (
        f"min by (service, check) ({status}{{{n.sel}}}) == 0.5"
        f' or min by (service, check) ({status}{{{n.sel}, critical="false"}}) == 0'
    )

    def health(value: float, critical: str, check: str, held: str) -> Series:
        return const(status, value, t.length(held), check=check, critical=critical, **up_lab)

    held = a.dependency_for
    alerts.append(
        Alert(
            "DependencyUnhealthy",
            unhealthy,
            held,
            "critical",
            "A dependency of the service fails its health check",
            "Critical health check {{ $labels.check }} of {{ $labels.service }} has failed"
            f" for {held}; readiness is failing.",
            cases=(
                case(
                    "critical check failing",
                    [health(0, "true", "database", held)],
                    t.at(held),
                    expect(0, service=s, check="database"),
                    step=step,
                ),
                case(
                    "a non-critical check failing does not page",
                    [health(0, "false", "llm-api", held), health(1, "true", "database", held)],
                    t.at(held),
                    step=step,
                ),
            ),
            expr_labels=("service", "check"),
        )
    )
    held = a.degraded_for
    alerts.append(
        Alert(
            "DependencyDegraded",
            degraded,
            held,
            "warning",
            "A dependency of the service is degraded",
            "Health check {{ $labels.check }} of {{ $labels.service }} has reported"
            f" degraded, or failed without being critical, for {held}.",
            cases=(
                case(
                    "check degraded",
                    [health(0.5, "true", "llm-api", held)],
                    t.at(held),
                    expect(0.5, service=s, check="llm-api"),
                    step=step,
                ),
                case(
                    "non-critical check failing",
                    [health(0, "false", "llm-api", held)],
                    t.at(held),
                    expect(0, service=s, check="llm-api"),
                    step=step,
                ),
                case(
                    "checks passing",
                    [health(1, "true", "database", held), health(1, "false", "llm-api", held)],
                    t.at(held),
                    step=step,
                ),
            ),
            expr_labels=("service", "check"),
        )
    )
    if service.business_metrics:
        # every label of a business metric is capped (label_cap in the SDK)
        alerts.append(overflow_alert(service))
    return RuleGroup(f"{s}-alerts", (*alerts, *custom))


def _dashboards(service: Service, n: _Names) -> tuple[Dashboard, ...]:
    c = n.c
    s = service.name
    sel = f'service="{s}", instance=~"$instance"'
    total, duration = c.requests_total.name, c.request_duration.name
    rate = "$__rate_interval"
    variables = (Variable("instance", "instance", f'up{{service="{s}"}}'),)
    quantiles = tuple(
        Query(
            f"histogram_quantile({q}, sum by (le) (rate({duration}_bucket{{{sel}}}[{rate}])))",
            _q(q),
        )
        for q in QUANTILES
    )
    overview = Dashboard(
        uid=f"glassbox-{s}-overview"[:40],
        title=f"{s}: service overview",
        variables=variables,
        rows=(
            Row(
                "Traffic and errors",
                (
                    Panel(
                        "Request rate",
                        (Query(f"sum by (status) (rate({total}{{{sel}}}[{rate}]))", "{{status}}"),),
                        unit="reqps",
                    ),
                    Panel(
                        "5xx error ratio",
                        (
                            Query(
                                f'(sum(rate({total}{{{sel}, status=~"5.."}}[{rate}]))'
                                f" or 0 * sum(rate({total}{{{sel}}}[{rate}])))"
                                f" / sum(rate({total}{{{sel}}}[{rate}]))",
                                "5xx ratio",
                            ),
                        ),
                        unit="percentunit",
                        thresholds=((service.alerts.error_ratio, "red"),),
                    ),
                ),
            ),
            Row(
                "Latency and saturation",
                (
                    Panel("Latency p50 / p95 / p99", quantiles, unit="s"),
                    Panel(
                        "Requests in progress",
                        (Query(f"sum({c.in_progress.name}{{{sel}}})", "in progress"),),
                        unit="short",
                    ),
                    Panel(
                        "Targets up",
                        (Query(f"sum(up{{{sel}}})", "up"),),
                        unit="short",
                        kind="stat",
                        width=6,
                    ),
                    Panel(
                        "Version",
                        (Query(f"{SERVICE_INFO.name}{{{sel}}}", "{{version}} {{env}}"),),
                        unit="short",
                        kind="stat",
                        width=6,
                    ),
                    Panel(
                        "Health checks",
                        (Query(f"min by (check) (health_check_status{{{sel}}})", "{{check}}"),),
                        unit="short",
                        kind="stat",
                        width=12,
                        thresholds=((0.5, "orange"), (1, "green")),
                    ),
                ),
            ),
        ),
    )
    rsel = f'{sel}, route=~"$route"'
    routes = Dashboard(
        uid=f"glassbox-{s}-routes"[:40],
        title=f"{s}: per route",
        variables=(*variables, Variable("route", "route", f'{total}{{service="{s}"}}')),
        rows=(
            Row(
                "Per route",
                (
                    Panel(
                        "Request rate by route",
                        (Query(f"sum by (route) (rate({total}{{{rsel}}}[{rate}]))", "{{route}}"),),
                        unit="reqps",
                    ),
                    Panel(
                        "5xx ratio by route",
                        (
                            Query(
                                f"(sum by (route)"
                                f' (rate({total}{{{rsel}, status=~"5.."}}[{rate}]))'
                                f" or 0 * sum by (route) (rate({total}{{{rsel}}}[{rate}])))"
                                f" / sum by (route) (rate({total}{{{rsel}}}[{rate}]))",
                                "{{route}}",
                            ),
                        ),
                        unit="percentunit",
                    ),
                    Panel(
                        "p95 latency by route",
                        (
                            Query(
                                f"histogram_quantile(0.95, sum by (route, le)"
                                f" (rate({duration}_bucket{{{rsel}}}[{rate}])))",
                                "{{route}}",
                            ),
                        ),
                        unit="s",
                    ),
                    Panel(
                        "Exceptions by route",
                        (
                            Query(
                                f"sum by (route, exception_type)"
                                f" (rate({c.exceptions.name}{{{rsel}}}[{rate}]))",
                                "{{route}} {{exception_type}}",
                            ),
                        ),
                        unit="reqps",
                    ),
                ),
            ),
        ),
    )
    out = [overview, routes]
    if service.business_metrics:
        panels = []
        for metric in service.business_metrics:
            by = ", ".join(metric.by)
            how = metric.aggregate if metric.kind == "gauge" else "sum"
            group = f"{how} by ({by})" if by else how
            legend = " ".join(f"{{{{{label}}}}}" for label in metric.by) or metric.name
            if metric.kind == "counter":
                expr = f"{group} (rate({metric.name}{{{sel}}}[{rate}]))"
                unit = metric.unit if metric.unit != "short" else "ops"
            elif metric.kind == "gauge":
                expr = f"{group} ({metric.name}{{{sel}}})"
                unit = metric.unit
            else:
                inner = f"{by}, le" if by else "le"
                expr = (
                    f"histogram_quantile(0.95, sum by ({inner})"
                    f" (rate({metric.name}_bucket{{{sel}}}[{rate}])))"
                )
                unit = metric.unit
            panels.append(Panel(metric.title or metric.name, (Query(expr, legend),), unit=unit))
        panels.append(overflow_panel(sel))
        out.append(
            Dashboard(
                uid=f"glassbox-{s}-business"[:40],
                title=f"{s}: business metrics",
                variables=variables,
                rows=(Row("Business metrics", tuple(panels)),),
            )
        )
    return tuple(out)


def service_bundle(config: StackConfig, service: Service) -> Bundle:
    """The scrape job, rules, alerts and dashboards of one instrumented service."""
    n = _Names(service)
    job = ScrapeJob(
        name=service.name,
        targets=service.targets,
        metrics_path=service.metrics_path,
        scheme=service.scheme,
        labels=(("service", service.name),),
        credentials_file=token_file(service) if service.metrics_token else None,
        scrape_interval=service.scrape_interval,
    )
    metrics: dict[str, str] = {spec.name: spec.type for spec in service.catalogue.all}
    metrics[SERVICE_INFO.name] = SERVICE_INFO.type
    metrics.update(
        {
            "health_check_status": "gauge",
            "health_check_duration_seconds": "histogram",
            **{spec.name: spec.type for spec in (*PROCESS_METRICS, PROCESS_MEMORY_LIMIT)},
            OVERFLOW_METRIC: "counter",
            "up": "gauge",
        }
    )
    for metric in service.business_metrics:
        metrics[metric.name] = metric.kind
    red = _recordings(service, n)
    recordings, alerts = custom_rules(service, step=_Timing(service).step, recorded=red)
    return Bundle(
        name=f"service-{service.name}",
        jobs=(job,),
        groups=(
            RuleGroup(f"{service.name}-recording", (*red, *recordings)),
            _alerts(config, service, n, alerts),
        ),
        dashboards=_dashboards(service, n),
        metrics=metrics,
    )
