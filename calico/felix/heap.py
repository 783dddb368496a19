"""Handing Felix's free heap back to the kernel.

glibc keeps memory that was freed inside its heaps for reuse; only a trim (`malloc_trim`)
returns the free pages. Felix's heap breathes with its work — a transaction's script, a
listing read back, a batch of datastore updates — so without trims its RSS sits at the high
tide of recent work rather than at what it holds (issue #10: a flat RSS under churn).

Two callers: libnft.py trims right after a large libnftables call, and the main loop trims
through an `IdleTrimmer` at most every `every` seconds, after work and only with nothing
queued, so the 1-10 ms a trim takes never sits in front of an update.

`HeapProfiler` is Felix's `DebugMemoryProfilePath`: as in Calico, SIGUSR1 writes a heap profile
to that path ("<timestamp>" in it replaced by the time). Ours is a `tracemalloc` snapshot
(`tracemalloc.Snapshot.load(path)`; two of them show what grew with
`newer.compare_to(older, "traceback")`). Tracing starts when Felix starts, only when the path
is set: it slows allocation and costs memory, so it is a debugging aid, not a default.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import time
import tracemalloc
from collections.abc import Callable

log = logging.getLogger(__name__)

_trim: Callable[[int], int] | None = None


def trim() -> None:
    """glibc's malloc_trim(0): every arena returns its free pages. A no-op without glibc."""
    global _trim
    if _trim is None:
        _trim = getattr(ctypes.CDLL(None), "malloc_trim", None) or (lambda pad: 0)
    _trim(0)


class IdleTrimmer:
    """`worked()` after each apply; `maybe_trim()` when the loop is about to wait."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 trim: Callable[[], None] = trim) -> None:
        self.every, self._clock, self._trim = every, clock, trim
        self._dirty = False
        self._last = clock()

    def worked(self) -> None:
        self._dirty = True

    def maybe_trim(self) -> bool:
        now = self._clock()
        if not self._dirty or self.every <= 0 or now - self._last < self.every:
            return False
        self._trim()
        self._dirty, self._last = False, now
        return True


class HeapProfiler:
    """Tracing from `start()`; `dump()` writes a snapshot to the configured path."""

    FRAMES = 8  # enough to tell which structure of the calc graph or dataplane holds it

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.path, self._clock = path, clock

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.FRAMES)
        log.info("Tracing the heap; SIGUSR1 writes a profile to %s", self.path)

    def file_name(self) -> str:
        stamp = time.strftime("%Y-%m-%d-%H:%M:%S", time.localtime(self._clock()))
        return self.path.replace("<timestamp>", stamp, 1)

    def dump(self) -> str | None:
        """Write the snapshot; returns its file name, or None (logged) if it could not."""
        name = self.file_name()
        before = tracemalloc.get_traced_memory()[0]
        unreachable = gc.collect()  # profile what is live, not garbage awaiting a collection
        snapshot = tracemalloc.take_snapshot()
        traced, peak = tracemalloc.get_traced_memory()
        try:
            directory = os.path.dirname(name)
            if directory:
                os.makedirs(directory, exist_ok=True)
            snapshot.dump(name)
        except OSError as err:
            log.error("Could not write the heap profile to %s: %s", name, err)
            return None
        top = snapshot.statistics("lineno")[:5]
        log.info("Wrote a heap profile to %s: %.1f MiB traced (peak %.1f MiB), %.1f MiB "
                 "before collecting %d unreachable objects; largest: %s",
                 name, traced / 2**20, peak / 2**20, before / 2**20, unreachable,
                 "; ".join(f"{s.traceback[0].filename}:{s.traceback[0].lineno} "
                           f"{s.size / 1024:.0f} KiB" for s in top))
        return name
