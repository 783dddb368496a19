"""Keeping one dnsmasq per network running as `model.render` says: the impure edge.

`DnsmasqManager.apply(desired)` brings the host to the desired state: for each network it
creates the dummy `ns-<network>` interface (an empty bridge on kernels without dummy) with
the gateway addresses (IPv6 ones with the subnet's prefix length, which dnsmasq needs to
match a DHCPv6 or RA context, and `noprefixroute`), writes the hosts and
options files, and (re)starts dnsmasq when its command line changed (new or removed taps,
subnets) — or only sends SIGHUP, which makes dnsmasq re-read the hosts and options files,
when just those changed. Networks no longer wanted lose their dnsmasq and dummy interface.
Commands go through `run` (default: subprocess) and processes through `spawn`, so a unit
test passes fakes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from .model import NetworkDHCP, Rendered, render

log = logging.getLogger(__name__)


def _run(cmd: list[str]) -> bool:
    return subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


class DnsmasqManager:
    """Makes this host's dnsmasq processes and `ns-` interfaces match `apply(desired)`, network by
    network (a network that fails is logged and the others still applied); `stop()` removes them
    all. Unlocked: called from the agent's loop only."""

    def __init__(self, state_dir: str, *, run: Callable[[list[str]], bool] = _run,
                 spawn: Callable[[list[str]], object] = _spawn) -> None:
        self.state_dir = state_dir
        self._run, self._spawn = run, spawn
        self._procs: dict[str, object] = {}
        self._rendered: dict[str, Rendered] = {}

    def apply(self, desired: Mapping[str, NetworkDHCP]) -> None:
        for net_id in sorted(set(self._rendered) - set(desired)):
            self._remove(net_id)
        for net_id, net in sorted(desired.items()):
            try:
                self._ensure(net)
            except OSError as err:
                log.error("network %s: cannot set up DHCP: %s", net_id, err)

    def stop(self) -> None:
        for net_id in list(self._rendered):
            self._remove(net_id)

    def _ensure(self, net: NetworkDHCP) -> None:
        new = render(net, self.state_dir)
        old = self._rendered.get(net.network_id)
        # dnsmasq drops to user nobody and must still read and write these files.
        Path(self.state_dir, net.network_id).mkdir(mode=0o755, parents=True, exist_ok=True)
        self._ensure_interface(net.interface, new.addresses,
                               old.addresses if old else [])
        files_changed = False
        for path, text in new.files.items():
            p = Path(path)
            if not p.exists() or p.read_text() != text:
                # Whole or not at all: dnsmasq may be reading the file (starting, or on an
                # earlier SIGHUP), and a half-written options file loses its last options.
                tmp = p.with_name(p.name + ".tmp")
                tmp.write_text(text)
                os.replace(tmp, p)
                files_changed = True
        proc = self._procs.get(net.network_id)
        alive = proc is not None and getattr(proc, "poll", lambda: None)() is None
        if old is None or old.args != new.args or not alive:
            self._kill(net.network_id)
            log.info("network %s: starting dnsmasq on %s", net.network_id,
                     ", ".join((net.interface, *net.taps)))
            self._procs[net.network_id] = self._spawn(new.args)
        elif files_changed:
            self._signal(net.network_id, signal.SIGHUP)
        self._rendered[net.network_id] = new

    def _ensure_interface(self, name: str, addresses: list[str], old: list[str]) -> None:
        # A dummy device; where the kernel has none, an empty bridge serves the same
        # purpose (an interface to hold the addresses that dnsmasq answers from).
        if not self._run(["ip", "link", "show", name]) and not self._run(
                ["ip", "link", "add", name, "type", "dummy"]):
            self._run(["ip", "link", "add", name, "type", "bridge"])
        self._run(["ip", "link", "set", name, "up"])
        for addr in addresses:  # no prefix route: Calico routes each workload's address
            self._run(["ip", "addr", "replace", addr, "dev", name, "noprefixroute"])
        for addr in set(old) - set(addresses):
            self._run(["ip", "addr", "del", addr, "dev", name])

    def _remove(self, net_id: str) -> None:
        self._kill(net_id)
        rendered = self._rendered.pop(net_id, None)
        if rendered is not None:
            self._run(["ip", "link", "del", "ns-" + net_id[:11]])
        log.info("network %s: DHCP stopped", net_id)

    def _signal(self, net_id: str, sig: int) -> None:
        proc = self._procs.get(net_id)
        if proc is not None and hasattr(proc, "send_signal"):
            proc.send_signal(sig)

    def _kill(self, net_id: str) -> None:
        proc = self._procs.pop(net_id, None)
        if proc is None or not hasattr(proc, "terminate"):
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
