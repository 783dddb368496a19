"""The calculation graph → dataplane vocabulary.

These small, frozen dataclasses are the only thing that crosses from the pure calculation
graph (`calico.felix.calc`) to the dataplane (`calico.felix.dataplane`). They carry fully
resolved state: selectors are already turned into IP-set ids, names into numbers, defaults
applied; the dataplane never sees a resource or a selector.

Ordering guarantees (made by the calc graph's sequencer, relied on by the dataplane):
- an IP set is sent (IPSetUpdate) before any policy whose rules use it, and removed
  (IPSetRemove) only after every policy using it has been updated or removed;
- a policy or profile is sent before any endpoint that references it, and removed only after
  no endpoint references it;
- `InSync` is sent once, after the first complete snapshot.

Identifiers are plain strings or small frozen dataclasses so they hash and compare cheaply.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

# ---- identifiers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class PolicyID:
    """A NetworkPolicy (namespace set) or GlobalNetworkPolicy (namespace "")."""

    name: str
    namespace: str = ""
    tier: str = "default"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True, order=True)
class ProfileID:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True, order=True)
class WorkloadEndpointID:
    """A WorkloadEndpoint resource: its namespace and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, order=True)
class HostEndpointID:
    name: str

    def __str__(self) -> str:
        return self.name


# ---- rules ---------------------------------------------------------------------------------

PortRange = tuple[int, int]  # inclusive; a single port is (p, p)


class Action(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    LOG = "log"
    PASS = "pass"


@dataclass(frozen=True, slots=True)
class Rule:
    """One resolved policy or profile rule. Every match field is AND-ed; lists inside a field
    are OR-ed (any of the nets, any of the ports), except IP-set ids, which are AND-ed (a
    packet must be in every set: a selector and a namespace selector give two sets).
    Protocols are numbers (6 = TCP, 17 = UDP, 1 = ICMP, 58 = ICMPv6, 132 = SCTP)."""

    action: Action
    ip_version: int | None = None  # 4, 6, or None for both
    protocol: int | None = None
    not_protocol: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    not_icmp_type: int | None = None
    not_icmp_code: int | None = None

    src_nets: tuple[str, ...] = ()
    not_src_nets: tuple[str, ...] = ()
    src_ports: tuple[PortRange, ...] = ()
    not_src_ports: tuple[PortRange, ...] = ()
    src_named_port_ip_set_ids: tuple[str, ...] = ()
    not_src_named_port_ip_set_ids: tuple[str, ...] = ()
    src_ip_set_ids: tuple[str, ...] = ()
    not_src_ip_set_ids: tuple[str, ...] = ()

    dst_nets: tuple[str, ...] = ()
    not_dst_nets: tuple[str, ...] = ()
    dst_ports: tuple[PortRange, ...] = ()
    not_dst_ports: tuple[PortRange, ...] = ()
    dst_named_port_ip_set_ids: tuple[str, ...] = ()
    not_dst_named_port_ip_set_ids: tuple[str, ...] = ()
    dst_ip_set_ids: tuple[str, ...] = ()
    not_dst_ip_set_ids: tuple[str, ...] = ()

    log_prefix: str = ""
    rule_id: str = ""  # stable id for counters and comments

    def ip_set_ids(self) -> set[str]:
        """Every IP set this rule references."""
        return {*self.src_ip_set_ids, *self.not_src_ip_set_ids,
                *self.src_named_port_ip_set_ids, *self.not_src_named_port_ip_set_ids,
                *self.dst_ip_set_ids, *self.not_dst_ip_set_ids,
                *self.dst_named_port_ip_set_ids, *self.not_dst_named_port_ip_set_ids}


# ---- IP sets -------------------------------------------------------------------------------


class IPSetType(enum.Enum):
    NET = "net"  # members are addresses or CIDRs: "10.0.0.1/32", "fd00::/64"
    NET_PORT = "net-port"  # named ports: "10.0.0.1,tcp:8080"


@dataclass(frozen=True, slots=True)
class IPSetUpdate:
    """The full membership of a set (first time, or after a resync)."""

    id: str
    type: IPSetType
    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class IPSetDeltaUpdate:
    id: str
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class IPSetRemove:
    id: str


# ---- policies and profiles -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivePolicyUpdate:
    id: PolicyID
    inbound_rules: tuple[Rule, ...] = ()
    outbound_rules: tuple[Rule, ...] = ()
    untracked: bool = False  # doNotTrack
    pre_dnat: bool = False
    apply_on_forward: bool = False


@dataclass(frozen=True, slots=True)
class ActivePolicyRemove:
    id: PolicyID


@dataclass(frozen=True, slots=True)
class ActiveProfileUpdate:
    id: ProfileID
    inbound_rules: tuple[Rule, ...] = ()
    outbound_rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class ActiveProfileRemove:
    id: ProfileID


# ---- endpoints -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierInfo:
    """The policies of one tier that apply to an endpoint, in order, per direction."""

    name: str
    ingress_policies: tuple[PolicyID, ...] = ()
    egress_policies: tuple[PolicyID, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkloadEndpointUpdate:
    id: WorkloadEndpointID
    interface: str
    mac: str = ""
    ipv4_nets: tuple[str, ...] = ()  # "10.65.0.3/32"
    ipv6_nets: tuple[str, ...] = ()
    profile_ids: tuple[ProfileID, ...] = ()
    tiers: tuple[TierInfo, ...] = ()
    allowed_spoofed_source_prefixes: tuple[str, ...] = ()
    # ipNATs, (internal, external) per IP version: floating IPs, 1:1 NAT to the endpoint.
    ipv4_nat: tuple[tuple[str, str], ...] = ()
    ipv6_nat: tuple[tuple[str, str], ...] = ()
    orchestrator: str = ""  # spec.orchestrator: "openstack" endpoints always get their NATs
    # Address spaces (our extension, calc/spaces.py): set for an endpoint of a space, whose
    # nets above are then its translated addresses (prefix::A/128) and `xlat_ipv4` is A.
    address_space: str = ""
    translation_prefix: str = ""  # "64:ff9b:1::/96"
    xlat_ipv4: str = ""  # "10.200.0.5"


@dataclass(frozen=True, slots=True)
class WorkloadEndpointRemove:
    id: WorkloadEndpointID


@dataclass(frozen=True, slots=True)
class HostEndpointUpdate:
    id: HostEndpointID
    interface: str = ""  # "" means: match by expected IPs
    expected_ipv4_addrs: tuple[str, ...] = ()
    expected_ipv6_addrs: tuple[str, ...] = ()
    profile_ids: tuple[ProfileID, ...] = ()
    tiers: tuple[TierInfo, ...] = ()
    untracked_tiers: tuple[TierInfo, ...] = ()
    pre_dnat_tiers: tuple[TierInfo, ...] = ()
    forward_tiers: tuple[TierInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class HostEndpointRemove:
    id: HostEndpointID


# ---- hosts, pools, config ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostMetadataUpdate:
    """A Calico node's addresses (this host's and every other's), for routes and tunnels."""

    hostname: str
    ipv4_addr: str = ""  # "10.0.0.1/24" as in Node spec.bgp.ipv4Address, or ""
    ipv6_addr: str = ""


@dataclass(frozen=True, slots=True)
class HostMetadataRemove:
    hostname: str


@dataclass(frozen=True, slots=True)
class IPAMPoolUpdate:
    id: str  # the pool's name
    cidr: str
    masquerade: bool = False  # natOutgoing
    ipip_mode: str = "Never"  # Never | Always | CrossSubnet
    vxlan_mode: str = "Never"
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class IPAMPoolRemove:
    id: str


@dataclass(frozen=True, slots=True)
class VXLANTunnelEndpointUpdate:
    """A host's VXLAN tunnel endpoint (VTEP), sent once all of it is known: the host's own
    address (`parent_ip`, the outer source/destination), its tunnel address (from IPAM, on its
    vxlan.calico) and the MAC of that device (the Node's `vxlanTunnelMACAddr`, else derived
    from the host name as Calico derives it). Sent for this host too: it configures the
    device."""

    node: str
    parent_ip: str  # "198.18.0.11"
    tunnel_ip: str  # "10.65.3.0"
    mac: str  # "66:12:34:56:78:9a"


@dataclass(frozen=True, slots=True)
class VXLANTunnelEndpointRemove:
    node: str


@dataclass(frozen=True, slots=True)
class RouteUpdate:
    """A route to a remote host's IPAM block (or to one address it borrowed from another
    host's block) inside a VXLAN pool: Felix, not BIRD, programs it. `vxlan` says how:
    through vxlan.calico to the host's VTEP (pool `vxlanMode: Always`, or CrossSubnet and the
    host is in another subnet), or directly via `gateway` on the fabric (CrossSubnet, same
    subnet)."""

    dst: str  # "10.65.3.0/26", "10.65.0.7/32"
    node: str
    gateway: str  # the host's address
    vxlan: bool


@dataclass(frozen=True, slots=True)
class RouteRemove:
    dst: str


@dataclass(frozen=True, slots=True)
class ConfigUpdate:
    """Felix parameters from the datastore (global FelixConfiguration overlaid with this
    host's `node.<hostname>` one), by Calico name; the config loader adds env and file."""

    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InSync:
    """The first complete snapshot has been sent."""


Message = (IPSetUpdate | IPSetDeltaUpdate | IPSetRemove | ActivePolicyUpdate
           | ActivePolicyRemove | ActiveProfileUpdate | ActiveProfileRemove
           | WorkloadEndpointUpdate | WorkloadEndpointRemove | HostEndpointUpdate
           | HostEndpointRemove | HostMetadataUpdate | HostMetadataRemove | IPAMPoolUpdate
           | IPAMPoolRemove | VXLANTunnelEndpointUpdate | VXLANTunnelEndpointRemove
           | RouteUpdate | RouteRemove | ConfigUpdate | InSync)
