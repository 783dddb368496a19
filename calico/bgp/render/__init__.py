"""Render BIRD 2 configuration for one Calico node from datastore state. Pure: no I/O.

Input is a `BGPInputs` snapshot (resources in Calico's JSON form, plus this node's affine
IPAM blocks); output is the text of one bird.conf that runs IPv4 and IPv6 in one daemon.

What the configuration does, per address family:
- `static_blocks4/6`: a blackhole route per affine block. Exported to peers as the aggregate
  and to the kernel, so traffic to unallocated addresses of our block is dropped here instead
  of following a default route; Felix's /32 routes to workloads are more specific and win.
- `kernel4/6`: learns Felix's workload routes (only those tagged with Felix's route protocol
  and inside a pool), programs routes learned from peers and the block blackholes. `persist`
  and graceful restart keep routes in the kernel while BIRD restarts or reloads: calico-node
  starts BIRD with `-R`, so the kernel table is not synced (routes to other hosts pruned)
  until the sessions are back and have sent End-of-RIB, or `GR_WAIT` seconds have passed.
- `calico_export4/6`: what peers receive: our blocks (never the /32s beneath them), single
  addresses we hold in other hosts' blocks (borrowed), communities from
  `prefixAdvertisements`; never anything outside a pool, never a pool with
  `disableBGPExport`. A route reflector also reflects routes it learned; other nodes export
  only what they originate.
- peers: the node-to-node mesh (unless `nodeToNodeMeshEnabled: false`), and every BGPPeer that
  applies to this node (global, `node:` or `nodeSelector:`), each either one `peerIP` or every
  Calico node matching `peerSelector`; and, on a node that a `peerSelector` selects, the
  reverse sessions to every node that BGPPeer applies to. A node with
  `routeReflectorClusterID` treats iBGP peers outside its cluster as route-reflector clients. A peer on the node's own subnet is direct;
  others are multihop with recursive next hops.

Protocol names follow Calico's (`Mesh_10_0_0_2`, `Node_10_0_0_3`, `Global_10_0_0_4`), so
`calicoctl node status` reads the same as Calico's.
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
