"""Errors raised by glassbox.

::

    GlassboxError
     └── ConfigurationError          bad settings, names or arguments, raised at set-up
          ├── MetricNameError        a metric or label name Prometheus would reject
          └── DuplicateMetricError   two registrations of one name that disagree

Set-up errors always name what is wrong, where, and how to fix it. Nothing on the
request path raises a glassbox error: a fault there is counted, never propagated.
"""

from __future__ import annotations


class GlassboxError(Exception):
    """Base class of every glassbox error."""


class ConfigurationError(GlassboxError, ValueError):
    """A setting, name or argument is invalid; raised at set-up time."""


class MetricNameError(ConfigurationError):
    """A metric or label name does not match Prometheus' naming rules."""


class DuplicateMetricError(ConfigurationError):
    """A metric name was registered twice with a different type, labels or buckets."""
