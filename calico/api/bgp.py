"""BGPPeer, BGPConfiguration and BGPFilter: how the nodes exchange routes.

These feed the BGP renderer (calico.bgp), which turns them, with Node resources and IPAM blocks,
into BIRD configuration. Nothing is defaulted at validation: Calico stores these as written and
the renderer applies BIRD's and Calico's defaults (mesh on, AS 64512, port 179, source address
"UseNodeIP", graceful restart 120s).

Validation follows libcalico-go's validator (`validateBGPPeerSpec`,
`validateBGPConfigurationSpec`, the BGPFilter rule checks) and `clientv3/bgpconfig.go`, which
allows some fields only on the cluster-wide configuration named "default". AS numbers accept the
plain and the dotted form and are stored as integers; durations are stored in Go's canonical
text ("90s" is kept as "1m30s").
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import StrictBool, StrictInt, model_validator

from .base import CalicoModel, FieldError, Resource, check_dns1123_subdomain, checked, render_value
from .ippool import Selector
from .nets import check_duration, parse_as_number, parse_cidr, parse_ip, parse_ip_port

ASNumber = checked(int | None, lambda v: None if v is None else parse_as_number(v))
Duration = checked(str | None, lambda v: None if v is None else check_duration(v))


def _check_name(value: Any) -> Any:
    return None if value is None else check_dns1123_subdomain(value)


Name = checked(str | None, _check_name)


def _check_ip(value: Any) -> Any:
    if value is None:
        return None
    parse_ip(value)
    return value


def _check_ip_port(value: Any) -> Any:
    if value is None:
        return None
    parse_ip_port(value)
    return value


def _check_strict_net(value: Any) -> str:
    """Calico's "net" rule: an address, or a CIDR without host bits."""
    parse_cidr(value, strict=True)
    return value


class SecretKeySelector(CalicoModel):
    name: str | None = None
    key: str
    optional: StrictBool | None = None


class BGPPassword(CalicoModel):
    secretKeyRef: SecretKeySelector | None = None


# ---- BGPPeer ---------------------------------------------------------------------------------

class BGPPeerSpec(CalicoModel):
    node: Name = None
    nodeSelector: Selector = None
    peerIP: checked(str | None, _check_ip_port) = None
    asNumber: ASNumber = None
    localASNumber: ASNumber = None
    peerSelector: Selector = None
    localWorkloadSelector: Selector = None
    keepOriginalNextHop: StrictBool | None = None
    nextHopMode: Literal["Auto", "Self", "Keep"] | None = None
    password: BGPPassword | None = None
    sourceAddress: Literal["UseNodeIP", "None"] | None = None
    maxRestartTime: Duration = None
    keepaliveTime: Duration = None
    numAllowedLocalASNumbers: StrictInt | None = None
    ttlSecurity: StrictInt | None = None
    filters: list[checked(str, check_dns1123_subdomain)] | None = None
    reachableBy: checked(str | None, _check_ip) = None
    reversePeering: Literal["Auto", "Manual"] | None = None

    @model_validator(mode="after")
    def _rules(self) -> BGPPeerSpec:
        if self.keepOriginalNextHop is False:
            self.keepOriginalNextHop = None  # a non-pointer Go bool: false is never stored
        def clash(field: str, value: Any, other: str) -> FieldError:
            return FieldError(f"must be empty when {other} is set", field=(field,), value=value)

        if self.node and self.nodeSelector:
            raise clash("node", self.node, "nodeSelector")
        if self.peerIP and self.peerSelector:
            raise clash("peerIP", self.peerIP, "peerSelector")
        if self.asNumber and self.peerSelector:
            raise clash("asNumber", self.asNumber, "peerSelector")
        if self.localWorkloadSelector:
            if not self.asNumber:
                raise FieldError("requires asNumber to be set", field=("localWorkloadSelector",),
                                 value=self.localWorkloadSelector)
            if self.peerIP:
                raise clash("peerIP", self.peerIP, "localWorkloadSelector")
            if self.peerSelector:
                raise clash("peerSelector", self.peerSelector, "localWorkloadSelector")
        if self.reachableBy:
            if not self.peerIP:
                raise FieldError("must be empty when peerIP is empty",
                                 field=("reachableBy",), value=self.reachableBy)
            if parse_ip(self.reachableBy).version != parse_ip_port(self.peerIP)[0].version:
                raise FieldError("is not of the same IP version as peerIP",
                                 field=("reachableBy",), value=self.reachableBy)
        if self.keepOriginalNextHop and self.nextHopMode is not None:
            raise FieldError("is deprecated and cannot be true when nextHopMode is set",
                             field=("keepOriginalNextHop",), value=True)
        if self.ttlSecurity is not None and not 0 <= self.ttlSecurity <= 255:
            raise FieldError("is not a valid hop count (0-255)", field=("ttlSecurity",),
                             value=self.ttlSecurity)
        if self.numAllowedLocalASNumbers is not None and self.numAllowedLocalASNumbers < 0:
            raise FieldError("must not be negative", field=("numAllowedLocalASNumbers",),
                             value=self.numAllowedLocalASNumbers)
        return self


class BGPPeer(Resource, kind="BGPPeer", plural="bgppeers"):
    spec: BGPPeerSpec = BGPPeerSpec()


# ---- BGPConfiguration --------------------------------------------------------------------------

_STANDARD_COMMUNITY = re.compile(r"^(\d+):(\d+)$")
_LARGE_COMMUNITY = re.compile(r"^(\d+):(\d+):(\d+)$")


def community_problem(value: Any) -> str | None:
    """Why `value` is not a BGP community ("aa:nn" with 16-bit parts, or "aa:nn:mm" with 32-bit
    parts), or None when it is one."""
    if not isinstance(value, str):
        return "is not a community value"
    for pattern, bits in ((_STANDARD_COMMUNITY, 16), (_LARGE_COMMUNITY, 32)):
        match = pattern.match(value)
        if match:
            if any(int(part) >= 2**bits for part in match.groups()):
                return f"is not a valid community: each part must be a {bits}-bit number"
            return None
    return 'is not a valid community: "aa:nn" (standard) or "aa:nn:mm" (large)'


def _check_community(value: Any) -> Any:
    problem = community_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class CIDRBlock(CalicoModel):
    cidr: checked(str | None, lambda v: None if v is None else _check_strict_net(v)) = None


class Community(CalicoModel):
    name: checked(str, check_dns1123_subdomain)
    value: checked(str, _check_community)


class PrefixAdvertisement(CalicoModel):
    cidr: checked(str, _check_strict_net)
    communities: list[str]


_IGNORED_INTERFACE = re.compile(r"^[a-zA-Z0-9_.*-]{1,15}$")


def _check_ignored_interfaces(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("is not a list")
    for i, name in enumerate(value):
        if not isinstance(name, str) or name == "*" or not _IGNORED_INTERFACE.match(name):
            raise FieldError("is not a valid interface name or pattern (up to 15 of "
                             "[a-zA-Z0-9_.*-], not just \"*\")", field=(i,), value=name)
    return value


def _check_ipv(version: int) -> Any:
    def check(value: Any) -> Any:
        if value is not None and parse_ip(value).version != version:
            raise ValueError(f"is not an IPv{version} address")
        return value
    return check


class BGPConfigurationSpec(CalicoModel):
    logSeverityScreen: Literal["Trace", "Debug", "Info", "Warning", "Error", "Fatal"] | None = None
    nodeToNodeMeshEnabled: StrictBool | None = None
    asNumber: ASNumber = None
    serviceLoadBalancerIPs: list[CIDRBlock] | None = None
    serviceExternalIPs: list[CIDRBlock] | None = None
    serviceClusterIPs: list[CIDRBlock] | None = None
    serviceLoadBalancerAggregation: Literal["Enabled", "Disabled"] | None = None
    communities: list[Community] | None = None
    prefixAdvertisements: list[PrefixAdvertisement] | None = None
    listenPort: StrictInt | None = None
    nodeMeshPassword: BGPPassword | None = None
    nodeMeshMaxRestartTime: Duration = None
    bindMode: Literal["None", "NodeIP"] | None = None
    ignoredInterfaces: checked(list[str] | None, _check_ignored_interfaces) = None
    localWorkloadPeeringIPV4: checked(str | None, _check_ipv(4)) = None
    localWorkloadPeeringIPV6: checked(str | None, _check_ipv(6)) = None

    @model_validator(mode="after")
    def _rules(self) -> BGPConfigurationSpec:
        if self.listenPort is not None and not 1 <= self.listenPort <= 65535:
            raise FieldError("is not a valid port (1-65535)", field=("listenPort",),
                             value=self.listenPort)
        if self.communities and not self.prefixAdvertisements:
            raise FieldError("are defined but not used by any prefixAdvertisements",
                             field=("communities",), value=[c.name for c in self.communities])
        names = {c.name for c in self.communities or []}
        for i, adv in enumerate(self.prefixAdvertisements or []):
            for j, community in enumerate(adv.communities):
                if community not in names and community_problem(community):
                    raise FieldError("is neither a community value nor the name of one in "
                                     "spec.communities", value=community,
                                     field=("prefixAdvertisements", i, "communities", j))
        if self.nodeToNodeMeshEnabled is False:
            for field in ("nodeMeshPassword", "nodeMeshMaxRestartTime"):
                if getattr(self, field) is not None:
                    raise FieldError("cannot be set when nodeToNodeMeshEnabled is false",
                                     field=(field,), value=self.model_dump(mode="json")[field])
        return self


# Fields clientv3 allows only on the cluster-wide configuration named "default".
DEFAULT_ONLY_FIELDS = ("nodeToNodeMeshEnabled", "asNumber", "serviceLoadBalancerIPs",
                       "serviceExternalIPs", "serviceClusterIPs")


class BGPConfiguration(Resource, kind="BGPConfiguration", plural="bgpconfigurations"):
    spec: BGPConfigurationSpec = BGPConfigurationSpec()

    @model_validator(mode="after")
    def _default_only(self) -> BGPConfiguration:
        if self.name == "default":
            return self
        for field in DEFAULT_ONLY_FIELDS:
            value = getattr(self.spec, field)
            if value is not None and value != []:
                raise FieldError('can only be set on the BGPConfiguration named "default"',
                                 field=("spec", field),
                                 value=self.spec.model_dump(mode="json")[field])
        return self


# ---- BGPFilter ---------------------------------------------------------------------------------

class PrefixLength(CalicoModel):
    min: StrictInt | None = None
    max: StrictInt | None = None


class CommunityMatch(CalicoModel):
    values: list[checked(str, _check_community)]


_FILTER_INTERFACE = re.compile(r"^[a-zA-Z0-9_.*-]{1,15}$")


def _check_filter_interface(value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or not _FILTER_INTERFACE.match(value)):
        raise ValueError("is not a valid interface name or pattern (up to 15 of [a-zA-Z0-9_.*-])")
    return value


def _check_operation(value: Any) -> Any:
    """One route operation: exactly one of addCommunity, prependASPath, setPriority."""
    known = {"addCommunity", "prependASPath", "setPriority"}
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= known:
        raise ValueError("must set exactly one of addCommunity, prependASPath, setPriority")
    (op, arg), = value.items()
    if not isinstance(arg, dict):
        raise FieldError("is not an object", field=(op,), value=arg)
    if op == "addCommunity":
        problem = community_problem(arg.get("value"))
        if problem:
            raise FieldError(problem, field=(op, "value"), value=arg.get("value"))
    elif op == "prependASPath":
        prefix = arg.get("prefix")
        if not isinstance(prefix, list) or not 1 <= len(prefix) <= 10:
            raise FieldError("must list 1 to 10 AS numbers", field=(op, "prefix"), value=prefix)
        for i, asn in enumerate(prefix):
            try:
                parse_as_number(asn)
            except ValueError as err:
                raise FieldError(str(err), field=(op, "prefix", i), value=asn) from None
    else:
        prio = arg.get("value")
        if isinstance(prio, bool) or not isinstance(prio, int) or not 1 <= prio <= 2147483646:
            raise FieldError("is not a valid priority (1-2147483646)", field=(op, "value"),
                             value=prio)
    return value


class BGPFilterRule(CalicoModel):
    """One rule of a BGPFilter; `_VERSION` (4 or 6) is set by the subclasses."""

    action: Literal["Accept", "Reject"]
    cidr: str | None = None
    matchOperator: Literal["Equal", "NotEqual", "In", "NotIn"] | None = None
    prefixLength: PrefixLength | None = None
    source: Literal["RemotePeers"] | None = None
    interface: checked(str | None, _check_filter_interface) = None
    peerType: Literal["eBGP", "iBGP"] | None = None
    priority: StrictInt | None = None
    asPathPrefix: list[ASNumber] | None = None
    communities: CommunityMatch | None = None
    operations: list[checked(dict[str, Any], _check_operation)] | None = None

    @model_validator(mode="after")
    def _rules(self) -> BGPFilterRule:
        version = 6 if isinstance(self, BGPFilterRuleV6) else 4
        if self.cidr:
            try:
                net = parse_cidr(self.cidr)
            except ValueError as err:
                raise FieldError(str(err), field=("cidr",), value=self.cidr) from None
            if net.version != version:
                raise FieldError(f"is not an IPv{version} CIDR", field=("cidr",), value=self.cidr)
        if self.cidr and not self.matchOperator:
            raise FieldError("requires matchOperator (Equal, NotEqual, In or NotIn)",
                             field=("cidr",), value=self.cidr)
        if self.matchOperator and not self.cidr:
            raise FieldError("requires cidr", field=("matchOperator",), value=self.matchOperator)
        if self.prefixLength is not None:
            if not self.cidr:
                raise FieldError("requires cidr", field=("prefixLength",),
                                 value=self.prefixLength.model_dump(exclude_none=True))
            limit = 32 if version == 4 else 128
            for end in ("min", "max"):
                length = getattr(self.prefixLength, end)
                if length is not None and not 0 <= length <= limit:
                    raise FieldError(f"is not a valid prefix length (0-{limit})",
                                     field=("prefixLength", end), value=length)
        if self.priority is not None and not 1 <= self.priority <= 2147483646:
            raise FieldError("is not a valid priority (1-2147483646)", field=("priority",),
                             value=self.priority)
        if self.communities is not None and len(self.communities.values) != 1:
            raise FieldError("must hold exactly one community", field=("communities", "values"),
                             value=self.communities.values)
        if self.operations and self.action != "Accept":
            raise FieldError(f"are only allowed with action \"Accept\", not "
                             f"{render_value(self.action)}", field=("operations",),
                             value=self.operations)
        return self


class BGPFilterRuleV4(BGPFilterRule):
    pass


class BGPFilterRuleV6(BGPFilterRule):
    pass


class BGPFilterSpec(CalicoModel):
    exportV4: list[BGPFilterRuleV4] | None = None
    importV4: list[BGPFilterRuleV4] | None = None
    exportV6: list[BGPFilterRuleV6] | None = None
    importV6: list[BGPFilterRuleV6] | None = None


class BGPFilter(Resource, kind="BGPFilter", plural="bgpfilters"):
    spec: BGPFilterSpec = BGPFilterSpec()
