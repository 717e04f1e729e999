"""Several worker processes, one ``/metrics``: totals are merged at scrape time.

Each worker keeps its aggregates in memory (the request path stays lock-free) and a
background thread writes a snapshot to ``<dir>/worker-<pid>.json`` at most every
``flush_interval`` seconds, atomically (temp file, then rename). The worker that
answers a scrape merges its live state with every other worker's snapshot. With
``process_metrics`` each snapshot also carries the worker's own ``process_*`` values
(see ``process.py`` for how they combine). The
snapshot of a worker that has died is folded into ``archive.json`` (counters and
histograms kept, gauges dropped) and removed, under a file lock, so the directory
holds one file per live worker plus the archive however often workers restart.

Counts of a worker killed with SIGKILL are kept up to its last flush. The worker that
answers a scrape writes its own snapshot first, so counters stay monotonic whichever
worker answers the next scrape.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import multiprocessing
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from glassbox.metrics._red import Exemplar, RedStore
from glassbox.metrics.business import Counter, Family, Gauge, Histogram
from glassbox.metrics.catalogue import RedCatalogue
from glassbox.metrics.process import worker_families
from glassbox.metrics.registry import Registry

__all__ = ["MultiprocessExposition", "auto_directory", "snapshot"]

DEFAULT_FLUSH_INTERVAL: Final = 1.0
_ARCHIVE: Final = "archive.json"
_LOCK: Final = ".lock"
_PREFIX: Final = "worker-"


def auto_directory() -> Path | None:
    """A shared directory when this process is a worker of gunicorn or uvicorn, else None.

    Workers of one master share ``<tmp>/glassbox-mp-<master pid>``.
    """
    master: int | None = None
    if (
        "gunicorn.arbiter" in sys.modules
        or "gunicorn.workers.base" in sys.modules
        or (multiprocessing.parent_process() is not None and "uvicorn" in sys.modules)
    ):
        master = os.getppid()
    if master is None or master < 1:  # a master may well be PID 1 (containers)
        return None
    return Path(tempfile.gettempdir()) / f"glassbox-mp-{master}"


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (guards against pid reuse), '' if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or _start_time(pid) in ("", start)


# -- snapshots ---------------------------------------------------------------------------


def snapshot(registry: Registry) -> dict[str, Any]:
    """A JSON-able copy of everything ``registry`` holds."""
    red = {}
    for prefix, store in list(registry.red.items()):
        red[prefix] = {
            "buckets": list(store.catalogue.buckets),
            "series": [[*k, row[:]] for k, row in list(store.series.items())],
            "exceptions": [[*k, n] for k, n in list(store.exceptions.items())],
            "in_progress": store.in_progress[0],
            "exemplars": [
                [*k, idx, f"{e.trace_id:032x}", f"{e.span_id:016x}", e.value, e.timestamp]
                for (k, idx), e in list(store.exemplars.items())
            ],
        }
    families = {}
    for name, fam in list(registry.families.items()):
        families[name] = {
            "type": fam.type,
            "help": fam.help,
            "labels": list(fam.labelnames),
            "mode": getattr(fam, "mode", None),
            "buckets": list(getattr(fam, "buckets", ())),
            "values": [[list(k), row[:]] for k, row in list(fam.values.items())],
        }
    return {
        "red": red,
        "families": families,
        "overflow": [[m, lab, n] for (m, lab), n in list(registry.overflow.items())],
        "info": list(registry.info) if registry.info else None,
    }


def _add_row(target: list[Any], row: list[Any]) -> None:
    for i, v in enumerate(row):
        target[i] += v


def absorb(view: Registry, snap: dict[str, Any], *, pid: int | None, gauges: bool) -> None:
    """Add ``snap`` into ``view``: counters summed, gauges combined by their mode."""
    for prefix, data in snap.get("red", {}).items():
        store = view.red.get(prefix)
        if store is None:
            store = view.red[prefix] = RedStore(RedCatalogue(prefix, tuple(data["buckets"])))
        store.merge_rows(
            {tuple(item[:3]): item[3] for item in data["series"]},
            {tuple(item[:3]): item[3] for item in data["exceptions"]},
        )
        if gauges:
            store.in_progress[0] += data.get("in_progress", 0)
            for m, r, s, idx, trace, span, value, ts in data.get("exemplars", []):
                ekey = ((m, r, s), idx)
                old = store.exemplars.get(ekey)
                if old is None or old.timestamp < ts:
                    store.exemplars[ekey] = Exemplar(int(trace, 16), int(span, 16), value, ts)
    for name, data in snap.get("families", {}).items():
        kind = data["type"]
        if kind == "gauge" and not gauges:
            continue
        fam = view.families.get(name)
        if fam is None:
            labels = list(data["labels"])
            if kind == "gauge" and data.get("mode") == "all":
                labels.append("pid")
            cls: type[Family] = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[kind]
            extra: dict[str, Any] = {"buckets": data["buckets"]} if kind == "histogram" else {}
            if kind == "gauge":
                extra["mode"] = data.get("mode") or "all"
            fam = cls(name, data["help"], labels, label_cap=1 << 30, registry=view, **extra)
            view.families[name] = fam
        mode = data.get("mode")
        for key_list, row in data["values"]:
            key = tuple(key_list)
            if kind == "gauge" and mode == "all":
                key = (*key, str(pid if pid is not None else os.getpid()))
            mine = fam.values.get(key)
            if mine is None:
                fam.values[key] = list(row)
            elif kind == "gauge" and mode == "max":
                mine[0] = max(mine[0], row[0])
            elif kind == "gauge" and mode == "min":
                mine[0] = min(mine[0], row[0])
            else:
                _add_row(mine, row)
    for metric, label, n in snap.get("overflow", []):
        view.overflow[(metric, label)] = view.overflow.get((metric, label), 0) + n
    if gauges and snap.get("info") and view.info is None:
        service, version, env = snap["info"]
        view.info = (service, version, env)


# -- the per-process writer and the scrape-time reader ---------------------------------------


class MultiprocessExposition:
    """Flushes this worker's snapshot and renders the merged view of all workers."""

    def __init__(
        self,
        registry: Registry,
        directory: Path | str,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        *,
        process_metrics: bool = False,
    ) -> None:
        self.registry = registry
        self.process_metrics = process_metrics
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.flush_interval = flush_interval
        self._last = ""
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._start_for_this_process()
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.flush)

    # -- writer ---------------------------------------------------------------------------

    def _start_for_this_process(self) -> None:
        self._pid = os.getpid()
        self._start = _start_time(self._pid)
        self._last = ""
        self._thread = threading.Thread(
            target=self._loop, name="glassbox-multiprocess", daemon=True
        )
        self._thread.start()

    def _after_fork(self) -> None:
        """A forked worker starts empty: what the parent counted belongs to the parent."""
        for store in self.registry.red.values():
            store.series.clear()
            store.exceptions.clear()
            store.exemplars.clear()
            store.in_progress[0] = 0
        for fam in self.registry.families.values():
            for row in fam.values.values():
                for i in range(len(row)):
                    row[i] = 0
        self.registry.overflow.clear()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._start_for_this_process()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            with contextlib.suppress(OSError):
                self.flush()

    @property
    def path(self) -> Path:
        return self.directory / f"{_PREFIX}{self._pid}.json"

    def flush(self) -> dict[str, Any]:
        """Write this worker's snapshot if it changed since the last write; return it.

        Snapshot and write happen under one lock, so an older snapshot can never
        replace a newer one on disk.
        """
        with self._flush_lock:
            data = snapshot(self.registry)
            if self.process_metrics:
                data["families"].update(worker_families())
            if os.getpid() != self._pid:
                return data
            data["pid"], data["start"] = self._pid, self._start
            text = json.dumps(data, separators=(",", ":"))
            if text != self._last:
                _atomic_write(self.path, text)
                self._last = text
            return data

    # -- reader ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / _LOCK, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data

    def _archive_dead(self, dead: list[Path]) -> None:
        with self._locked():
            archive_path = self.directory / _ARCHIVE
            archive = self._read(archive_path) or {"absorbed": []}
            absorbed = {tuple(x) for x in archive.get("absorbed", [])}
            view = Registry()
            absorb(view, archive, pid=None, gauges=False)
            changed = False
            for path in dead:
                data = self._read(path)
                if data is None:
                    continue
                ident = (data.get("pid"), data.get("start"))
                if ident not in absorbed:
                    absorb(view, data, pid=None, gauges=False)
                    absorbed.add(ident)
                    changed = True
            if changed:
                out = snapshot(view)
                out["absorbed"] = sorted([list(x) for x in absorbed], key=str)[-10000:]
                _atomic_write(archive_path, json.dumps(out, separators=(",", ":")))
            for path in dead:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def files(self) -> list[Path]:
        """Snapshot files of workers (this one's included), archive excluded."""
        return sorted(self.directory.glob(f"{_PREFIX}*.json"))

    merges = True
    """Building the view reads the other workers' files: run it off the event loop."""

    def render(self, openmetrics: bool) -> str:
        """Merge every worker's counts with this worker's live state and render them."""
        return self.view().render(openmetrics=openmetrics)

    def view(self) -> Registry:
        """A registry holding the merged counts of every worker, live and dead."""
        view = Registry()
        # Write what this scrape reports before reporting it: a later scrape answered
        # by another worker then reads at least these counts, so counters never go
        # backwards between scrapes that land on different workers.
        absorb(view, self.flush(), pid=os.getpid(), gauges=True)
        # The archive is read first: a worker archived after this read is still absorbed
        # below as live; one archived before it is skipped (no double count).
        archive = self._read(self.directory / _ARCHIVE)
        absorbed = {tuple(x) for x in archive.get("absorbed", [])} if archive else set()
        dead: list[Path] = []
        for path in self.files():
            pid = int(path.stem[len(_PREFIX) :]) if path.stem[len(_PREFIX) :].isdigit() else -1
            if pid == os.getpid():
                continue
            data = self._read(path)
            if data is None:
                continue
            if (data.get("pid"), data.get("start")) in absorbed:
                continue
            if pid < 0 or not _alive(pid, str(data.get("start", ""))):
                dead.append(path)
                absorb(view, data, pid=None, gauges=False)  # its counters, as archived
                continue
            absorb(view, data, pid=pid, gauges=True)
        if dead:
            self._archive_dead(dead)
        if archive is not None:  # as read above, so nothing is counted twice
            absorb(view, archive, pid=None, gauges=False)
        view.collectors = list(self.registry.collectors)
        return view


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
