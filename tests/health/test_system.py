"""The cgroup memory limit read from a cgroup filesystem laid out as the kernel does."""

from __future__ import annotations

from pathlib import Path

import pytest

from glassbox.health.checks.system import cgroup_memory_limit

GIB = 1 << 30


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.fixture
def fs(tmp_path: Path) -> tuple[Path, Path]:
    """An empty cgroup mount and /proc/self/cgroup file."""
    return tmp_path / "cgroup", tmp_path / "self-cgroup"


def test_v2_container_root(fs: tuple[Path, Path]) -> None:
    root, proc = fs
    _write(proc, "0::/")
    _write(root / "memory.max", str(2 * GIB))
    assert cgroup_memory_limit(root, proc) == 2 * GIB


def test_v2_unit_below_the_root_smallest_ancestor_wins(fs: tuple[Path, Path]) -> None:
    root, proc = fs
    _write(proc, "0::/system.slice/orders.service")
    _write(root / "system.slice" / "memory.max", str(GIB))
    _write(root / "system.slice" / "orders.service" / "memory.max", str(4 * GIB))
    assert cgroup_memory_limit(root, proc) == GIB


def test_v2_unlimited_is_none(fs: tuple[Path, Path]) -> None:
    root, proc = fs
    _write(proc, "0::/app")
    _write(root / "app" / "memory.max", "max")
    assert cgroup_memory_limit(root, proc) is None


def test_v1_own_cgroup_and_huge_unlimited_value(fs: tuple[Path, Path]) -> None:
    root, proc = fs
    _write(proc, "5:cpu,cpuacct:/x\n4:memory:/batch/job-1\n0::/")
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712")
    _write(root / "memory" / "batch" / "job-1" / "memory.limit_in_bytes", str(512 << 20))
    assert cgroup_memory_limit(root, proc) == 512 << 20


def test_v1_container_sees_its_cgroup_at_the_mount_root(fs: tuple[Path, Path]) -> None:
    # without a cgroup namespace the path names the host's hierarchy, absent in the mount
    root, proc = fs
    _write(proc, "4:memory:/docker/0123abcd")
    _write(root / "memory" / "memory.limit_in_bytes", str(3 * GIB))
    assert cgroup_memory_limit(root, proc) == 3 * GIB


def test_no_cgroup_filesystem(fs: tuple[Path, Path]) -> None:
    root, proc = fs
    assert cgroup_memory_limit(root, proc) is None
