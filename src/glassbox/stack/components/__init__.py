"""Components: one bundle per monitored thing (see :mod:`glassbox.stack.model`)."""

from __future__ import annotations

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
    return bundles
