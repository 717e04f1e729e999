"""Shared hypothesis settings: bounded for CI, scaled up by ``GLASSBOX_FUZZ_EXAMPLES``.

``GLASSBOX_FUZZ_EXAMPLES=5000 pytest tests/robustness`` runs every fuzz test with (at
least) that many examples; without it each test runs its own small default.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def examples(default: int) -> int:
    """``default``, or ``GLASSBOX_FUZZ_EXAMPLES`` when that is larger."""
    raw = os.environ.get("GLASSBOX_FUZZ_EXAMPLES", "")
    wanted = int(raw) if raw.isdecimal() else 0
    return max(default, wanted)


def fuzz(default: int, *suppress: HealthCheck) -> settings:
    """Settings of one fuzz test: ``examples(default)`` examples, no per-example deadline
    (a loaded 2-CPU CI box is slow, not wrong), no database written into the tree;
    ``suppress`` adds health checks a test may fail on purpose."""
    return settings(
        max_examples=examples(default),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, *suppress],
    )
