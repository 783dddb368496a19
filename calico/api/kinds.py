"""Imports every module that defines resource kinds, so that they register in `KINDS`."""
from . import ippool  # noqa: F401,E402  (IPPool, IPReservation)
from . import bgp  # noqa: F401,E402  (BGPPeer, BGPConfiguration, BGPFilter)
from . import policy  # noqa: F401,E402  (NetworkPolicy, GlobalNetworkPolicy, Staged*, Tier)
from . import profile  # noqa: F401,E402  (Profile)
from . import networkset  # noqa: F401,E402  (NetworkSet, GlobalNetworkSet)
from . import endpoints  # noqa: F401,E402  (WorkloadEndpoint, HostEndpoint)
from . import felixconfig  # noqa: F401,E402  (FelixConfiguration)
from . import cluster  # noqa: F401,E402  (Node, ClusterInformation, KubeControllersConfiguration, IPAMConfiguration, BlockAffinity)
