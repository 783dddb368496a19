"""libnftables in-process, through ctypes: the `nft` command without the process.

`nft -f` costs a fork+exec, the dynamic loading of libnftables and a fresh netlink cache per
call; for Felix's small incremental transactions that is half of the cost (DESIGN.md: an
incremental transaction at 1,000 endpoints is 51 ms through `nft -f`, 24 ms in-process).
`LibNft` keeps one libnftables context for the life of the runner and feeds it scripts as
`nft -f` would read them: the same syntax, the same single atomic transaction per call.

One thread. Every call runs on a thread of the context's own, for two reasons:
- Network namespaces. A netlink socket belongs to the namespace of the thread that opened
  it, and libnftables opens its socket when the context is created. `LibNft(netns="name")`
  so has its thread enter `/run/netns/<name>` first (setns affects only the calling thread),
  which keeps the rest of the process where it was.
- Memory. A thread that allocates gets its own glibc arena, so libnftables' parse trees and
  cache live apart from Python's long-lived objects instead of interleaved with them in the
  main heap. Issue #10's lab load (a host's Felix, 5 minutes of churn): the main heap grew
  13 -> 18 MiB with libnftables on the main thread, 11 -> 14 MiB with its own; its arena
  then breathes between 2 and 6 MiB from trim to trim.
The hop costs about 30 microseconds a call.

Trims. libnftables builds its whole parse tree and netlink batch on the heap: a
cold-start transaction of Felix's ruleset at 1,000 endpoints peaks at about 240 MB, and glibc
keeps freed heap pages. After a large call (script or output over `TRIM_BYTES`) the heap is
trimmed (`malloc_trim`), which brings the process back to its steady size. "Large" is
`TRIM_BYTES`, 64 KiB: the incremental transactions of churn are that size too (a set that
loses members is flushed and refilled, see table.py), and their parse trees left Felix's RSS
about 15 MiB above its steady size from the first minute of churn on — no leak, all of it
free heap that a trim hands back (issue #10, benchmarks/faults/felix_churn_mem.py
--nft-netns). A trim costs 5-10 ms at Felix's size (madvise calls; the next call then
faults its pages back in); it runs on the library's thread after the call has returned,
overlapping the rest of the apply. Measured with that benchmark (300 endpoints, 200
policies, real libnftables): steady RSS 91-92 -> 80 MiB, median apply 80-92 -> 86-98 ms
(+6 ms) under continuous churn. TRIM_BYTES = 1 MiB restores the old trade-off.
Two things outlive a large call, so the call after it trims too, and a large output resets
the output buffer: libnftables keeps what a listing read (every set element, chain and rule)
in the context's cache until the next command, and its output buffer never shrinks. Without
them Felix's first periodic refresh (a whole-table listing) left its RSS about 2 MiB higher
for good (issue #10's lab load: per-minute medians 67 -> 65 MiB with them).

`load()` returns None when libnftables.so.1 is not installed; callers fall back to the binary.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from calico.felix.dataplane.netlink import enter_netns
from calico.felix.heap import trim as _malloc_trim

T = TypeVar("T")

OUTPUT_HANDLE = 1 << 3
OUTPUT_JSON = 1 << 4
OUTPUT_NUMERIC_PROTO = 1 << 7
OUTPUT_NUMERIC_PRIO = 1 << 8
OUTPUT_TERSE = 1 << 11
TRIM_BYTES = 64 << 10  # a call with a script or output this large trims the heap after it
_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL | None:
    global _lib
    with _lib_lock:
        if _lib is None:
            for name in ("libnftables.so.1", ctypes.util.find_library("nftables")):
                if not name:
                    continue
                try:
                    lib = ctypes.CDLL(name)
                except OSError:
                    continue
                _declare(lib)
                _lib = lib
                break
        return _lib


def _declare(lib: ctypes.CDLL) -> None:
    p, c, i, u = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint
    for fn, res, args in (("nft_ctx_new", p, [u]), ("nft_ctx_free", None, [p]),
                          ("nft_ctx_buffer_output", i, [p]), ("nft_ctx_buffer_error", i, [p]),
                          ("nft_ctx_unbuffer_output", i, [p]),
                          ("nft_ctx_get_output_buffer", c, [p]),
                          ("nft_ctx_get_error_buffer", c, [p]),
                          ("nft_ctx_output_get_flags", u, [p]),
                          ("nft_ctx_output_set_flags", None, [p, u]),
                          ("nft_run_cmd_from_buffer", i, [p, c])):
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args


def available() -> bool:
    return _library() is not None


class _NftThread:
    """One daemon thread (inside a network namespace if given one) that runs the calls given
    to it, in order.
    `post()` is a SimpleQueue put, which Python documents as safe from finalisers and garbage
    collection; a ThreadPoolExecutor is not (its submit takes a module-wide lock, and a
    finaliser that submitted while the same thread was inside another submit deadlocked a
    test run)."""

    def __init__(self, netns: str | None) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, args=(netns,), daemon=True,
                                        name=f"libnft-{netns}" if netns else "libnft")
        self._thread.start()

    def _serve(self, netns: str | None) -> None:
        try:
            if netns is not None:
                enter_netns(netns)
            failed: BaseException | None = None
        except BaseException as err:  # noqa: BLE001 - every call reports it
            failed = err
        while (item := self._queue.get()) is not None:
            fn, args, future = item
            if future is None:  # posted: nobody waits for the outcome
                if failed is None:
                    try:
                        fn(*args)
                    except Exception:  # noqa: BLE001
                        pass
                continue
            if failed is not None:
                future.set_exception(failed)
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                future.set_exception(err)

    def call(self, fn: Callable[..., T], *args) -> T:
        future: Future = Future()
        self._queue.put((fn, args, future))
        return future.result()

    def post(self, fn: Callable[..., object], *args) -> None:
        self._queue.put((fn, args, None))

    def stop(self) -> None:
        self._queue.put(None)


class LibNft:
    """One libnftables context. `run(script, flags)` → (ok, output, error text)."""

    def __init__(self, lib: ctypes.CDLL, netns: str | None = None) -> None:
        self._lib = lib
        self._ctx = None
        self._thread: _NftThread | None = _NftThread(netns)
        self._trims_due = 0  # calls still to be followed by a trim (see run)
        self._ctx = self._call(self._new_ctx)
        if not self._ctx:
            raise OSError("nft_ctx_new failed")

    @classmethod
    def load(cls, netns: str | None = None) -> LibNft | None:
        lib = _library()
        return None if lib is None else cls(lib, netns)

    def _call(self, fn: Callable[..., T], *args) -> T:
        if self._thread is None:
            raise OSError("libnftables context closed")
        return self._thread.call(fn, *args)

    def _new_ctx(self):
        ctx = self._lib.nft_ctx_new(0)
        if ctx:
            self._lib.nft_ctx_buffer_output(ctx)
            self._lib.nft_ctx_buffer_error(ctx)
        return ctx

    def run(self, script: str, flags: int = 0) -> tuple[bool, str, str]:
        """Run one script (one transaction); output flags apply to this call only."""
        data = script.encode()
        ok, out, err, large = self._call(self._run, data, flags)
        # A large call trims after itself and after the next call: libnftables keeps the
        # objects a listing read in its cache until the next command replaces them.
        self._trims_due = 2 if large else max(0, self._trims_due - 1)
        if self._trims_due and self._thread is not None:
            self._thread.post(_malloc_trim)  # not waited for: the next call queues behind it
        return ok, out, err

    def _run(self, script: bytes, flags: int) -> tuple[bool, str, str, bool]:
        lib, ctx = self._lib, self._ctx
        lib.nft_ctx_output_set_flags(ctx, flags)
        rc = lib.nft_run_cmd_from_buffer(ctx, script)
        out = lib.nft_ctx_get_output_buffer(ctx) or b""
        err = lib.nft_ctx_get_error_buffer(ctx) or b""
        large = len(script) > TRIM_BYTES or len(out) > TRIM_BYTES
        if len(out) > TRIM_BYTES:
            # The output buffer keeps its largest size for the life of the context (a whole
            # listing, megabytes at Calico scale); a fresh one starts small.
            lib.nft_ctx_unbuffer_output(ctx)
            lib.nft_ctx_buffer_output(ctx)
        return rc == 0, out.decode(errors="replace"), err.decode(errors="replace"), large

    def close(self) -> None:
        if self._ctx:
            self._call(self._lib.nft_ctx_free, self._ctx)
            self._ctx = None
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def __del__(self) -> None:
        # Never wait or lock here: a finaliser can run inside garbage collection on any
        # thread. The library's thread frees the context (post is reentrant) and exits.
        ctx, self._ctx = getattr(self, "_ctx", None), None
        thread, self._thread = getattr(self, "_thread", None), None
        try:
            if thread is None:  # closed, or __init__ failed before the thread
                return
            if ctx:
                thread.post(self._lib.nft_ctx_free, ctx)
            thread.stop()
        except Exception:  # noqa: BLE001 (interpreter shutdown)
            pass
