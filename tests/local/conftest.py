"""What the local-stack tests need: Prometheus and Alertmanager binaries."""

from __future__ import annotations

import shutil

import pytest

needs_stack = pytest.mark.skipif(
    shutil.which("prometheus") is None
    or (shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")) is None,
    reason="Prometheus and Alertmanager come from ./scripts/setup.sh",
)
