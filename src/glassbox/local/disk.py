"""Free space under the data directory of `glassbox up`: noticed when it runs out and returns.

A disk counts as full below :data:`MIN_FREE` bytes available or with no inode left.
:class:`SpaceWatch` polls from a thread and calls ``on_change(full, free)`` on each
change, so `glassbox up` can name the directory when writes start failing there and act
once space is back.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["MIN_FREE", "SpaceWatch", "check_space", "free_bytes"]

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


class SpaceWatch:
    """Calls ``on_change(full, free_bytes)`` when the disk of ``path`` fills or empties."""

    def __init__(
        self,
        path: Path,
        on_change: Callable[[bool, int], None],
        *,
        min_free: int = MIN_FREE,
        interval: float = 0.5,
    ) -> None:
        self.path = path
        self.full = False
        self._on_change = on_change
        self._min_free = min_free
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """Look once; call ``on_change`` if the disk became full or has space again."""
        try:
            free = free_bytes(self.path)
        except OSError:
            return
        full = free < self._min_free
        if full != self.full:
            self.full = full
            self._on_change(full, free)

    def start(self) -> SpaceWatch:
        self._thread = threading.Thread(target=self._run, name="glassbox-space", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()
