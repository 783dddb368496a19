"""Imports every module that defines resource kinds, so that they register in `KINDS`."""

from . import (  # noqa: F401  (imported for their registrations)
    addressspace,  # AddressSpace (our extension)
    bgp,  # BGPPeer, BGPConfiguration, BGPFilter
    cluster,  # Node, ClusterInformation, KubeControllersConfiguration, IPAM kinds
    endpoints,  # WorkloadEndpoint, HostEndpoint
    felixconfig,  # FelixConfiguration
    ippool,  # IPPool, IPReservation
    networkset,  # NetworkSet, GlobalNetworkSet
    policy,  # NetworkPolicy, GlobalNetworkPolicy, Staged*, Tier
    profile,  # Profile
)
