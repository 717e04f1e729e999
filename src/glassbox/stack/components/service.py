"""The service bundle: scrape job, RED recording rules, service alerts, dashboards.

Everything is written against the metric catalogue of the service's SDK
(:class:`~glassbox.metrics.catalogue.RedCatalogue`): names follow its namespace and
every ``le`` value is spelled exactly as the SDK exposes it.
"""

from __future__ import annotations

from glassbox.metrics.catalogue import SERVICE_INFO, le_label
from glassbox.stack.components._cases import case, const, counter, expect
from glassbox.stack.config import Service, StackConfig
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
    """Recording-rule names of one service's metric prefix."""

    def __init__(self, service: Service) -> None:
        c = service.catalogue
        self.c = c
        p = c.prefix
        self.sel = f'service="{service.name}"'
        self.requests = f"service:{p}_requests:rate5m"
        self.errors = f"service:{p}_request_errors:rate5m"
        self.error_ratio = f"service:{p}_request_error_ratio:rate5m"
        self.route_requests = f"service_route:{p}_requests:rate5m"
        self.route_errors = f"service_route:{p}_request_errors:rate5m"
        self.route_error_ratio = f"service_route:{p}_request_error_ratio:rate5m"

    def latency(self, quantile: float, by: str = "service") -> str:
        return f"{by}:{self.c.prefix}_request_duration_seconds:{_q(quantile)}_5m"


def _recordings(service: Service, n: _Names) -> RuleGroup:
    c = n.c
    total, bucket = c.requests_total.name, f"{c.request_duration.name}_bucket"
    rules: list[Recording] = []
    for by, requests, errors, ratio in (
        ("service", n.requests, n.errors, n.error_ratio),
        ("service, route", n.route_requests, n.route_errors, n.route_error_ratio),
    ):
        rules += [
            Recording(requests, f"sum by ({by}) (rate({total}{{{n.sel}}}[5m]))"),
            Recording(errors, f'sum by ({by}) (rate({total}{{{n.sel},status=~"5.."}}[5m]))'),
            # Numerator and denominator carry the same labels: one-to-one division.
            Recording(ratio, f"{errors} / {requests}"),
        ]
    for by, level in (("service", "service"), ("service, route", "service_route")):
        for quantile in QUANTILES:
            rules.append(
                Recording(
                    n.latency(quantile, level),
                    f"histogram_quantile({quantile}, sum by ({by}, le)"
                    f" (rate({bucket}{{{n.sel}}}[5m])))",
                )
            )
    return RuleGroup(f"{service.name}-recording", tuple(rules))


def _labels(service: Service, instance: str = "127.0.0.1:8000") -> dict[str, str]:
    return {"service": service.name, "instance": instance, "job": service.name}


def _traffic(
    service: Service, ok_per_min: float, errors_per_min: float, minutes: int
) -> list[Series]:
    total = service.catalogue.requests_total.name
    lab = _labels(service)
    out = [counter(total, ok_per_min, minutes, method="GET", route="/items", status="200", **lab)]
    if errors_per_min:
        out.append(
            counter(
                total, errors_per_min, minutes, method="GET", route="/items", status="500", **lab
            )
        )
    return out


def _latency_traffic(
    service: Service, per_min: float, seconds_above: float | None, minutes: int
) -> list[Series]:
    """Requests whose durations all fall in the bucket just above ``seconds_above``.

    ``None`` puts every request in the first bucket (fast).
    """
    c = service.catalogue
    bucket = f"{c.request_duration.name}_bucket"
    lab = {**_labels(service), "method": "GET", "route": "/items", "status": "200"}
    bounds = [*c.buckets, float("inf")]
    if seconds_above is None:
        first = 0
    else:
        first = next(i for i, b in enumerate(bounds) if b > seconds_above)
    out = []
    for i, bound in enumerate(bounds):
        le = "+Inf" if bound == float("inf") else le_label(bound)
        out.append(counter(bucket, per_min if i >= first else 0, minutes, le=le, **lab))
    out.append(counter(c.requests_total.name, per_min, minutes, **lab))
    return out


def _quantile_value(service: Service, quantile: float, seconds_above: float) -> float:
    """What histogram_quantile gives when every request is in the bucket above ``seconds_above``."""
    bounds = list(service.catalogue.buckets)
    upper_index = next(i for i, b in enumerate(bounds) if b > seconds_above)
    upper = bounds[upper_index]
    lower = bounds[upper_index - 1] if upper_index else 0.0
    return lower + (upper - lower) * quantile


def _alerts(config: StackConfig, service: Service, n: _Names) -> RuleGroup:
    s = service.name
    a = service.alerts
    c = n.c
    up_lab = {"service": s, "instance": "127.0.0.1:8000", "job": s}
    guard = f"and on (service) {n.requests}{{{n.sel}}} >= {a.min_request_rate}"
    slow_rate = a.min_request_rate * 60 / 2  # per minute, below the guard
    # per 1000 requests a minute: half-way between the threshold and 100 %, and a fifth
    failing = round(1000 * (1 + a.error_ratio) / 2)
    failing_ok = int(1000 * a.error_ratio / 5)
    trickle = (
        (
            case(
                "a trickle of failing requests does not page",
                _traffic(service, slow_rate / 2, slow_rate / 2, 30),
                25,
            ),
        )
        if a.min_request_rate > 0
        else ()
    )
    alerts: list[Alert] = [
        Alert(
            "ServiceDown",
            f"max by (service) (up{{{n.sel}}}) == 0",
            "2m",
            "critical",
            "Every instance of the service is down",
            "No instance of {{ $labels.service }} has answered a scrape for 2 minutes.",
            cases=(
                case("all instances down", [const("up", 0, 10, **up_lab)], 5, expect(0, service=s)),
                case("up", [const("up", 1, 10, **up_lab)], 5),
            ),
            expr_labels=("service",),
        ),
        Alert(
            "ServiceInstanceDown",
            f"max by (service, instance) (up{{{n.sel}}}) == 0",
            "5m",
            "warning",
            "An instance of the service is down",
            "{{ $labels.instance }} of {{ $labels.service }} has not answered a scrape"
            " for 5 minutes.",
            cases=(
                case(
                    "one instance down",
                    [
                        const("up", 0, 10, **up_lab),
                        const("up", 1, 10, **{**up_lab, "instance": "127.0.0.1:8001"}),
                    ],
                    8,
                    expect(0, service=s, instance="127.0.0.1:8000"),
                ),
                case("up", [const("up", 1, 10, **up_lab)], 8),
            ),
            expr_labels=("service", "instance"),
        ),
        Alert(
            "ServiceAbsent",
            f"absent(up{{{n.sel}}})",
            "5m",
            "critical",
            "Prometheus has no target for the service",
            "Prometheus has had no scrape target for {{ $labels.service }} for 5 minutes;"
            " check service discovery and the scrape configuration.",
            cases=(
                case(
                    "no target",
                    [const("up", 1, 10, service="other", instance="x", job="o")],
                    8,
                    expect(1, service=s),
                ),
                case("target present", [const("up", 1, 10, **up_lab)], 8),
            ),
            expr_labels=("service",),
        ),
        Alert(
            "ServiceHighErrorRatio",
            f"{n.error_ratio}{{{n.sel}}} > {a.error_ratio} {guard}",
            a.error_for,
            "critical",
            "The service answers too many requests with 5xx",
            "{{ $labels.service }} answered {{ $value | humanizePercentage }} of requests"
            f" with a 5xx status over 5 minutes (threshold {a.error_ratio * 100:g}%).",
            cases=(
                case(
                    "errors above the threshold",
                    _traffic(service, 1000 - failing, failing, 30),
                    25,
                    expect(failing / 1000, service=s),
                ),
                case(
                    "errors below the threshold",
                    _traffic(service, 1000 - failing_ok, failing_ok, 30),
                    25,
                ),
                *trickle,
            ),
            expr_labels=("service",),
        ),
    ]
    for lat in a.latency:
        threshold = lat.threshold
        name = f"ServiceLatency{_q(lat.quantile).upper()}High"
        value = _quantile_value(service, lat.quantile, threshold)
        alerts.append(
            Alert(
                name,
                f"{n.latency(lat.quantile)}{{{n.sel}}} > {threshold} {guard}",
                lat.for_,
                lat.severity,
                f"The service's {_q(lat.quantile)} latency is above its threshold",
                f"{_q(lat.quantile)} latency of {{{{ $labels.service }}}} is"
                " {{ $value | humanizeDuration }} over 5 minutes"
                f" (threshold {le_label(threshold)} s).",
                cases=(
                    case(
                        "slow requests",
                        _latency_traffic(service, 600, threshold, 40),
                        35,
                        expect(value, service=s),
                    ),
                    case("fast requests", _latency_traffic(service, 600, None, 40), 35),
                    *(
                        (
                            case(
                                "a trickle of slow requests",
                                _latency_traffic(service, slow_rate, threshold, 40),
                                35,
                            ),
                        )
                        if a.min_request_rate > 0
                        else ()
                    ),
                ),
                expr_labels=("service",),
            )
        )
    alerts.append(
        Alert(
            "ServiceSaturated",
            f"sum by (service) ({c.in_progress.name}{{{n.sel}}}) > {a.saturation_in_progress}",
            "10m",
            "warning",
            "The service has many requests in progress",
            "{{ $labels.service }} has had {{ $value | humanize }} requests in progress"
            f" for 10 minutes (threshold {a.saturation_in_progress}).",
            cases=(
                case(
                    "saturated",
                    [const(c.in_progress.name, a.saturation_in_progress * 2, 20, **up_lab)],
                    15,
                    expect(a.saturation_in_progress * 2, service=s),
                ),
                case("idle", [const(c.in_progress.name, 1, 20, **up_lab)], 15),
            ),
            expr_labels=("service",),
        )
    )
    if a.memory_limit_bytes is not None:
        limit = a.memory_limit_bytes
        alerts.append(
            Alert(
                "ServiceMemoryNearLimit",
                f"max by (service, instance) (process_resident_memory_bytes{{{n.sel}}})"
                f" / {limit} > {a.memory_ratio}",
                "10m",
                "warning",
                "An instance of the service is close to its memory limit",
                "{{ $labels.instance }} of {{ $labels.service }} uses"
                " {{ $value | humanizePercentage }} of its memory limit.",
                cases=(
                    case(
                        "near the limit",
                        [const("process_resident_memory_bytes", limit, 20, **up_lab)],
                        15,
                        expect(1.0, service=s, instance="127.0.0.1:8000"),
                    ),
                    case(
                        "well below",
                        [const("process_resident_memory_bytes", limit / 4, 20, **up_lab)],
                        15,
                    ),
                ),
                expr_labels=("service", "instance"),
            )
        )
    alerts += [
        Alert(
            "DependencyUnhealthy",
            f"min by (service, check) (health_check_status{{{n.sel}}}) == 0",
            "2m",
            "critical",
            "A dependency of the service fails its health check",
            "Health check {{ $labels.check }} of {{ $labels.service }} has failed for"
            " 2 minutes; readiness is failing.",
            cases=(
                case(
                    "check failing",
                    [const("health_check_status", 0, 10, check="database", **up_lab)],
                    5,
                    expect(0, service=s, check="database"),
                ),
                case(
                    "check passing",
                    [const("health_check_status", 1, 10, check="database", **up_lab)],
                    5,
                ),
            ),
            expr_labels=("service", "check"),
        ),
        Alert(
            "DependencyDegraded",
            f"min by (service, check) (health_check_status{{{n.sel}}}) == 0.5",
            "10m",
            "warning",
            "A dependency of the service is degraded",
            "Health check {{ $labels.check }} of {{ $labels.service }} has reported"
            " degraded (warn) for 10 minutes.",
            cases=(
                case(
                    "check degraded",
                    [const("health_check_status", 0.5, 20, check="llm-api", **up_lab)],
                    15,
                    expect(0.5, service=s, check="llm-api"),
                ),
                case(
                    "check passing",
                    [const("health_check_status", 1, 20, check="llm-api", **up_lab)],
                    15,
                ),
            ),
            expr_labels=("service", "check"),
        ),
    ]
    return RuleGroup(f"{s}-alerts", tuple(alerts))


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
                                f'sum(rate({total}{{{sel}, status=~"5.."}}[{rate}]))'
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
                                f'sum by (route) (rate({total}{{{rsel}, status=~"5.."}}[{rate}]))'
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
                                f"sum by (route, exception) (rate({c.exceptions.name}{{{rsel}}}"
                                f"[{rate}]))",
                                "{{route}} {{exception}}",
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
            group = f"sum by ({by})" if by else "sum"
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
    )
    metrics: dict[str, str] = {spec.name: spec.type for spec in service.catalogue.all}
    metrics[SERVICE_INFO.name] = SERVICE_INFO.type
    metrics.update(
        {
            "health_check_status": "gauge",
            "health_check_duration_seconds": "histogram",
            "process_resident_memory_bytes": "gauge",
            "process_cpu_seconds_total": "counter",
            "up": "gauge",
        }
    )
    for metric in service.business_metrics:
        metrics[metric.name] = metric.kind
    return Bundle(
        name=f"service-{service.name}",
        jobs=(job,),
        groups=(_recordings(service, n), _alerts(config, service, n)),
        dashboards=_dashboards(service, n),
        metrics=metrics,
    )
