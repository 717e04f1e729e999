"""Each reference system's glassbox.toml loads, builds and passes `glassbox stack verify`."""

from __future__ import annotations

from pathlib import Path

import pytest

from glassbox.stack.build import render_stack, write_stack
from glassbox.stack.config import load_config
from glassbox.stack.verify import verify_stack
from tests.local.conftest import needs_stack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SYSTEMS = sorted(p.parent.name for p in EXAMPLES.glob("*/glassbox.toml"))


def test_all_five_reference_systems_have_a_config() -> None:
    assert SYSTEMS == ["ai-assistant", "automation-orchestrator", "kalki", "kato", "keiko"]


@needs_stack
@pytest.mark.parametrize("system", SYSTEMS)
def test_example_stack_verifies(system: str, tmp_path: Path) -> None:
    config = load_config(EXAMPLES / system / "glassbox.toml")
    directory = tmp_path / "monitoring"
    write_stack(render_stack(config), directory)
    failed = {s.name: s.problems for s in verify_stack(config, directory) if not s.ok}
    assert failed == {}
