"""Interfaces as Felix sees them: a table of the kernel's links and a watcher thread.

`LinkTable` holds name -> `Link` (index, oper state, MTU). It is fed by the full read-back on
resync (`replace_all`) and by netlink notifications (`update`/`remove`), and it answers with the
names whose state *matters* changed: appeared, vanished, went up or down, or got a new index
(deleted and re-created under the same name). The managers react to those names only.

`LinkWatcher` owns a netlink socket subscribed to RTNLGRP_LINK and a daemon thread reading it.
It never touches manager state: it hands each event to a callback (the host-network manager's
`notify_link`, which queues it and wakes the apply loop). If the socket overflows (ENOBUFS:
we fell behind a burst of notifications) it reports `overflow` so the apply loop does a full
link read-back instead of trusting an incomplete event stream.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import threading
from collections.abc import Callable, Iterable

from calico.felix.dataplane.netlink import RTMGRP_LINK, Link, NetlinkKernel, read_link_events

log = logging.getLogger(__name__)

DEFAULT_INTERFACE_PREFIXES = ("cali", "tap")


def is_workload_interface(name: str, prefixes: Iterable[str]) -> bool:
    return any(name.startswith(p) for p in prefixes if p)


class LinkTable:
    """The kernel's links by name. Not thread-safe: used from the apply loop only."""

    def __init__(self) -> None:
        self._by_name: dict[str, Link] = {}

    def get(self, name: str) -> Link | None:
        return self._by_name.get(name)

    def name_of(self, index: int) -> str | None:
        for link in self._by_name.values():
            if link.index == index:
                return link.name
        return None

    def names(self) -> list[str]:
        return list(self._by_name)

    def __iter__(self):
        return iter(list(self._by_name.values()))

    def update(self, link: Link) -> bool:
        """Record a link; True if its presence, index or oper state changed."""
        old = self._by_name.get(link.name)
        self._by_name[link.name] = link
        return old is None or old.index != link.index or old.up != link.up

    def remove(self, name: str, index: int | None = None) -> bool:
        """Forget a link (only if it still has `index`, when given); True if it was known."""
        old = self._by_name.get(name)
        if old is None or (index is not None and old.index != index):
            return False
        del self._by_name[name]
        return True

    def replace_all(self, links: Iterable[Link]) -> set[str]:
        """Replace the table with a full read-back; returns the names that changed."""
        new = {link.name: link for link in links}
        changed = {name for name in self._by_name if name not in new}
        for name, link in new.items():
            old = self._by_name.get(name)
            if old is None or old.index != link.index or old.up != link.up:
                changed.add(name)
        self._by_name = new
        return changed


class LinkWatcher:
    """A thread turning RTNLGRP_LINK notifications into `on_event(link, present)` calls, or
    `on_event(None, False)` when notifications were lost and a full read-back is needed."""

    def __init__(self, kernel: NetlinkKernel,
                 on_event: Callable[[Link | None, bool], None]) -> None:
        self._kernel = kernel
        self._on_event = on_event
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._sock = self._kernel.open_socket(groups=RTMGRP_LINK)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="felix-link-watcher",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.2)
                if ready:
                    read_link_events(sock, self._on_event)
            except OSError as e:
                if self._stop.is_set():
                    return
                if e.errno == errno.ENOBUFS:
                    log.warning("Link notifications overflowed; asking for a full resync")
                    self._on_event(None, False)
                    continue
                log.exception("Link watcher failed; asking for a full resync")
                self._on_event(None, False)
                self._stop.wait(1.0)
            except Exception:  # never let the watcher die silently
                log.exception("Link watcher: bad notification")
