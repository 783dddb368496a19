"""Endpoints: where policy is enforced. WorkloadEndpoint (namespaced) and HostEndpoint.

A WorkloadEndpoint is one interface of a workload (a pod's veth, a VM's tap): its addresses
(`ipNetworks`, single /32 or /128 each), gateways, NATs, named `ports`, `profiles` and the
host interface Felix polices (`interfaceName`). Orchestrators (the CNI plugin, the Neutron
driver) write them; users rarely do.

A HostEndpoint is a host interface (or "*", all of the host's traffic) on a `node`, found by
`interfaceName` or by one of its `expectedIPs`, with `profiles` and named `ports`.

Calico's rules (libcalico-go clientv3 workloadendpoint.go assignOrValidateName and
names.WorkloadEndpointIdentifiers; validator v3 validateWorkloadEndpointSpec,
validateHostEndpointSpec, validateWorkloadEndpointPort, validateEndpointPort):

- a WorkloadEndpoint's name is derived from its spec and must match it:
  `<node>-<orchestrator>-<id>-<endpoint>` where id is `pod` (orchestrator k8s),
  `containerID` (cni), the orchestrator again (libnetwork) or `workload` (any other); every
  `-` inside a part is doubled, and no part may start or end with `-`. E.g. node "node-1",
  orchestrator "k8s", pod "web-0", endpoint "eth0" -> "node--1-k8s-web--0-eth0".
  As in Calico, this is the client's check when it writes (`check_workload_endpoint_name`,
  called by calico.datastore's ResourceClient), not the validator's: `validate` accepts an
  endpoint without `node`, as Calico's validator does. (Calico computes the name when none
  is given; our `validate` needs one, so use `workload_endpoint_name()` to compute it.)
- on store Calico sets the labels `projectcalico.org/namespace` and
  `projectcalico.org/orchestrator` on a WorkloadEndpoint (selectors match on them); we do the
  same, so a validated endpoint is what Calico stores.
- interfaceName is required for a workload endpoint: "*" or 1-15 of [a-zA-Z0-9_.-].
- ipNetworks: one address each, host bits clear; ipNATs: both addresses of one IP version,
  the internal one inside ipNetworks; gateways of the right IP version; a valid MAC.
- allowedIps: networking-calico's field, not Calico's API (libcalico-go drops it on read):
  a port's allowed address pairs. networking-calico's DHCP agent serves none of them, and
  our Felix also routes its multi-address entries to the endpoint (see README, "Where we
  differ"); the single addresses are in ipNetworks as well, which Calico's Felix routes.
- ports: protocol TCP, UDP or SCTP; port 1-65535; a workload port needs a name unless it has a
  hostPort. A host endpoint needs `node`, and `interfaceName` or `expectedIPs`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import model_validator

from .addressspace import AddressSpaceName
from .base import (
    CalicoModel,
    FieldError,
    Resource,
    ValidationError,
    checked,
    format_path,
    render_value,
)
from .nets import V4_HOST, check_cidr, parse_cidr, parse_ip
from .rules import Name, check_name, check_port_name, parse_protocol, protocol_supports_ports

LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_ORCHESTRATOR = "projectcalico.org/orchestrator"

_INTERFACE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_MAC = re.compile(r"^(?:[0-9a-fA-F]{2}([:-]))(?:[0-9a-fA-F]{2}\1){4,18}[0-9a-fA-F]{2}$"
                  r"|^(?:[0-9a-fA-F]{4}\.){2,9}[0-9a-fA-F]{4}$")


# ---- field checkers ------------------------------------------------------------------------

def check_interface(value: Any) -> str:
    if not isinstance(value, str) or (value != "*" and not _INTERFACE.match(value)):
        raise ValueError("is not a valid interface name (\"*\" or 1-15 of letters, digits, "
                         "'_', '.', '-')")
    return value


def _check_container_id(value: Any) -> str:
    if not isinstance(value, str) or not _CONTAINER_ID.match(value):
        raise ValueError("is not a valid container ID (letters, digits and '-', starting and "
                         "ending with a letter or digit)")
    return value


def _check_mac(value: Any) -> str:
    if not isinstance(value, str) or not _MAC.match(value):
        raise ValueError("is not a valid MAC address")
    if _MAC.match(value) and len(re.sub(r"[^0-9a-fA-F]", "", value)) not in (12, 16, 40):
        raise ValueError("is not a valid MAC address")
    return value


def _check_ip_network(value: Any) -> str:
    """An endpoint address: a bare address or a /32 (/128), host bits clear."""
    if isinstance(value, str) and V4_HOST.fullmatch(value):
        return value  # the common case, without building an IPv4Network
    net = parse_cidr(value, strict=True)
    if net.prefixlen != net.max_prefixlen:
        raise ValueError(f"is not a single address: workload ipNetworks must be /"
                         f"{net.max_prefixlen}")
    return value


def _ip_of_version(version: int):
    def check(value: Any) -> str:
        if parse_ip(value).version != version:
            raise ValueError(f"is not a valid IPv{version} address")
        return value
    return check


def _check_protocol_with_ports(value: Any) -> int | str:
    protocol = parse_protocol(value)
    if not protocol_supports_ports(protocol):
        raise ValueError("is not a protocol with ports (TCP, UDP or SCTP)")
    return protocol


def _int_range(lo: int, hi: int):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"is not a valid port ({lo}-{hi})")
        return value
    return check


def _optional(fn):
    return lambda v: None if v is None else fn(v)


Interface = checked(str | None, _optional(check_interface))
PortProtocol = checked(int | str, _check_protocol_with_ports)
def _check_ip(value: Any) -> str:
    parse_ip(value)
    return value


def _check_host_ip(value: Any) -> str:
    if value != "":
        parse_cidr(value, strict=True)
    return value


IP = checked(str, _check_ip)
ProfileName = checked(str, check_name)
CIDR = checked(str, check_cidr)


# ---- ports ---------------------------------------------------------------------------------

class EndpointPort(CalicoModel):
    """A host endpoint's named port: all three fields required."""

    name: checked(str, check_port_name)
    protocol: PortProtocol
    port: checked(int, _int_range(1, 65535))


class WorkloadEndpointPort(CalicoModel):
    """A workload's named or host-mapped port. Calico always writes all five fields."""

    name: checked(str, lambda v: v if v == "" else check_port_name(v)) = ""
    protocol: PortProtocol
    port: checked(int, _int_range(1, 65535))
    hostPort: checked(int, _int_range(0, 65535)) = 0
    hostIP: checked(str, _check_host_ip) = ""

    @model_validator(mode="after")
    def _named_or_mapped(self) -> WorkloadEndpointPort:
        if not self.name and not self.hostPort:
            raise FieldError("must not be empty when no hostPort is set", field=("name",),
                             value=self.name)
        return self


class IPNAT(CalicoModel):
    internalIP: IP
    externalIP: IP

    @model_validator(mode="after")
    def _same_version(self) -> IPNAT:
        if parse_ip(self.internalIP).version != parse_ip(self.externalIP).version:
            raise FieldError("is not of the same IP version as internalIP",
                             field=("externalIP",), value=self.externalIP)
        return self


class QoSControls(CalicoModel):
    """Bandwidth, packet-rate and connection limits (Felix applies them); carried as given."""

    ingressBandwidth: int | None = None
    ingressBurst: int | None = None
    ingressPeakrate: int | None = None
    ingressMinburst: int | None = None
    egressBandwidth: int | None = None
    egressBurst: int | None = None
    egressPeakrate: int | None = None
    egressMinburst: int | None = None
    ingressPacketRate: int | None = None
    ingressPacketBurst: int | None = None
    egressPacketRate: int | None = None
    egressPacketBurst: int | None = None
    ingressMaxConnections: int | None = None
    egressMaxConnections: int | None = None
    dscp: int | str | None = None


# ---- WorkloadEndpoint ----------------------------------------------------------------------

class WorkloadEndpointSpec(CalicoModel):
    orchestrator: Name = None
    workload: Name = None
    node: Name = None
    containerID: checked(str | None, _optional(_check_container_id)) = None
    pod: Name = None
    endpoint: Name = None
    serviceAccountName: Name = None
    ipNetworks: list[checked(str, _check_ip_network)] | None = None
    ipNATs: list[IPNAT] | None = None
    ipv4Gateway: checked(str | None, _optional(_ip_of_version(4))) = None
    ipv6Gateway: checked(str | None, _optional(_ip_of_version(6))) = None
    profiles: list[ProfileName] | None = None
    interfaceName: checked(str, check_interface)
    mac: checked(str | None, _optional(_check_mac)) = None
    ports: list[WorkloadEndpointPort] | None = None
    allowSpoofedSourcePrefixes: list[CIDR] | None = None
    allowedIps: list[CIDR] | None = None  # networking-calico's: see the module docstring
    qosControls: QoSControls | None = None
    # Our extension (calico/api/addressspace.py): absent = the default, global space.
    addressSpace: AddressSpaceName = None

    @model_validator(mode="after")
    def _space_is_ipv4(self) -> WorkloadEndpointSpec:
        if self.addressSpace is None:
            return self
        for i, net in enumerate(self.ipNetworks or []):
            if parse_cidr(net).version != 4:
                raise FieldError(f"is IPv6: an endpoint of address space "
                                 f'"{self.addressSpace}" has IPv4 addresses only',
                                 field=("ipNetworks", i), value=net)
        return self

    @model_validator(mode="after")
    def _nats_inside_networks(self) -> WorkloadEndpointSpec:
        if not self.ipNATs:
            return self
        networks = [parse_cidr(n) for n in self.ipNetworks or []]
        for i, nat in enumerate(self.ipNATs or []):
            internal = ipaddress.ip_address(nat.internalIP)
            if not any(internal in net for net in networks if net.version == internal.version):
                raise FieldError("is not one of the endpoint's ipNetworks",
                                 field=("ipNATs", i, "internalIP"), value=nat.internalIP)
        return self


def workload_endpoint_name(spec: WorkloadEndpointSpec | dict[str, Any]) -> str:
    """The name Calico derives from a WorkloadEndpoint spec. Raises FieldError (with a
    `spec.<field>` path) if a needed identifier is missing. (The identifiers' own name checks
    already keep a '-' from starting or ending one, which would make the name ambiguous.)"""
    if isinstance(spec, dict):
        spec = WorkloadEndpointSpec.model_validate(spec)
    orchestrator = spec.orchestrator or ""
    ident = {"k8s": "pod", "cni": "containerID", "libnetwork": "orchestrator"}.get(
        orchestrator, "workload")
    fields = ("node", "orchestrator", ident, "endpoint")
    parts = []
    for field in fields:
        value = getattr(spec, field) or ""
        if not value:
            shape = "-".join(f"<{f}>" for f in fields)
            raise FieldError(f"must be set: a WorkloadEndpoint's name is {shape}",
                             field=("spec", field), value=None)
        parts.append(value.replace("-", "--"))
    return "-".join(parts)


class WorkloadEndpoint(Resource, kind="WorkloadEndpoint", plural="workloadendpoints",
                       namespaced=True):
    spec: WorkloadEndpointSpec

    @model_validator(mode="after")
    def _labels(self) -> WorkloadEndpoint:
        labels = dict(self.metadata.labels or {})
        labels[LABEL_NAMESPACE] = self.namespace or "default"
        labels[LABEL_ORCHESTRATOR] = self.spec.orchestrator or ""
        self.metadata.labels = labels
        return self


def check_workload_endpoint_name(res: WorkloadEndpoint) -> None:
    """Raise ValidationError unless the endpoint's name is the one its spec's identifiers
    give (clientv3 assignOrValidateName: the check Calico's client makes on every write)."""
    try:
        expected = workload_endpoint_name(res.spec)
    except FieldError as err:
        raise ValidationError(res.KIND, res.name, format_path(err.field), err.reason) from None
    if res.name != expected:
        raise ValidationError(res.KIND, res.name, "metadata.name",
                              f"{render_value(res.name)} does not match the identifiers in "
                              f"spec (expected \"{expected}\")")


# ---- HostEndpoint --------------------------------------------------------------------------

class HostEndpointSpec(CalicoModel):
    node: Name = None
    interfaceName: Interface = None
    expectedIPs: list[IP] | None = None
    profiles: list[ProfileName] | None = None
    ports: list[EndpointPort] | None = None

    @model_validator(mode="after")
    def _node_and_interface(self) -> HostEndpointSpec:
        if not self.node:
            raise FieldError("must be set: the node this host endpoint is on", field=("node",),
                             value=self.node)
        if not self.interfaceName and not self.expectedIPs:
            raise FieldError("must be set when expectedIPs is empty (give interfaceName, "
                             "expectedIPs or both)", field=("interfaceName",),
                             value=self.interfaceName)
        return self


class HostEndpoint(Resource, kind="HostEndpoint", plural="hostendpoints"):
    spec: HostEndpointSpec


__all__ = [
    "EndpointPort", "HostEndpoint", "HostEndpointSpec", "IPNAT", "QoSControls",
    "WorkloadEndpoint", "WorkloadEndpointPort", "WorkloadEndpointSpec",
    "workload_endpoint_name",
]
