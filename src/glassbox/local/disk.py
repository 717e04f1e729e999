"""Free space under the data directory of `glassbox up`.

A disk counts as full below :data:`MIN_FREE` bytes available or with no inode left.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["MIN_FREE", "check_space", "free_bytes"]

#: Fewer bytes available than this counts as a full disk.
MIN_FREE = 1024 * 1024


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes available to this user on the disk holding ``path`` (or its nearest parent).

    0 when no inode is left: no file can be created there either.
    """
    stat = os.statvfs(_existing(path))
    if stat.f_files and not stat.f_favail:
        return 0
    return stat.f_bavail * stat.f_frsize


def check_space(path: Path, what: str) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``path`` when its disk is full."""
    free = free_bytes(path)
    if free < MIN_FREE:
        raise OSError(
            errno.ENOSPC,
            f"no space left on the disk of {path} ({free // 1024} KiB free): {what}"
            " cannot start there; free some space, then start again",
        )
