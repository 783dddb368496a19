"""Handing Felix's free heap back to the kernel.

glibc keeps memory that was freed inside its heaps for reuse; only a trim (`malloc_trim`)
returns the free pages. Felix's heap breathes with its work — a transaction's script, a
listing read back, a batch of datastore updates — so without trims its RSS sits at the high
tide of recent work rather than at what it holds (issue #10: a flat RSS under churn).

Two callers: libnft.py trims right after a large libnftables call, and the main loop trims
through an `IdleTrimmer` at most every `every` seconds, after work and only with nothing
queued, so the 1-10 ms a trim takes never sits in front of an update.

`compact` keeps Felix's sets and dicts near the size of what they hold. CPython never shrinks a
set or dict when members leave, and churn (one member out, a new one in) leaves dummies that
make the table grow at its next resize: a set of 60 churned endpoints settles at about 8 KiB
where a fresh one of the same 60 takes 2 KiB. The calc graph's match sets, the IP sets'
member counts and the nft table's set elements call it after removing members.

`HeapProfiler` is Felix's `DebugMemoryProfilePath`: as in Calico, SIGUSR1 writes a heap profile
to that path ("<timestamp>" in it replaced by the time). Ours is a `tracemalloc` snapshot
(`tracemalloc.Snapshot.load(path)`; two of them show what grew with
`newer.compare_to(older, "traceback")`). Tracing starts when Felix starts, only when the path
is set: it slows allocation and costs memory, so it is a debugging aid, not a default.

`tune_gc` sets the cyclic collector for a large, long-lived heap (Felix's `main` calls it once
its modules are loaded).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import sys
import time
import tracemalloc
from collections.abc import Callable

log = logging.getLogger(__name__)

SPARSE = 1.5  # compact when a container takes this many times what a compacted one would

# (set or dict, str members?, bit length of the length) -> bytes above which a container of
# that many members counts as sparse: SPARSE x a compacted one of the bucket's largest length.
_limits: dict[tuple[type, bool, int], int] = {}

_trim: Callable[[int], int] | None = None


def trim() -> None:
    """glibc's malloc_trim(0): every arena returns its free pages. A no-op without glibc."""
    global _trim
    if _trim is None:
        _trim = getattr(ctypes.CDLL(None), "malloc_trim", None) or (lambda pad: 0)
    _trim(0)


def compact(container: set | dict) -> bool:
    """Rebuild `container` in place (it keeps its identity, and a dict its order) when it
    takes more than SPARSE times the memory a compacted one of the largest length in its
    power-of-two bucket would. Returns whether it did. Cost: a few hundred ns when it does
    not; O(len) when it does, which under churn is about once per table resize."""
    n = len(container)
    kind = type(container)
    if not n or (kind is not set and kind is not dict):
        return False  # subclasses (Counter, defaultdict) copy differently: left alone
    key = (kind, isinstance(next(iter(container)), str), n.bit_length())
    limit = _limits.get(key)
    if limit is None:
        limit = _limits[key] = int(SPARSE * _compacted_size(*key))
    size = sys.getsizeof(container)
    if size <= limit:
        return False
    tight = kind(container)  # a copy is presized to its length
    if sys.getsizeof(tight) * SPARSE > size:
        return False  # members unlike the bucket's model (mixed key types): nothing to gain
    container.clear()
    container.update(tight)
    return True


def _compacted_size(kind: type, strings: bool, bits: int) -> int:
    """The size `compact` leaves a container of 2**bits - 1 members in."""
    n = (1 << bits) - 1
    members = [str(i) for i in range(n + 1)] if strings else list(range(n + 1))
    # One member too many, then removed: compact runs after a removal, and a small dict
    # copied after one is larger than one copied fresh (184 vs 272 bytes for 3 str keys).
    model: set | dict = set(members) if kind is set else dict.fromkeys(members)
    if isinstance(model, set):
        model.remove(members[-1])
    else:
        del model[members[-1]]
    tight = kind(model)
    model.clear()
    model.update(tight)
    return sys.getsizeof(model)


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
        # Written aside and renamed, so whoever watches for the file never reads half of it.
        directory = os.path.dirname(name)
        partial = os.path.join(directory, f".{os.path.basename(name)}.partial")
        try:
            if directory:
                os.makedirs(directory, exist_ok=True)
            snapshot.dump(partial)
            os.replace(partial, name)
        except OSError as err:
            log.error("Could not write the heap profile to %s: %s", name, err)
            with contextlib.suppress(OSError):
                os.unlink(partial)
            return None
        top = snapshot.statistics("lineno")[:5]
        log.info("Wrote a heap profile to %s: %.1f MiB traced (peak %.1f MiB), %.1f MiB "
                 "before collecting %d unreachable objects; largest: %s",
                 name, traced / 2**20, peak / 2**20, before / 2**20, unreachable,
                 "; ".join(f"{s.traceback[0].filename}:{s.traceback[0].lineno} "
                           f"{s.size / 1024:.0f} KiB" for s in top))
        return name


def tune_gc() -> None:
    """Felix keeps a large, long-lived heap (every endpoint, selector match and rendered
    rule). With CPython's default thresholds the cyclic collector rescans it every few
    hundred allocations; at 11k endpoints and 1k policies that was about a third of the
    cold start's CPU. Modules and classes loaded so far live for the whole process: freeze
    them out of the scans, and collect young objects every 50k allocations, not 700."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
