"""Neutron networks -> address spaces (our extension; `[calico] address_spaces = per_network`).

With `per_network`, every Neutron network that has an IPv4 subnet is its own AddressSpace, so
two projects may both use 10.0.0.0/24 (Neutron's `allow_overlapping_ips`):

- the space is `openstack-<network id>` (`openstack-<region>-<network id>` in a region),
  created by the driver with its translation prefix allocated as the API allocates it
  (calico/datastore/spaces.py: the first free /96 of `CALICO_ADDRESS_SPACE_RANGE`, claimed
  in the same transaction); labels `projectcalico.org/orchestrator: openstack` and the
  region, annotation the network id;
- each IPv4 subnet of the network is an IPPool `openstack-<subnet id>` (same region rule) of
  that space (cidr = the subnet's, no IPIP/VXLAN, no NAT-outgoing), so the ports' fixed IPs
  are claimed in the space's IPAM;
- the network's WorkloadEndpoints carry `spec.addressSpace`; a space endpoint is IPv4 only
  (the translator carries IPv4), so a port's IPv6 fixed IPs and pairs are left out of it.

The mapping is fixed by the network alone: a network's space never changes when another
project creates an overlapping subnet (addresses never move). Pools go when their subnet
goes, the space when the network has no IPv4 subnet left; the resync creates what is missing
and deletes what Neutron no longer has, pools before their space (the API refuses to delete
a space still named by a pool or an endpoint: such a space stays until the next resync).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from calico.api.endpoints import LABEL_ORCHESTRATOR
from calico.datastore.client import ResourceClient
from calico.datastore.errors import DatastoreError, ResourceAlreadyExists

from . import names
from .syncer import Snapshot

log = logging.getLogger(__name__)

MODES = ("off", "per_network")
REGION_LABEL = "projectcalico.org/openstack-region"
DEFAULT_BLOCK_SIZE = 26


def _name(region: names.Region, object_id: str) -> str:
    return (f"openstack-{region.name}-{object_id}" if region.name
            else f"openstack-{object_id}").lower()


def space_name(region: names.Region, network_id: str) -> str:
    return _name(region, network_id)


def pool_name(region: names.Region, subnet_id: str) -> str:
    return _name(region, subnet_id)


def _is_ipv4(subnet: Mapping[str, Any]) -> bool:
    try:
        return ipaddress.ip_network(subnet.get("cidr") or "", strict=False).version == 4
    except ValueError:
        return False


def _meta(region: names.Region, name: str, annotation: str, object_id: str) -> dict[str, Any]:
    return {"name": name,
            "labels": {LABEL_ORCHESTRATOR: names.ORCHESTRATOR,
                       REGION_LABEL: region.name or "no-region"},
            "annotations": {annotation: object_id}}


def space_doc(region: names.Region, network_id: str) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "AddressSpace",
            "metadata": _meta(region, space_name(region, network_id),
                              names.NETWORK_ID_ANNOTATION, network_id),
            "spec": {}}


def pool_doc(region: names.Region, subnet: Mapping[str, Any]) -> dict[str, Any]:
    cidr = ipaddress.ip_network(subnet["cidr"], strict=False)
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": _meta(region, pool_name(region, subnet["id"]),
                              "openstack.projectcalico.org/subnet-id", subnet["id"]),
            "spec": {"cidr": str(cidr), "addressSpace": space_name(region, subnet["network_id"]),
                     "blockSize": max(DEFAULT_BLOCK_SIZE, cidr.prefixlen),
                     "ipipMode": "Never", "vxlanMode": "Never", "natOutgoing": False}}


def wanted(snapshot: Snapshot, region: names.Region
           ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(space name -> AddressSpace doc, pool name -> IPPool doc) for the IPv4 subnets."""
    spaces: dict[str, dict[str, Any]] = {}
    pools: dict[str, dict[str, Any]] = {}
    for subnet in snapshot.subnets.values():
        if not _is_ipv4(subnet) or not subnet.get("network_id"):
            continue
        doc = space_doc(region, subnet["network_id"])
        spaces[doc["metadata"]["name"]] = doc
        pool = pool_doc(region, subnet)
        pools[pool["metadata"]["name"]] = pool
    return spaces, pools


def endpoint_in_space(doc: dict[str, Any], space: str) -> dict[str, Any]:
    """The endpoint doc as a member of `space`: IPv4 addresses only."""
    spec = doc["spec"]
    spec["addressSpace"] = space
    spec["ipNetworks"] = [n for n in spec.get("ipNetworks") or [] if ":" not in n]
    spec.pop("ipv6Gateway", None)
    for field in ("allowedIps", "allowSpoofedSourcePrefixes"):
        kept = [n for n in spec.get(field) or [] if ":" not in n]
        if kept:
            spec[field] = kept
        else:
            spec.pop(field, None)
    return doc


class SpaceSyncer:
    """Writes the spaces and pools of `wanted` through the API client (so a space's prefix
    is allocated and claimed as calicoctl's would be) and deletes the ones this region owns
    that Neutron no longer has. The driver's resync calls `ensure` before the endpoints are
    written and `remove_stale` after them, so no endpoint names a space that is gone."""

    def __init__(self, client: ResourceClient, region: names.Region = names.NO_REGION) -> None:
        self.client, self.region = client, region

    def _owned(self, kind: str) -> dict[str, Any]:
        region = self.region.name or "no-region"
        return {r.name: r for r in self.client.list(kind).items
                if (r.metadata.labels or {}).get(LABEL_ORCHESTRATOR) == names.ORCHESTRATOR
                and (r.metadata.labels or {}).get(REGION_LABEL) == region}

    def ensure(self, spaces: Mapping[str, dict[str, Any]],
               pools: Mapping[str, dict[str, Any]]) -> None:
        """Create the missing spaces, then create or update the pools."""
        have = self._owned("AddressSpace")
        for name, doc in sorted(spaces.items()):
            if name not in have:
                try:
                    self.client.create(doc)
                    log.info("address space %s created for network %s", name,
                             doc["metadata"]["annotations"][names.NETWORK_ID_ANNOTATION])
                except ResourceAlreadyExists:
                    pass
        have_pools = self._owned("IPPool")
        for name, doc in sorted(pools.items()):
            current = have_pools.get(name)
            if current is None:
                try:
                    self.client.create(doc)
                except ResourceAlreadyExists:
                    pass
            elif current.spec.cidr != doc["spec"]["cidr"]:
                log.error("IPPool %s: subnet cidr changed from %s to %s; left as it is",
                          name, current.spec.cidr, doc["spec"]["cidr"])

    def remove_stale(self, spaces: Mapping[str, Any], pools: Mapping[str, Any]) -> None:
        """Delete the owned pools, then spaces, that are not wanted."""
        for name in sorted(set(self._owned("IPPool")) - set(pools)):
            self._delete("IPPool", name)
        for name in sorted(set(self._owned("AddressSpace")) - set(spaces)):
            self._delete("AddressSpace", name)

    def _delete(self, kind: str, name: str) -> None:
        try:
            self.client.delete(kind, name)
            log.info("%s %s deleted (its Neutron object is gone)", kind, name)
        except DatastoreError as err:
            log.warning("%s %s: not deleted yet (%s); the resync retries", kind, name, err)

    def remove_pool(self, subnet_id: str) -> None:
        """A subnet was deleted: its pool goes (its space at the next resync)."""
        name = pool_name(self.region, subnet_id)
        if name in self._owned("IPPool"):
            self._delete("IPPool", name)
