"""Cluster-wide and per-node resources: Node, ClusterInformation, KubeControllersConfiguration,
IPAMConfiguration and BlockAffinity.

A Node is written by calico-node when it registers (its addresses, BGP identity, tunnel
addresses) and read by the BGP renderer and Felix; `status` carries what the node reports about
itself. ClusterInformation, KubeControllersConfiguration and IPAMConfiguration are singletons:
Calico's clientv3 accepts them only under the name "default". BlockAffinity records which node
owns an IPAM block; IPAM writes it, people do not.

Field rules follow libcalico-go's v3 types and validator (`validateNodeSpec`,
`validateIPAMConfigSpec`, `validateBlockAffinitySpec`); nothing is defaulted.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Literal

from pydantic import StrictBool, StrictInt, model_validator

from .base import CalicoModel, FieldError, Labels, Resource, check_dns1123_subdomain, checked
from .bgp import ASNumber, Duration
from .ippool import Selector
from .nets import parse_cidr, parse_ip


def _ip_of(version: int, *, cidr: bool = False) -> Any:
    """Validator: an IPv4/IPv6 address (or, with `cidr`, an address with a prefix length;
    host bits allowed, as in "10.0.0.5/24")."""
    def check(value: Any) -> Any:
        if value is None:
            return None
        found = parse_cidr(value).version if cidr else parse_ip(value).version
        if found != version:
            raise ValueError(f"is not an IPv{version} {'address/prefix' if cidr else 'address'}")
        return value
    return check


_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def _check_mac(value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or not _MAC.match(value)):
        raise ValueError("is not a valid MAC address")
    return value


def _check_wireguard_key(value: Any) -> Any:
    if value is None:
        return None
    try:
        if len(base64.b64decode(value, validate=True)) == 32:
            return value
    except (ValueError, TypeError):
        pass
    raise ValueError("is not a valid Wireguard public key (32 bytes, base64)")


def _check_name(value: Any) -> Any:
    return None if value is None else check_dns1123_subdomain(value)


def _check_cidr(value: Any) -> str:
    parse_cidr(value)
    return value


def _check_strict_net(value: Any) -> str:
    parse_cidr(value, strict=True)
    return value


def _singleton(kind: str) -> Any:
    @classmethod  # type: ignore[misc]
    def check_name(cls: Any, name: str) -> None:
        if name != "default":
            raise ValueError(f'is not allowed: {kind} is a singleton named "default"')
    return check_name


# ---- Node ------------------------------------------------------------------------------------

class NodeBGPSpec(CalicoModel):
    asNumber: ASNumber = None
    ipv4Address: checked(str | None, _ip_of(4, cidr=True)) = None
    ipv6Address: checked(str | None, _ip_of(6, cidr=True)) = None
    ipv4IPIPTunnelAddr: checked(str | None, _ip_of(4)) = None
    routeReflectorClusterID: checked(str | None, _ip_of(4)) = None


class OrchRef(CalicoModel):
    nodeName: str | None = None
    orchestrator: str


class NodeAddress(CalicoModel):
    address: checked(str, _check_strict_net)
    type: Literal["CalicoNodeIP", "InternalIP", "ExternalIP"] | None = None


class NodeInterface(CalicoModel):
    name: checked(str | None, _check_name) = None
    addresses: list[str] | None = None


class NodeWireguardSpec(CalicoModel):
    interfaceIPv4Address: checked(str | None, _ip_of(4)) = None
    interfaceIPv6Address: checked(str | None, _ip_of(6)) = None


class NodeSpec(CalicoModel):
    bgp: NodeBGPSpec | None = None
    ipv4VXLANTunnelAddr: checked(str | None, _ip_of(4)) = None
    vxlanTunnelMACAddr: checked(str | None, _check_mac) = None
    ipv6VXLANTunnelAddr: checked(str | None, _ip_of(6)) = None
    vxlanTunnelMACAddrV6: checked(str | None, _check_mac) = None
    orchRefs: list[OrchRef] | None = None
    wireguard: NodeWireguardSpec | None = None
    addresses: list[NodeAddress] | None = None
    interfaces: list[NodeInterface] | None = None

    @model_validator(mode="after")
    def _bgp_not_empty(self) -> NodeSpec:
        if self.bgp is not None and not self.bgp.to_dict():
            raise FieldError("must not be empty: omit it, or set ipv4Address / ipv6Address",
                             field=("bgp",), value={})
        return self


class NodeStatus(CalicoModel):
    wireguardPublicKey: checked(str | None, _check_wireguard_key) = None
    wireguardPublicKeyV6: checked(str | None, _check_wireguard_key) = None
    podCIDRs: list[str] | None = None


class Node(Resource, kind="Node", plural="nodes"):
    spec: NodeSpec = NodeSpec()
    status: NodeStatus | None = None


# ---- ClusterInformation -------------------------------------------------------------------------

class ClusterInformationSpec(CalicoModel):
    clusterGUID: str | None = None
    clusterType: str | None = None
    calicoVersion: str | None = None
    datastoreReady: StrictBool | None = None
    variant: str | None = None


class ClusterInformation(Resource, kind="ClusterInformation", plural="clusterinformations"):
    spec: ClusterInformationSpec = ClusterInformationSpec()
    check_name = _singleton("ClusterInformation")


# ---- KubeControllersConfiguration ---------------------------------------------------------------

OnOff = Literal["Enabled", "Disabled"]


class _Reconciler(CalicoModel):
    reconcilerPeriod: Duration = None


class AutoHostEndpointTemplate(CalicoModel):
    generateName: checked(str | None, _check_name) = None
    interfaceCIDRs: list[checked(str, _check_cidr)] | None = None
    interfacePattern: str | None = None
    labels: Labels = None
    nodeSelector: Selector = None


class AutoHostEndpointConfig(CalicoModel):
    autoCreate: OnOff | None = None
    createDefaultHostEndpoint: OnOff | None = None
    templates: list[AutoHostEndpointTemplate] | None = None


class NodeControllerConfig(_Reconciler):
    syncLabels: OnOff | None = None
    hostEndpoint: AutoHostEndpointConfig | None = None
    leakGracePeriod: Duration = None


class LoadBalancerControllerConfig(CalicoModel):
    assignIPs: Literal["AllServices", "RequestedServicesOnly"] | None = None


class MigrationControllerConfig(CalicoModel):
    enabled: OnOff | None = None


class ControllersConfig(CalicoModel):
    node: NodeControllerConfig | None = None
    policy: _Reconciler | None = None
    workloadEndpoint: _Reconciler | None = None
    serviceAccount: _Reconciler | None = None
    namespace: _Reconciler | None = None
    loadBalancer: LoadBalancerControllerConfig | None = None
    policyMigration: MigrationControllerConfig | None = None


class KubeControllersConfigurationSpec(CalicoModel):
    logSeverityScreen: Literal["Trace", "Debug", "Info", "Warning", "Error", "Fatal"] | None = None
    healthChecks: OnOff | None = None
    etcdV3CompactionPeriod: Duration = None
    prometheusMetricsPort: StrictInt | None = None
    controllers: ControllersConfig = ControllersConfig()
    debugProfilePort: StrictInt | None = None

    @model_validator(mode="after")
    def _ports(self) -> KubeControllersConfigurationSpec:
        for field in ("prometheusMetricsPort", "debugProfilePort"):
            port = getattr(self, field)
            if port is not None and not 0 <= port <= 65535:
                raise FieldError("is not a valid port (0-65535)", field=(field,), value=port)
        return self


class KubeControllersConfigurationStatus(CalicoModel):
    runningConfig: KubeControllersConfigurationSpec | None = None
    environmentVars: dict[str, str] | None = None


class KubeControllersConfiguration(Resource, kind="KubeControllersConfiguration",
                                   plural="kubecontrollersconfigurations"):
    spec: KubeControllersConfigurationSpec = KubeControllersConfigurationSpec()
    status: KubeControllersConfigurationStatus | None = None
    check_name = _singleton("KubeControllersConfiguration")


# ---- IPAMConfiguration, BlockAffinity -----------------------------------------------------------

class IPAMConfigurationSpec(CalicoModel):
    strictAffinity: StrictBool | None = None
    maxBlocksPerHost: StrictInt | None = None
    autoAllocateBlocks: StrictBool | None = None
    kubeVirtVMAddressPersistence: OnOff | None = None

    @model_validator(mode="after")
    def _limits(self) -> IPAMConfigurationSpec:
        if self.maxBlocksPerHost is not None and not 0 <= self.maxBlocksPerHost <= 2**31 - 1:
            raise FieldError("must be between 0 (no limit) and 2147483647",
                             field=("maxBlocksPerHost",), value=self.maxBlocksPerHost)
        return self


class IPAMConfiguration(Resource, kind="IPAMConfiguration", plural="ipamconfigurations"):
    spec: IPAMConfigurationSpec = IPAMConfigurationSpec()
    check_name = _singleton("IPAMConfiguration")


def _check_deleted(value: Any) -> Any:
    if value in (True, "true"):
        raise ValueError("cannot be set to true by a client: IPAM marks affinities deleted")
    if value not in (None, False, "false"):
        raise ValueError("is not a boolean")
    return value


class BlockAffinitySpec(CalicoModel):
    state: Literal["confirmed", "pending", "pendingDeletion"]
    node: checked(str, check_dns1123_subdomain)
    cidr: checked(str, _check_strict_net)
    deleted: checked(Any, _check_deleted) = None


class BlockAffinity(Resource, kind="BlockAffinity", plural="blockaffinities"):
    spec: BlockAffinitySpec
