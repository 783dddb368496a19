"""XlatManager: the translator attached at exactly the interfaces of local address-space
endpoints, with each one's (prefix, IPv4 address).

In: WorkloadEndpointUpdate/Remove (an update with `address_space` set wants the translator on
its interface with (`translation_prefix`, `xlat_ipv4`); any other update or a remove wants
none there) and link changes (an interface that appears after its endpoint is attached as
soon as it is seen). Routes and neighbours for P::A are the RouteManager's: the calc graph
already describes the endpoint by P::A/128 (calc/spaces.py).
Out: `Translator.attach(ifname, prefix, ipv4)` / `detach(ifname)` through the injected
translator (the BPF one in production, a fake in unit tests).

Stateless restart: `resync()` reads `translator.attached()` (pinned maps and attached filters
survive a Felix restart), so the first `apply()` attaches only what differs and detaches only
workload interfaces (configured prefixes) that no space endpoint wants: a restarted Felix
adopts what it finds without a gap in translation. A translator that cannot be loaded (no
BPF object) makes every space endpoint fail to attach, logged once per interface and retried
on the next resync; default-space endpoints are unaffected.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Iterable
from typing import Protocol

from calico.felix import messages as m
from calico.felix.dataplane.links import LinkTable, is_workload_interface
from calico.felix.dataplane.netlink import Link

log = logging.getLogger(__name__)

State = tuple[ipaddress.IPv6Network, ipaddress.IPv4Address]


class TranslatorAPI(Protocol):
    """What XlatManager needs of a translator: xlat/translator.py's Translator, or a fake."""

    def attach(self, ifname: str, prefix: ipaddress.IPv6Network,
               ipv4: ipaddress.IPv4Address) -> None: ...

    def detach(self, ifname: str) -> None: ...

    def attached(self) -> dict[str, State]: ...


PIN_DIR_ENV = "CALICO_XLAT_PIN_DIR"


def default_translator() -> TranslatorAPI:
    """The BPF Translator, pinned under `$CALICO_XLAT_PIN_DIR` (default /sys/fs/bpf/calico/
    xlat). One pin directory per network namespace (its map is keyed by ifindex): a Felix
    started under `ip netns exec` (the lab's hosts) sees a bpffs that dies with it, so for
    restart adoption it is given a directory on a bpffs mounted outside (calico/lab does)."""
    from calico.felix.dataplane.xlat.translator import DEFAULT_PIN_DIR, Translator

    return Translator(os.environ.get(PIN_DIR_ENV) or DEFAULT_PIN_DIR)


class XlatManager:
    """A NetlinkManager (hostnet.py): space endpoints in, the translator attached at exactly
    their interfaces out on `apply()`; adopts what it finds attached on restart (module doc)."""

    waits_for_nftables = True  # translated traffic meets policy: program policy first

    def __init__(self, links: LinkTable, prefixes: Iterable[str] = ("cali", "tap"),
                 translator: Callable[[], TranslatorAPI] = default_translator) -> None:
        self._links = links
        self.prefixes = tuple(prefixes)
        self._make_translator = translator
        self._translator: TranslatorAPI | None = None
        self._want: dict[str, State] = {}  # interface -> state
        self._by_ep: dict[m.WorkloadEndpointID, str] = {}
        self._have: dict[str, State] | None = None  # None: read the kernel first
        self._dirty: set[str] = set()
        self.failures: dict[str, str] = {}  # interface -> last error

    # ---- desired state ----

    def on_message(self, msg: m.Message) -> None:
        if isinstance(msg, m.WorkloadEndpointUpdate):
            self._forget(msg.id)
            if msg.address_space and msg.translation_prefix and msg.xlat_ipv4:
                self._by_ep[msg.id] = msg.interface
                self._want[msg.interface] = (ipaddress.IPv6Network(msg.translation_prefix),
                                             ipaddress.IPv4Address(msg.xlat_ipv4))
                self._dirty.add(msg.interface)
        elif isinstance(msg, m.WorkloadEndpointRemove):
            self._forget(msg.id)

    def _forget(self, ep: m.WorkloadEndpointID) -> None:
        iface = self._by_ep.pop(ep, None)
        if iface is not None and iface not in self._by_ep.values():
            self._want.pop(iface, None)
            self._dirty.add(iface)

    def complete_deferred_work(self) -> None:
        """Nothing deferred: `apply()` diffs the dirty interfaces."""

    def wanted(self) -> dict[str, State]:
        return dict(self._want)

    # ---- kernel ----

    def on_link_change(self, name: str, old: Link | None, new: Link | None) -> None:
        if name in self._want:
            self._dirty.add(name)

    def resync(self) -> None:
        self._have = None

    def apply(self) -> None:
        if self._have is None:
            if not self._want and self._translator is None:
                return  # no space endpoint has been seen: load nothing
            if not self._read_back():
                return
            self._dirty |= set(self._have or {}) | set(self._want)
        for iface in sorted(self._dirty):
            self._apply_one(iface)
        self._dirty = {i for i in self._dirty if i in self.failures}

    def _translator_or_none(self) -> TranslatorAPI | None:
        if self._translator is None:
            try:
                self._translator = self._make_translator()
            except Exception as err:  # noqa: BLE001  (a missing BPF object, an old kernel)
                log.error("address-space translator unavailable: %s", err)
                return None
        return self._translator

    def _read_back(self) -> bool:
        translator = self._translator_or_none()
        if translator is None:
            return False
        try:
            self._have = dict(translator.attached())
        except Exception as err:  # noqa: BLE001
            log.error("reading the attached translators failed: %s", err)
            return False
        return True

    def _apply_one(self, iface: str) -> None:
        translator = self._translator_or_none()
        if translator is None:
            return  # logged; the next resync tries again
        have = self._have if self._have is not None else {}
        want = self._want.get(iface)
        try:
            if want is not None:
                if self._links.get(iface) is None:
                    return  # not there yet: its link event marks it dirty again
                if have.get(iface) != want:
                    translator.attach(iface, *want)
                    have[iface] = want
            elif iface in have and is_workload_interface(iface, self.prefixes):
                translator.detach(iface)
                del have[iface]
            self.failures.pop(iface, None)
        except Exception as err:  # noqa: BLE001  (one interface's failure stops no other)
            if self.failures.get(iface) != str(err):
                log.error("translator on %s: %s", iface, err)
            self.failures[iface] = str(err)
