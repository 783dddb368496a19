"""This host's VXLAN tunnel address, from IPAM, as Calico's calico-node allocates it.

    python -m calico.node.tunneladdr --hostname NAME [--oneshot]

`reconcile()` makes the Node's `spec.ipv4VXLANTunnelAddr` match the IP pools:
- while an enabled IPv4 pool that selects this Node (nodeSelector), allows `Tunnel` use and
  has `vxlanMode` Always or CrossSubnet exists, the Node holds one address of such a pool,
  allocated by IPAM with handle `vxlan-tunnel-addr-<node>` and attributes
  `{"node": <node>, "type": "vxlanTunnelAddress"}` (intended use Tunnel). An address that is
  still allocated to us, with those attributes, in one of those pools, is kept; one that is
  no longer allocated, or not in such a pool, is released and replaced; one that IPAM shows
  held by someone else is left to them and replaced;
- otherwise the handle's addresses are released and the field is cleared.
The Node is written with compare-and-swap; a conflict reads it again (and releases an
address just allocated for the lost write).

calico-node runs `reconcile()` once at start-up, before Felix, and this module's `main()` as a
supervised child: it reconciles again on every change to IP pools or to our Node (a syncer),
and every 5 minutes in case a change was missed. Felix takes the address from the Node (its
VTEP) and puts it on `vxlan.calico`. (Calico's allocator also handles IP-in-IP and WireGuard
addresses; here only VXLAN's.)
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from typing import Any

from calico import logsetup
from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceConflict
from calico.ipam import IPAM
from calico.ipam.errors import IPAMError

log = logging.getLogger(__name__)

ATTR_TYPE_VXLAN = "vxlanTunnelAddress"
RESYNC_SECONDS = 300.0


def vxlan_handle(node: str) -> str:
    return f"vxlan-tunnel-addr-{node}"


def _selects(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector or selector.strip() == "all()":
        return True
    from calico.selector import parse

    return parse(selector).evaluate(labels)


def vxlan_pools(pools: list[dict[str, Any]], node: dict[str, Any]) -> list[str]:
    """CIDRs of the pools this Node takes its VXLAN tunnel address from."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    out = []
    for pool in pools:
        spec = pool.get("spec") or {}
        net = ipaddress.ip_network(spec.get("cidr", "::/128"), strict=False)
        if (net.version == 4 and not spec.get("disabled")
                and spec.get("vxlanMode") in ("Always", "CrossSubnet")
                and "Tunnel" in (spec.get("allowedUses") or ("Workload", "Tunnel"))
                and _selects(spec.get("nodeSelector"), labels)):
            out.append(str(net))
    return out


def _still_ours(ipam: IPAM, addr: str, node: str, cidrs: list[str]) -> bool | None:
    """True: keep it. False: release our handle and assign anew. None: someone else holds
    it; assign anew without releasing."""
    try:
        attrs, _handle = ipam.get_assignment_attributes(addr)
    except IPAMError:
        return False  # not allocated (or not in any pool): replace
    if attrs.get("type") != ATTR_TYPE_VXLAN or attrs.get("node") != node:
        return None
    ip = ipaddress.ip_address(addr)
    return any(ip in ipaddress.ip_network(c) for c in cidrs)


def reconcile(client: ResourceClient, ipam: IPAM, nodename: str) -> str | None:
    """One pass (module doc); returns the Node's VXLAN tunnel address afterwards."""
    handle = vxlan_handle(nodename)
    for _ in range(5):
        node = client.get("Node", nodename).to_dict()
        pools = [p.to_dict() for p in client.list("IPPool").items]
        cidrs = vxlan_pools(pools, node)
        spec = node.setdefault("spec", {})
        current = spec.get("ipv4VXLANTunnelAddr")
        assigned = None
        if cidrs:
            keep = _still_ours(ipam, current, nodename, cidrs) if current else False
            if keep:
                return current
            if keep is False:
                ipam.release_by_handle(handle)
            v4, _ = ipam.auto_assign(1, 0, handle, {"node": nodename, "type": ATTR_TYPE_VXLAN},
                                     pools=cidrs, use="Tunnel")
            assigned = spec["ipv4VXLANTunnelAddr"] = v4[0]
        else:
            ipam.release_by_handle(handle)
            if not current:
                return None
            spec.pop("ipv4VXLANTunnelAddr", None)
        try:
            client.update(node)
        except ResourceConflict:
            if assigned:
                ipam.release_ips([assigned])
            continue
        log.info("Node %s: VXLAN tunnel address %s (was %s)", nodename, assigned or "none",
                 current or "none")
        return assigned
    raise IPAMError(f'Node "{nodename}" kept changing while its VXLAN tunnel address was set')


class _Trigger:
    """Syncer callbacks that only wake the reconcile loop."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def on_status(self, status: Any) -> None:
        self.event.set()

    def on_updates(self, updates: list) -> None:
        self.event.set()


def run(backend: Any, nodename: str, stop: threading.Event) -> None:
    """Reconcile on every change to IP pools or Nodes, and every RESYNC_SECONDS."""
    from calico.datastore.syncer import Syncer

    client, ipam, trigger = ResourceClient(backend), IPAM(backend, nodename), _Trigger()
    syncer = Syncer(backend, ("IPPool", "Node"), trigger).start()
    try:
        while not stop.is_set():
            trigger.event.wait(RESYNC_SECONDS)
            trigger.event.clear()
            try:
                reconcile(client, ipam, nodename)
            except Exception as err:  # a datastore blip: the next change or tick retries
                log.warning("VXLAN tunnel address not reconciled: %s", err)
    finally:
        syncer.stop()


def main() -> None:
    import argparse
    import signal

    from calico.datastore import DatastoreConfig, connect

    parser = argparse.ArgumentParser(prog="calico-node tunnel addresses")
    parser.add_argument("--hostname", default=os.environ.get("NODENAME"))
    parser.add_argument("--oneshot", action="store_true")
    args = parser.parse_args()
    try:
        logsetup.configure("tunnel-addrs", logsetup.calico_node_config(os.environ))
    except ValueError as err:
        parser.error(str(err))
    backend = connect(DatastoreConfig.from_env())
    try:
        if args.oneshot:
            reconcile(ResourceClient(backend), IPAM(backend, args.hostname), args.hostname)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        run(backend, args.hostname, stop)
    finally:
        backend.close()


if __name__ == "__main__":
    main()
