"""Imports every module that defines resource kinds, so that they register in `KINDS`."""
from . import ippool  # noqa: F401,E402  (IPPool, IPReservation)
from . import bgp  # noqa: F401,E402  (BGPPeer, BGPConfiguration, BGPFilter)
