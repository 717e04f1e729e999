"""Writing a file so that readers see the old text or the new, never half of it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, text: str, *, parents: bool = False) -> None:
    """Write ``text`` through a temporary file beside ``path``, then rename it over ``path``.

    ``parents`` creates missing directories first. On failure the temporary file is
    removed and an OSError whose ``strerror`` names ``path`` is raised.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
