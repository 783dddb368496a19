"""What calicoctl knows about each kind on the command line: the names it accepts (any of
Calico's aliases, case-insensitive). The columns of its tables are in `tables`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    kind: str
    aliases: tuple[str, ...]


_KINDS = [
    KindInfo("AddressSpace", ("addressspace", "addressspaces")),  # our extension
    KindInfo("BGPConfiguration", ("bgpconfiguration", "bgpconfigurations", "bgpconfig",
                                  "bgpconfigs")),
    KindInfo("BGPPeer", ("bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps")),
    KindInfo("BGPFilter", ("bgpfilter", "bgpfilters")),
    KindInfo("ClusterInformation", ("clusterinformation", "clusterinformations", "clusterinfo",
                                    "clusterinfos")),
    KindInfo("FelixConfiguration", ("felixconfiguration", "felixconfigurations", "felixconfig",
                                    "felixconfigs")),
    KindInfo("GlobalNetworkPolicy", ("globalnetworkpolicy", "globalnetworkpolicies", "gnp",
                                     "gnps")),
    KindInfo("GlobalNetworkSet", ("globalnetworkset", "globalnetworksets", "gns")),
    KindInfo("HostEndpoint", ("hostendpoint", "hostendpoints", "hep", "heps")),
    KindInfo("IPPool", ("ippool", "ippools", "ipp", "ipps", "pool", "pools")),
    KindInfo("IPReservation", ("ipreservation", "ipreservations", "reservation", "reservations")),
    KindInfo("KubeControllersConfiguration", ("kubecontrollersconfiguration",
                                              "kubecontrollersconfigurations",
                                              "kubecontrollersconfig")),
    KindInfo("StagedKubernetesNetworkPolicy", ("stagedkubernetesnetworkpolicy",
                                               "stagedkubernetesnetworkpolicies",
                                               "stagedkubernetespolicy", "sknp",
                                               "stagedkubernetespolicies", "skpol", "skpols")),
    KindInfo("NetworkPolicy", ("networkpolicy", "networkpolicies", "policy", "np", "policies",
                               "pol", "pols")),
    KindInfo("NetworkSet", ("networkset", "networksets", "netset", "netsets")),
    KindInfo("Node", ("node", "nodes", "no", "nos")),
    KindInfo("Profile", ("profile", "profiles", "pro", "pros")),
    KindInfo("StagedGlobalNetworkPolicy", ("stagedglobalnetworkpolicy",
                                           "stagedglobalnetworkpolicies", "sgnp", "sgnps")),
    KindInfo("StagedNetworkPolicy", ("stagednetworkpolicy", "stagednetworkpolicies", "snp",
                                     "snps")),
    KindInfo("BlockAffinity", ("blockaffinity", "blockaffinities", "affinity", "affinities")),
    KindInfo("IPAMConfiguration", ("ipamconfiguration", "ipamconfigurations", "ipamconfig",
                                   "ipamconfigs")),
    KindInfo("Tier", ("tier", "tiers")),
    KindInfo("WorkloadEndpoint", ("workloadendpoint", "workloadendpoints", "wep", "weps")),
]

BY_ALIAS: dict[str, KindInfo] = {a: info for info in _KINDS for a in info.aliases}
BY_KIND: dict[str, KindInfo] = {info.kind: info for info in _KINDS}


def lookup(name: str) -> KindInfo:
    """The kind a command-line word names (any of Calico's aliases, case-insensitive)."""
    info = BY_ALIAS.get(name.lower()) or BY_KIND.get(name)
    if info is None:
        raise LookupError(f"resource type '{name}' is not supported")
    return info

