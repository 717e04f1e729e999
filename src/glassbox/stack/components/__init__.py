"""Components: one bundle per monitored thing (see :mod:`glassbox.stack.model`)."""

from __future__ import annotations

from collections import Counter

from glassbox.exceptions import ConfigurationError
from glassbox.stack.components.dependencies import dependency_bundle
from glassbox.stack.components.monitoring import monitoring_bundle
from glassbox.stack.components.service import service_bundle
from glassbox.stack.components.slo import slo_bundle
from glassbox.stack.config import StackConfig
from glassbox.stack.model import Bundle

__all__ = ["collect"]


def collect(
    config: StackConfig,
    *,
    prometheus_target: str = "localhost:9090",
    alertmanager_targets: tuple[str, ...] = ("alertmanager:9093",),
) -> list[Bundle]:
    """Every bundle of the stack, in a stable order."""
    bundles = [service_bundle(config, s).labelled(s.labels) for s in config.services]
    slo = slo_bundle(config)
    if slo is not None:
        bundles.append(slo)
    bundles += [dependency_bundle(config, d).labelled(d.labels) for d in config.dependencies]
    bundles.append(
        monitoring_bundle(
            config,
            prometheus_target=prometheus_target,
            alertmanager_targets=alertmanager_targets,
        )
    )
    _own_names_are_free(config, bundles)
    return bundles


def _own_names_are_free(config: StackConfig, bundles: list[Bundle]) -> None:
    """A ``[[services.rules]]`` alert or ``[[services.recordings]]`` name is not a generated one."""
    alerts = Counter(a.name for b in bundles for a in b.alerts)
    records = Counter(r.record for b in bundles for g in b.groups for r in g.recordings)
    own = Counter(r.name for s in config.services for r in s.recordings)
    for s, service in enumerate(config.services):
        for i, rule in enumerate(service.rules):
            if alerts[rule.name] > 1:
                raise ConfigurationError(
                    f"services[{s}].rules[{i}].name: {rule.name} is the name of an alert"
                    " glassbox generates; choose another name"
                )
        for i, recording in enumerate(service.recordings):
            if records[recording.name] > own[recording.name]:
                raise ConfigurationError(
                    f"services[{s}].recordings[{i}].name: {recording.name} is the name of a"
                    " recording rule glassbox generates; choose another name"
                )
