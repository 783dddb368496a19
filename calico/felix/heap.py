"""Handing Felix's free heap back to the kernel.

glibc keeps memory that was freed inside its heaps for reuse; only a trim (`malloc_trim`)
returns the free pages. Felix's heap breathes with its work — a transaction's script, a
listing read back, a batch of datastore updates — so without trims its RSS sits at the high
tide of recent work rather than at what it holds (issue #10: a flat RSS under churn).

Two callers: libnft.py trims right after a large libnftables call, and the main loop trims
through an `IdleTrimmer` at most every `every` seconds, after work and only with nothing
queued, so the 1-10 ms a trim takes never sits in front of an update.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

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
