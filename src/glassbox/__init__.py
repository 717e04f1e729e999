"""glassbox: one call makes a Python web service observable.

>>> import glassbox
>>> app = glassbox.instrument(app, service="orders")  # doctest: +SKIP
"""

from glassbox._instrument import Instrumentation, instrument
from glassbox._settings import Settings
from glassbox._version import __version__
from glassbox.exceptions import (
    ConfigurationError,
    DuplicateMetricError,
    GlassboxError,
    MetricNameError,
)
from glassbox.metrics.business import Counter, Gauge, Histogram
from glassbox.metrics.client import instrument_client
from glassbox.metrics.registry import REGISTRY, Registry

__all__ = [
    "REGISTRY",
    "ConfigurationError",
    "Counter",
    "DuplicateMetricError",
    "Gauge",
    "GlassboxError",
    "Histogram",
    "Instrumentation",
    "MetricNameError",
    "Registry",
    "Settings",
    "__version__",
    "instrument",
    "instrument_client",
]
