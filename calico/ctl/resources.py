"""What calicoctl knows about each kind: the names it accepts on the command line and the
columns of its tables (`-o ps`, the default, and `-o wide`), as Calico's calicoctl prints them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from calico.api.decode import go_text

Column = tuple[str, Callable[[dict[str, Any]], str]]


def _path(*keys: str, default: str = "") -> Callable[[dict[str, Any]], str]:
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for key in keys:
            if not isinstance(cur, dict) or key not in cur:
                return default
            cur = cur[key]
        if isinstance(cur, bool):
            return "true" if cur else "false"
        if isinstance(cur, list):
            return ",".join(str(v) for v in cur)
        if isinstance(cur, dict):
            return ",".join(f"{k}={v}" for k, v in sorted(cur.items()))
        return str(cur)
    return get


NAME: Column = ("NAME", _path("metadata", "name"))
NAMESPACE: Column = ("NAMESPACE", _path("metadata", "namespace"))


@dataclass(frozen=True)
class KindInfo:
    kind: str
    aliases: tuple[str, ...]
    ps: tuple[Column, ...] = (NAME,)
    wide: tuple[Column, ...] = (NAME,)


def _pool_selector(obj: dict[str, Any]) -> str:
    return _path("spec", "nodeSelector")(obj) or "all()"


def _tier_order(obj: dict[str, Any]) -> str:
    """As calicoctl's template prints the *float64: Go's %v ("1e+06"), "<nil>" when unset."""
    order = obj.get("spec", {}).get("order")
    return "<nil>" if order is None else go_text(float(order))


def sort_tiers(tiers: list[Any]) -> list[Any]:
    """calicoctl's order for `get tiers`: by order, unset last, else as listed (by name)."""
    return sorted(tiers, key=lambda t: (t.spec.order is None, t.spec.order or 0))


_KINDS = [
    KindInfo("BGPConfiguration", ("bgpconfiguration", "bgpconfigurations", "bgpconfig",
                                  "bgpconfigs"),
             ps=(NAME, ("LOGSEVERITY", _path("spec", "logSeverityScreen")),
                 ("MESHENABLED", _path("spec", "nodeToNodeMeshEnabled")),
                 ("ASNUMBER", _path("spec", "asNumber"))),
             wide=(NAME, ("LOGSEVERITY", _path("spec", "logSeverityScreen")),
                   ("MESHENABLED", _path("spec", "nodeToNodeMeshEnabled")),
                   ("ASNUMBER", _path("spec", "asNumber")))),
    KindInfo("BGPPeer", ("bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"),
             ps=(NAME, ("PEERIP", _path("spec", "peerIP")),
                 ("NODE", _path("spec", "node", default="(global)")),
                 ("ASN", _path("spec", "asNumber"))),
             wide=(NAME, ("PEERIP", _path("spec", "peerIP")),
                   ("NODE", _path("spec", "node", default="(global)")),
                   ("ASN", _path("spec", "asNumber")),
                   ("PEERSELECTOR", _path("spec", "peerSelector")),
                   ("NODESELECTOR", _path("spec", "nodeSelector")))),
    KindInfo("BGPFilter", ("bgpfilter", "bgpfilters")),
    KindInfo("ClusterInformation", ("clusterinformation", "clusterinformations",
                                    "clusterinfo", "clusterinfos")),
    KindInfo("FelixConfiguration", ("felixconfiguration", "felixconfigurations",
                                    "felixconfig", "felixconfigs")),
    KindInfo("GlobalNetworkPolicy", ("globalnetworkpolicy", "globalnetworkpolicies", "gnp",
                                     "gnps"),
             wide=(NAME, ("ORDER", _path("spec", "order")),
                   ("SELECTOR", _path("spec", "selector")))),
    KindInfo("GlobalNetworkSet", ("globalnetworkset", "globalnetworksets", "gns"),
             wide=(NAME, ("NETS", _path("spec", "nets")))),
    KindInfo("HostEndpoint", ("hostendpoint", "hostendpoints", "hep", "heps"),
             ps=(NAME, ("NODE", _path("spec", "node"))),
             wide=(NAME, ("NODE", _path("spec", "node")),
                   ("INTERFACE", _path("spec", "interfaceName")),
                   ("IPS", _path("spec", "expectedIPs")),
                   ("PROFILES", _path("spec", "profiles")))),
    KindInfo("IPPool", ("ippool", "ippools", "ipp", "ipps", "pool", "pools"),
             ps=(NAME, ("CIDR", _path("spec", "cidr")), ("SELECTOR", _pool_selector)),
             wide=(NAME, ("CIDR", _path("spec", "cidr")),
                   ("NAT", _path("spec", "natOutgoing", default="false")),
                   ("IPIPMODE", _path("spec", "ipipMode", default="Never")),
                   ("VXLANMODE", _path("spec", "vxlanMode", default="Never")),
                   ("DISABLED", _path("spec", "disabled", default="false")),
                   ("DISABLEBGPEXPORT", _path("spec", "disableBGPExport", default="false")),
                   ("SELECTOR", _pool_selector))),
    KindInfo("IPReservation", ("ipreservation", "ipreservations", "reservation",
                               "reservations"),
             wide=(NAME, ("CIDRS", _path("spec", "reservedCIDRs")))),
    KindInfo("KubeControllersConfiguration", ("kubecontrollersconfiguration",
                                              "kubecontrollersconfigurations",
                                              "kubecontrollersconfig")),
    KindInfo("StagedKubernetesNetworkPolicy", ("stagedkubernetesnetworkpolicy",
                                               "stagedkubernetesnetworkpolicies",
                                               "stagedkubernetespolicy", "sknp",
                                               "stagedkubernetespolicies", "skpol", "skpols"),
             wide=(NAME, ("PODSELECTOR", _path("spec", "podSelector")))),
    KindInfo("NetworkPolicy", ("networkpolicy", "networkpolicies", "policy", "np", "policies",
                               "pol", "pols"),
             wide=(NAME, ("ORDER", _path("spec", "order")),
                   ("SELECTOR", _path("spec", "selector")))),
    KindInfo("NetworkSet", ("networkset", "networksets", "netset", "netsets"),
             wide=(NAME, ("NETS", _path("spec", "nets")))),
    KindInfo("Node", ("node", "nodes", "no", "nos"),
             wide=(NAME, ("ASN", _path("spec", "bgp", "asNumber", default="(64512)")),
                   ("IPV4", _path("spec", "bgp", "ipv4Address")),
                   ("IPV6", _path("spec", "bgp", "ipv6Address")))),
    KindInfo("Profile", ("profile", "profiles", "pro", "pros"),
             wide=(NAME, ("LABELS", _path("spec", "labelsToApply")))),
    KindInfo("StagedGlobalNetworkPolicy", ("stagedglobalnetworkpolicy",
                                           "stagedglobalnetworkpolicies", "sgnp", "sgnps"),
             wide=(NAME, ("ORDER", _path("spec", "order")),
                   ("SELECTOR", _path("spec", "selector")))),
    KindInfo("StagedNetworkPolicy", ("stagednetworkpolicy", "stagednetworkpolicies", "snp",
                                     "snps"),
             wide=(NAME, ("ORDER", _path("spec", "order")),
                   ("SELECTOR", _path("spec", "selector")))),
    KindInfo("BlockAffinity", ("blockaffinity", "blockaffinities", "affinity", "affinities"),
             ps=(NAME, ("NODE", _path("spec", "node")), ("CIDR", _path("spec", "cidr")),
                 ("STATE", _path("spec", "state"))),
             wide=(NAME, ("NODE", _path("spec", "node")), ("CIDR", _path("spec", "cidr")),
                   ("STATE", _path("spec", "state")))),
    KindInfo("IPAMConfiguration", ("ipamconfiguration", "ipamconfigurations", "ipamconfig",
                                   "ipamconfigs")),
    KindInfo("Tier", ("tier", "tiers"),
             ps=(NAME, ("ORDER", _tier_order)), wide=(NAME, ("ORDER", _tier_order))),
    KindInfo("WorkloadEndpoint", ("workloadendpoint", "workloadendpoints", "wep", "weps"),
             ps=(("WORKLOAD", _path("spec", "workload")), ("NODE", _path("spec", "node")),
                 ("NETWORKS", _path("spec", "ipNetworks")),
                 ("INTERFACE", _path("spec", "interfaceName"))),
             wide=(NAME, ("WORKLOAD", _path("spec", "workload")),
                   ("NODE", _path("spec", "node")),
                   ("NETWORKS", _path("spec", "ipNetworks")),
                   ("INTERFACE", _path("spec", "interfaceName")),
                   ("PROFILES", _path("spec", "profiles")),
                   ("NATS", _path("spec", "ipNATs")))),
]

BY_ALIAS: dict[str, KindInfo] = {a: info for info in _KINDS for a in info.aliases}
BY_KIND: dict[str, KindInfo] = {info.kind: info for info in _KINDS}


def lookup(name: str) -> KindInfo:
    """The kind a command-line word names (any of Calico's aliases, case-insensitive)."""
    info = BY_ALIAS.get(name.lower()) or BY_KIND.get(name)
    if info is None:
        raise LookupError(f"resource type '{name}' is not supported")
    return info


def columns(kind: str, wide: bool, all_namespaces: bool, namespaced: bool) -> tuple[Column, ...]:
    info = BY_KIND.get(kind, KindInfo(kind, ()))
    cols = info.wide if wide else info.ps
    if namespaced and all_namespaces:
        cols = (NAMESPACE, *cols)
    return cols
