"""The dataplane driver: owns every dataplane manager, one ordered apply for all of them.

    driver = DataplaneDriver.linux(hostname, config, wake=main_loop_wakeup)
    driver.start()                      # link watcher on, nftables table read back
    for msg in graph.flush(): driver.on_message(msg)
    driver.apply()                      # nothing until InSync has been seen
    sleep at most driver.seconds_until_due(), then apply() again (periodic repair)

It holds the two halves of the Linux dataplane: `NftDataplane` (IP sets, policy and profile
chains, endpoint chains and dispatch maps, NAT: one atomic nft transaction per apply) and
`HostNetworkManager` (interfaces, sysctls, routes, neighbours, IP-in-IP, VXLAN: pipelined
netlink).
Both are groups of managers (manager.py) and the driver's own list is
`(DataplaneStatus, NftDataplane, HostNetworkManager)`: every calc-graph message reaches every
manager, in that order; each takes what it wants and ignores the rest. Each apply starts with
`complete_deferred_work()` on every manager, before any kernel write.

The order of one apply is what keeps enforcement continuous:
1. nftables first. The IP sets, policy chains, the endpoint's chains and its dispatch-map
   entries land in one transaction, so by the time anything can reach a new endpoint its
   policy is in force. Removals are safe in this order too: a workload-prefixed interface
   without a map entry hits the dispatch chains' final `drop`.
2. Then the host network: sysctls (proxy ARP) and routes to new endpoints, removal of routes
   to gone ones. Routes only after an nftables apply that succeeded: if the ruleset could not
   be written, routes to new endpoints would be routes into an unenforced dataplane, so they
   wait (the next apply retries both). Sysctls follow interface names, not endpoints, so on
   the first apply they are written while the big transaction runs on a worker thread.

Nothing is applied before `InSync`: a snapshot applied half-way would delete what the rest of
the snapshot still wants. The first apply after it reads both kernels back (nftables was read
in `start()`, links/routes/sysctls on the host network's first apply) and writes only the
difference — no flush, so a restarted Felix never interrupts traffic.

Periodic repair: the host network resyncs every `routeRefreshInterval` (its own timer);
nftables is re-read every `nftablesRefreshInterval` and re-applied if it drifted (a chain
flushed by hand). Link events come from the host network's watcher thread and only wake the
main loop (`wake`); all state changes happen in `apply()` on the caller's thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from calico.felix import messages as m
from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.manager import ManagerGroup
from calico.felix.dataplane.nft import NftDataplane, make_runner

log = logging.getLogger(__name__)

UP, DOWN, ERROR = "up", "down", "error"


@dataclass
class ApplyResult:
    nft_script_lines: int = 0  # lines of the nftables transaction (0: nothing to change)
    nft_seconds: float = 0.0
    hostnet_seconds: float = 0.0
    refreshed: list[str] = field(default_factory=list)  # which halves did a periodic re-read


class DataplaneStatus:
    """A manager that programs nothing: what status reports and metrics read (in sync yet?,
    the local endpoints, the active policies and IP sets, as the calc graph sent them)."""

    def __init__(self) -> None:
        self.in_sync = False
        self.local_endpoints: dict[m.WorkloadEndpointID, m.WorkloadEndpointUpdate] = {}
        self.active_policies: set[m.PolicyID] = set()
        self.ip_sets: set[str] = set()

    def on_message(self, msg: m.Message) -> None:
        match msg:
            case m.InSync():
                self.in_sync = True
            case m.WorkloadEndpointUpdate():
                self.local_endpoints[msg.id] = msg
            case m.WorkloadEndpointRemove():
                self.local_endpoints.pop(msg.id, None)
            case m.ActivePolicyUpdate():
                self.active_policies.add(msg.id)
            case m.ActivePolicyRemove():
                self.active_policies.discard(msg.id)
            case m.IPSetUpdate():
                self.ip_sets.add(msg.id)
            case m.IPSetRemove():
                self.ip_sets.discard(msg.id)

    def complete_deferred_work(self) -> None:
        """Nothing deferred."""


class DataplaneDriver(ManagerGroup):
    """Messages to every manager, then one ordered apply (nftables, then the host network)
    once in sync, plus the periodic repair timers and per-endpoint status (see module doc)."""

    def __init__(self, nft: NftDataplane, hostnet: HostNetworkManager, *,
                 nft_refresh_interval: float = 180.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.nft, self.hostnet = nft, hostnet
        self.status = DataplaneStatus()
        super().__init__((self.status, nft, hostnet))
        self.nft_refresh_interval = nft_refresh_interval
        self._clock = clock
        self._next_nft_refresh = 0.0
        self._nft_ok = False      # the last nftables apply succeeded
        self._failed = False      # the last apply (either half) failed
        self._applied = False     # an nftables apply has succeeded since start

    @classmethod
    def linux(cls, hostname: str, *, wake: Callable[[], None] | None = None,
              nft_refresh_interval: float = 180.0) -> DataplaneDriver:
        """The real thing: libnftables (else `nft`) and netlink in the current namespace."""
        from calico.felix.dataplane.conntrack import clear_mark_bits
        from calico.felix.dataplane.netlink import NetlinkKernel

        return cls(NftDataplane(make_runner(), reset_marks=clear_mark_bits),
                   HostNetworkManager(NetlinkKernel(), hostname, wake=wake),
                   nft_refresh_interval=nft_refresh_interval)

    # ---- lifecycle ----

    def start(self) -> None:
        """Start watching links and read the nftables table back. Changes nothing."""
        self.hostnet.start()
        self.nft.resync()
        self._next_nft_refresh = self._clock() + self.nft_refresh_interval
        kernel = self.nft.table.kernel
        log.info("Dataplane started: the kernel's nftables table has %d chains and %d sets",
                 len(getattr(kernel, "chains", ())), len(getattr(kernel, "sets", ())))

    def stop(self) -> None:
        """Stop the link watcher. The dataplane stays programmed."""
        self.hostnet.stop()

    # ---- inputs (on_message: ManagerGroup's, to every manager) ----

    @property
    def in_sync(self) -> bool:
        return self.status.in_sync

    @property
    def local_endpoints(self) -> dict[m.WorkloadEndpointID, m.WorkloadEndpointUpdate]:
        return self.status.local_endpoints

    @property
    def active_policies(self) -> set[m.PolicyID]:
        return self.status.active_policies

    @property
    def ip_sets(self) -> set[str]:
        return self.status.ip_sets

    def set_refresh_interval(self, nft_seconds: float) -> None:
        self._next_nft_refresh += nft_seconds - self.nft_refresh_interval
        self.nft_refresh_interval = nft_seconds

    # ---- apply ----

    def seconds_until_due(self) -> float | None:
        """How long the caller may wait before apply() has periodic work; None: no timer."""
        if not self.in_sync:
            return None
        waits = [w for w in (self.hostnet.seconds_until_refresh(),
                             self._nft_wait()) if w is not None]
        if self._failed:
            waits.append(1.0)
        return min(waits) if waits else None

    def _nft_wait(self) -> float | None:
        if self.nft_refresh_interval <= 0:
            return None
        return max(0.0, self._next_nft_refresh - self._clock())

    def apply(self) -> ApplyResult | None:
        """One ordered pass (see the module doc); None before InSync. Raises the first
        failure after recording it; the next apply() re-reads the kernel and retries."""
        if not self.in_sync:
            return None
        result = ApplyResult()
        self._failed = True
        started = self._clock()
        try:
            self.complete_deferred_work()
            if self.nft_refresh_interval > 0 and started >= self._next_nft_refresh:
                result.refreshed.append("nftables")
                self._next_nft_refresh = started + self.nft_refresh_interval
                script = self.nft.refresh()
            elif not self._applied:
                script = self._nft_alongside(self.hostnet.prepare)
            else:
                script = self.nft.apply()
            result.nft_script_lines = script.count("\n") + 1 if script else 0
        except Exception:
            self._nft_ok = False
            raise
        self._nft_ok = self._applied = True
        middle = self._clock()
        result.nft_seconds = middle - started
        if self.hostnet.seconds_until_refresh() == 0.0:
            result.refreshed.append("host network")
        self.hostnet.apply()
        result.hostnet_seconds = self._clock() - middle
        self._failed = False
        return result

    def _nft_alongside(self, work: Callable[[], None]) -> str:
        """`nft.apply()` on a worker thread while `work` runs on this one. For the first
        apply: its transaction is the whole ruleset and spends its time in nft and the kernel
        (the GIL released), while the host network's endpoint-independent part (sysctls on
        every workload interface) is thousands of small syscalls; side by side, not in turn."""
        with ThreadPoolExecutor(1, thread_name_prefix="nft-first-apply") as pool:
            future = pool.submit(self.nft.apply)
            work()
            return future.result()

    # ---- status ----

    def endpoint_states(self) -> dict[m.WorkloadEndpointID, str]:
        """Per local workload endpoint: "up" (interface oper up and programmed), "down"
        (interface missing or down) or "error" (the last apply failed)."""
        out = {}
        for ep_id, ep in self.local_endpoints.items():
            link = self.hostnet.links.get(ep.interface)
            if self._failed:
                out[ep_id] = ERROR
            elif link is not None and link.up:
                out[ep_id] = UP
            else:
                out[ep_id] = DOWN
        return out
