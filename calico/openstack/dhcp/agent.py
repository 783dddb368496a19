"""`calico-dhcp-agent`: DHCP for the OpenStack VMs of one compute host, from the datastore.

    calico-dhcp-agent [--host NAME] [--region R] [--state-dir /var/lib/calico/dhcp]
                      [--dns-domain DOMAIN] [-v]

(`--host` defaults to $NODENAME, so the unit `calico-node install --openstack` writes reads the
same name as calico-node from /etc/calico/calico.env.)

Runs as root on each compute host (next to calico-node). It never talks to Neutron: a
datastore syncer (calico.datastore.syncer) follows the region's OpenStack WorkloadEndpoints
(namespace `openstack`, or `openstack-region-<R>` with `--region R` / $OPENSTACK_REGION, the
Neutron driver's `openstack_region`) and the subnet records the driver writes; after the first snapshot, and after every
batch of changes (coalesced for `--settle` seconds), model.desired() computes what each
network's dnsmasq should serve on this host and DnsmasqManager applies it. The datastore is
chosen as calicoctl chooses it (DATASTORE_TYPE, ETCD_ENDPOINTS, CALICO_DATASTORE_PATH or
/etc/calico/calicoctl.cfg). `--dns-domain` (Neutron's DHCP agent's `dns_domain`) is the
domain given to VMs of networks without a `dns_domain` of their own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from calico.datastore.client import kind_prefix
from calico.datastore.config import ConfigError, DatastoreConfig, connect
from calico.datastore.kv import DatastoreError
from calico.datastore.syncer import Syncer, SyncSource, SyncStatus, SyncUpdate

from .. import names
from .dnsmasq import DnsmasqManager
from .model import desired

log = logging.getLogger(__name__)


def _json(key: str, value: str, rev: int) -> Any:
    return json.loads(value)


class DHCPAgent:
    """Follows the `openstack` WorkloadEndpoints and subnet records with a syncer and, once in sync
    and after each settled burst of changes, has `manager` serve what `desired()` gives for this
    host. `run(stop)` blocks until `stop` is set; a failed apply is logged and redone at the next
    change."""

    def __init__(self, backend, host: str, manager: DnsmasqManager, settle: float = 0.2,
                 region: names.Region = names.NO_REGION, dns_domain: str = "") -> None:
        self.backend, self.host, self.manager, self.settle = backend, host, manager, settle
        self.region, self.dns_domain = region, dns_domain
        self.endpoints: dict[str, dict] = {}
        self.subnets: dict[str, dict] = {}
        self._in_sync = threading.Event()
        self._dirty = threading.Event()
        self._lock = threading.Lock()
        self.applied = 0
        self.syncer = Syncer(backend, [
            SyncSource(kind_prefix("WorkloadEndpoint", region.namespace), _json),
            SyncSource(region.subnet_prefix, _json)], self)

    # ---- syncer callbacks (syncer thread) ----

    def on_status(self, status: SyncStatus) -> None:
        if status is SyncStatus.IN_SYNC:
            self._in_sync.set()
            self._dirty.set()

    def on_updates(self, updates: list[SyncUpdate]) -> None:
        with self._lock:
            for u in updates:
                target = (self.subnets if u.key.startswith(self.region.subnet_prefix)
                          else self.endpoints)
                name = u.key.rsplit("/", 1)[-1]
                if u.value is None:
                    target.pop(name, None)
                else:
                    target[name] = u.value
        self._dirty.set()

    # ---- main loop ----

    def apply_once(self) -> None:
        with self._lock:
            want = desired(self.host, list(self.endpoints.values()), dict(self.subnets),
                           self.dns_domain)
        self.manager.apply(want)
        self.applied += 1

    def run(self, stop: threading.Event) -> None:
        self.syncer.start()
        try:
            while not stop.is_set():
                if not self._dirty.wait(0.5) or not self._in_sync.is_set():
                    continue
                stop.wait(self.settle)
                self._dirty.clear()
                try:
                    self.apply_once()
                except Exception:  # noqa: BLE001 - keep serving; the next change retries
                    log.exception("applying the DHCP configuration failed")
        finally:
            self.syncer.stop()
            self.manager.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calico-dhcp-agent", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--host", default=os.environ.get("NODENAME") or socket.gethostname(),
                        help="this compute host's name, as Neutron's binding:host_id "
                        "(default: $NODENAME, as calico-node's, else the host name)")
    parser.add_argument("--region", default=os.environ.get("OPENSTACK_REGION") or None,
                        help="the Neutron driver's openstack_region (default: none)")
    parser.add_argument("--state-dir", default="/var/lib/calico/dhcp")
    parser.add_argument("--dns-domain", default=os.environ.get("DNS_DOMAIN", ""),
                        help="domain for VMs of networks without a dns_domain "
                        "(default: $DNS_DOMAIN, else none)")
    parser.add_argument("--settle", type=float, default=0.2)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        region = names.Region(args.region)
        backend = connect(DatastoreConfig.load())
    except (ConfigError, DatastoreError, names.UnmappableName) as err:
        print(f"calico-dhcp-agent: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = DHCPAgent(backend, args.host, DnsmasqManager(args.state_dir), args.settle, region,
                      args.dns_domain)
    log.info("calico-dhcp-agent for host %s", args.host)
    agent.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
