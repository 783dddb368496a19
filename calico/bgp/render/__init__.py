"""Render BIRD 2 configuration for one Calico node from datastore state. Pure: no I/O.

Input is a `BGPInputs` snapshot (resources in Calico's JSON form, plus this node's affine
IPAM blocks); output is the text of one bird.conf that runs IPv4 and IPv6 in one daemon.
The parts, each with its contract in its own docstring:

- `peers`: which sessions (mesh, BGPPeers, reverse peerings, route-reflector clients).
- `filters`: pools, blocks, communities, IP-in-IP, service CIDRs, device-route interfaces.
- `bgpfilter`: BGPFilter resources as BIRD functions.
- `bird`: the text: block blackholes, `calico_export<v>(bool to_ibgp)` (our blocks and
  borrowed addresses, never outside a pool or from a `disableBGPExport` pool; eBGP-learned
  routes to iBGP peers, iBGP-learned routes to eBGP peers), the kernel protocol (Felix's
  routes in, BGP routes out; `persist` and graceful restart keep routes while BIRD restarts:
  calico-node starts BIRD with `-R`, so the kernel is not synced until the sessions are back
  and have sent End-of-RIB, or `GR_WAIT` seconds have passed), one `protocol bgp` per peer.

Protocol names follow Calico's (`Mesh_10_0_0_2`, `Node_10_0_0_3`, `Global_10_0_0_4`,
`Global_10_0_0_4_port_1790`), so `calicoctl node status` reads the same as Calico's.
"""

from .bird import render
from .model import (
           DEFAULT_AS,
           DEFAULT_ROUTE_PROTOCOL,
           GR_WAIT,
           BGPInputs,
           Peer,
           RenderError,
           parse_asn,
)
from .peers import compute_peers

__all__ = ["DEFAULT_AS", "DEFAULT_ROUTE_PROTOCOL", "GR_WAIT", "BGPInputs", "Peer", "RenderError",
           "compute_peers", "parse_asn", "render"]
