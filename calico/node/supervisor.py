"""Runs calico-node's children and keeps them running.

Each child is a `ChildSpec`: a name, its argv, and optionally a `ready()` condition that must
hold before it starts (BIRD waits for its configuration file). The supervisor starts every
ready child, and when one exits it logs how and restarts it after a back-off that doubles
from `backoff_min` to `backoff_max`, reset once a run has lasted `stable_after` seconds.

`stop()` (calico-node's SIGTERM) stops children in reverse start order: SIGTERM, then
SIGKILL after `kill_after` seconds. Nothing is cleaned up behind them on purpose: BIRD's kernel
protocol has `persist`, so its routes stay; Felix leaves the dataplane as it is; both resync
without a flap when they start again.

One log line per event: started (pid), exited (code or signal, after how long) and when it will
restart, stopping, stopped. The process runner and the clock are injected for tests.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None
    ready: Callable[[], bool] | None = None  # start only once this holds


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restart_at: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    waiting_logged: bool = False
    history: list[int] = field(default_factory=list)  # exit codes, for tests and status


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Starts every ready child, restarts the ones that exit after a doubling back-off, and on
    `stop()` stops them in reverse order (module doc); `run()` blocks until then."""

    def __init__(self, specs: Sequence[ChildSpec], *,
                 popen: Callable[..., subprocess.Popen] = subprocess.Popen,
                 clock: Callable[[], float] = time.monotonic,
                 backoff_min: float = 1.0, backoff_max: float = 30.0,
                 stable_after: float = 30.0, kill_after: float = 5.0,
                 poll_interval: float = 0.1) -> None:
        self.children = [_Child(s) for s in specs]
        self._popen = popen
        self._clock = clock
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.stable_after = stable_after
        self.kill_after = kill_after
        self.poll_interval = poll_interval
        self._stop = threading.Event()

    def child(self, name: str) -> _Child:
        return next(c for c in self.children if c.spec.name == name)

    def run(self) -> None:
        """Supervise until stop() is called; then stop every child and return."""
        try:
            while not self._stop.is_set():
                self.step()
                self._stop.wait(self.poll_interval)
        finally:
            self.stop_children()

    def stop(self) -> None:
        """Ask run() to return (safe from a signal handler)."""
        self._stop.set()

    def step(self, only: Sequence[str] | None = None) -> None:
        """One pass: reap exits, start what is due (of the children named in `only`, or
        all)."""
        now = self._clock()
        for c in self.children:
            if only is not None and c.spec.name not in only:
                continue
            if c.proc is not None:
                code = c.proc.poll()
                if code is None:
                    if c.backoff and now - c.started >= self.stable_after:
                        c.backoff = 0.0
                    continue
                self._on_exit(c, code, now)
            if now < c.restart_at or self._stop.is_set():
                continue
            if c.spec.ready is not None and not c.spec.ready():
                if not c.waiting_logged:
                    log.info("%s: waiting before start (not ready yet)", c.spec.name)
                    c.waiting_logged = True
                continue
            self._start(c, now)

    def _on_exit(self, c: _Child, code: int, now: float) -> None:
        ran = now - c.started
        c.proc = None
        c.history.append(code)
        if ran >= self.stable_after:
            c.backoff = 0.0
        c.backoff = min(self.backoff_max, max(self.backoff_min, c.backoff * 2))
        c.restart_at = now + c.backoff
        c.restarts += 1
        log.warning("%s %s after %.1fs; restarting in %.0fs", c.spec.name,
                    describe_exit(code), ran, c.backoff)

    def _start(self, c: _Child, now: float) -> None:
        try:
            c.proc = self._popen(list(c.spec.argv), env=c.spec.env)
        except OSError as err:
            c.backoff = min(self.backoff_max, max(self.backoff_min, c.backoff * 2))
            c.restart_at = now + c.backoff
            log.error("%s could not start (%s); retrying in %.0fs", c.spec.name, err, c.backoff)
            return
        c.started = now
        c.waiting_logged = False
        log.info("%s started (pid %d)", c.spec.name, c.proc.pid)

    def stop_children(self) -> None:
        running = [c for c in reversed(self.children) if c.proc is not None]
        for c in running:
            log.info("stopping %s (pid %d)", c.spec.name, c.proc.pid)
            try:
                c.proc.terminate()
            except OSError:
                pass
        deadline = time.monotonic() + self.kill_after
        for c in running:
            try:
                code = c.proc.wait(max(0.0, deadline - time.monotonic()))
                log.info("%s stopped (%s)", c.spec.name, describe_exit(code))
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
                log.warning("%s did not stop within %.0fs: killed", c.spec.name,
                            self.kill_after)
            c.proc = None
