"""Writing the resources IPAM reads (IPPools, Nodes, WorkloadEndpoints) into a backend, and
an invariant checker shared by the unit and datastore IPAM tests."""

from __future__ import annotations

import ipaddress
import json

from calico.datastore.kv import Backend
from calico.ipam import model
from calico.ipam.block import AllocationBlock

RES = "/calico/resources/v3/projectcalico.org/"


def add_pool(backend: Backend, name: str, cidr: str, **spec: object) -> None:
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name},
           "spec": {"cidr": cidr, **spec}}
    backend.put(f"{RES}ippools/{name}", json.dumps(doc))


def add_node(backend: Backend, name: str, labels: dict[str, str] | None = None) -> None:
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "Node",
           "metadata": {"name": name, "labels": labels or {}}, "spec": {}}
    backend.put(f"{RES}nodes/{name}", json.dumps(doc))


def add_wep(backend: Backend, namespace: str, name: str, ips: list[str], pod: str = "") -> None:
    spec: dict[str, object] = {"ipNetworks": [f"{ip}/{32 if ':' not in ip else 128}"
                                              for ip in ips]}
    if pod:
        spec["pod"] = pod
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
           "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    backend.put(f"{RES}workloadendpoints/{namespace}/{name}", json.dumps(doc))


def blocks(backend: Backend) -> list[AllocationBlock]:
    kvs, _ = backend.list(model.BLOCKS_PREFIX)
    return [AllocationBlock.from_json(kv.value) for kv in kvs]


def allocations(backend: Backend) -> dict[str, str | None]:
    """ip -> handle id, over every block."""
    return {a.ip: a.handle_id for b in blocks(backend) for a in b.allocations_list()}


def check_invariants(backend: Backend, pool_cidrs: list[str]) -> dict[str, str | None]:
    """Every block is self-consistent, inside a pool, and agrees with the handles.
    Returns ip -> handle."""
    nets = [ipaddress.ip_network(c) for c in pool_cidrs]
    counted: dict[str, dict[str, int]] = {}
    out: dict[str, str | None] = {}
    for b in blocks(backend):
        assert any(b.cidr.version == n.version and b.cidr.subnet_of(n) for n in nets), f"block {b.cidr} outside every pool"
        free = [o for o, a in enumerate(b.allocations) if a is None]
        assert sorted(b.unallocated) == free, f"block {b.cidr}: unallocated != free ordinals"
        used = {a for a in b.allocations if a is not None}
        assert used == set(range(len(b.attributes))), f"block {b.cidr}: stray attributes"
        for h, n in b.handle_counts().items():
            counted.setdefault(h, {})[str(b.cidr)] = n
        for a in b.allocations_list():
            assert a.ip not in out, f"duplicate address {a.ip}"
            out[a.ip] = a.handle_id
    kvs, _ = backend.list(model.HANDLES_PREFIX)
    stored = {model.parse_handle_key(kv.key): json.loads(kv.value)["block"] for kv in kvs}
    assert stored == counted, "handles disagree with the blocks' allocations"
    return out
