"""The two v3 kinds that Calico's etcd backend keeps under /calico/ipam/v2/, not under
/calico/resources/v3/: IPAMConfiguration (the one `default`, at `/calico/ipam/v2/config`) and
BlockAffinity (at `/calico/ipam/v2/host/<node>/ipv4/block/<cidr>`). The typed client maps them
here, so `calicoctl apply` of an IPAMConfiguration changes what IPAM reads, and `get
blockaffinities` shows IPAM's real affinities.

The keys and stored JSON are ipamkeys.py's (which IPAM builds on); only what that JSON holds
survives a round trip (no uid or creationTimestamp). A BlockAffinity's name is derived from its
node and CIDR as Calico derives it (`<node>-<cidr with '.', ':' and '/' as '-'>`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from calico.api import Resource, ValidationError, validate

from . import ipamkeys

KINDS = ("IPAMConfiguration", "BlockAffinity")


def owns_kind(kind: str) -> bool:
    return kind in KINDS


def owns_key(key: str) -> bool:
    return key == ipamkeys.CONFIG_KEY or ipamkeys.parse_affinity_key(key) is not None


def prefix(kind: str) -> str:
    return ipamkeys.CONFIG_KEY if kind == "IPAMConfiguration" else ipamkeys.HOSTS_PREFIX


def affinity_name(node: str, cidr: str) -> str:
    return f"{node}-{re.sub(r'[.:/]', '-', cidr)}"


def key_for(kind: str, name: str, spec: dict[str, Any] | None = None) -> str:
    """The key of a named resource; a BlockAffinity needs its spec (node and cidr)."""
    if kind == "IPAMConfiguration":
        return ipamkeys.CONFIG_KEY
    if not spec or "node" not in spec or "cidr" not in spec:
        # A get or delete by name: affinities are found by their derived name (see find_key).
        raise LookupError(name)
    return ipamkeys.affinity_key(spec["node"], ipaddress.ip_network(spec["cidr"]))


def key_of(res: Resource) -> str:
    spec = res.to_dict().get("spec", {})
    if res.KIND == "BlockAffinity":
        derived = affinity_name(spec["node"], spec["cidr"])
        if res.name != derived:
            raise ValidationError(res.KIND, res.name, "metadata.name",
                                  f'"{res.name}" must be "{derived}" (node and cidr)')
    return key_for(res.KIND, res.name, spec)


def parse_key(key: str) -> tuple[str, None, str] | None:
    if key == ipamkeys.CONFIG_KEY:
        return "IPAMConfiguration", None, "default"
    parsed = ipamkeys.parse_affinity_key(key)
    if parsed is None:
        return None
    node, cidr = parsed
    return "BlockAffinity", None, affinity_name(node, str(cidr))


def encode(res: Resource) -> str:
    spec = res.to_dict().get("spec", {})
    if res.KIND == "IPAMConfiguration":
        return ipamkeys.IPAMConfig(
            strict_affinity=bool(spec.get("strictAffinity", False)),
            auto_allocate_blocks=bool(spec.get("autoAllocateBlocks", True)),
            max_blocks_per_host=int(spec.get("maxBlocksPerHost") or 0)).to_json()
    return ipamkeys.BlockAffinity(state=spec["state"]).to_json()


def decode(key: str, value: str) -> Resource:
    """The resource at an IPAM key. Raises ValueError / ValidationError if it is not valid."""
    if key == ipamkeys.CONFIG_KEY:
        cfg = ipamkeys.IPAMConfig.from_json(value)
        return validate({"apiVersion": "projectcalico.org/v3", "kind": "IPAMConfiguration",
                         "metadata": {"name": "default"},
                         "spec": {"strictAffinity": cfg.strict_affinity,
                                  "autoAllocateBlocks": cfg.auto_allocate_blocks,
                                  "maxBlocksPerHost": cfg.max_blocks_per_host}})
    parsed = ipamkeys.parse_affinity_key(key)
    if parsed is None:
        raise ValueError(f"{key} is not an IPAM resource key")
    node, cidr = parsed
    json.loads(value or "{}")  # a non-JSON value is corrupt, not an empty affinity
    aff = ipamkeys.BlockAffinity.from_json(value)
    return validate({"apiVersion": "projectcalico.org/v3", "kind": "BlockAffinity",
                     "metadata": {"name": affinity_name(node, str(cidr))},
                     "spec": {"state": aff.state, "node": node, "cidr": str(cidr)}})
