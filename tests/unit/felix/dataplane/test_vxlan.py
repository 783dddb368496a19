"""VXLANManager against a fake kernel: device, address, FDB, ARP and routes; only the
difference written; a restarted manager over a programmed kernel writes nothing."""

from __future__ import annotations

from dataclasses import replace

from calico.felix import messages as m
from calico.felix.dataplane.netlink import Link, Neighbour
from calico.felix.dataplane.vxlan import DEVICE, VXLANManager
from calico.felix.dataplane.vxlan_kernel import FDBEntry, GatewayRoute, VXLANDevice

ME = "node-1"


class FakeKernel:
    """Links, addresses, one vxlan device, FDB, ARP and gateway routes; records writes."""

    def __init__(self) -> None:
        self.link_list = [Link(1, "lo", True, 65536), Link(2, "eth0", True, 1500)]
        self.addrs = [(2, "198.18.0.11/24")]
        self.device: VXLANDevice | None = None
        self.fdb_entries: set[FDBEntry] = set()
        self.arp_entries: set[Neighbour] = set()
        self.gw_routes: set[GatewayRoute] = set()
        self.writes: list[str] = []

    def links(self):
        return list(self.link_list)

    def addresses(self, ifindex=0):
        return [a for a in self.addrs if not ifindex or a[0] == ifindex]

    def set_addresses(self, ifindex, add, delete):
        self.writes.append(f"addr {ifindex} +{add} -{delete}")
        self.addrs = [a for a in self.addrs if not (a[0] == ifindex and a[1] in delete)]
        self.addrs += [(ifindex, c) for c in add]

    def vxlan_device(self, name):
        return self.device if self.device and self.device.name == name else None

    def create_vxlan_device(self, dev):
        self.writes.append(f"create {dev.name}")
        self.device = replace(dev, index=10)
        self.link_list.append(Link(10, dev.name, True, dev.mtu, dev.mac))

    def set_link(self, index, mtu, mac):
        self.writes.append(f"set {index} {mtu} {mac}")
        self.device = replace(self.device, mtu=mtu, mac=mac, up=True)

    def delete_link(self, index):
        self.writes.append(f"delete {index}")
        self.device = None
        self.link_list = [ln for ln in self.link_list if ln.index != index]
        self.gw_routes = {r for r in self.gw_routes if r.ifindex != index}

    def fdb(self, ifindex):
        return [e for e in self.fdb_entries if e.ifindex == ifindex]

    def set_fdb(self, add, delete):
        self.writes.append(f"fdb +{len(add)} -{len(delete)}")
        self.fdb_entries = (self.fdb_entries - set(delete)) | set(add)
        return []

    def arp(self, ifindex):
        return [n for n in self.arp_entries if n.ifindex == ifindex]

    def set_neighbours(self, add, delete):
        self.writes.append(f"arp +{len(add)} -{len(delete)}")
        self.arp_entries = (self.arp_entries - set(delete)) | set(add)
        return []

    def gateway_routes(self, protocol):
        return [r for r in self.gw_routes if r.protocol == protocol]

    def set_gateway_routes(self, add, delete):
        self.writes.append(f"routes +{len(add)} -{len(delete)}")
        dsts = {r.dst for r in add}
        self.gw_routes = {r for r in self.gw_routes - set(delete) if r.dst not in dsts}
        self.gw_routes |= set(add)
        return []


def vtep(node, parent, tunnel, mac):
    return m.VXLANTunnelEndpointUpdate(node, parent, tunnel, mac)


MESSAGES = [
    m.ConfigUpdate({"VXLANVNI": "4096", "VXLANPort": "4789"}),
    m.IPAMPoolUpdate("vx", "10.65.0.0/16", vxlan_mode="CrossSubnet"),
    vtep(ME, "198.18.0.11", "10.65.0.0", "66:00:00:00:00:01"),
    vtep("node-2", "198.18.0.12", "10.65.1.0", "66:00:00:00:00:02"),
    vtep("node-3", "198.18.1.13", "10.65.2.0", "66:00:00:00:00:03"),
    m.RouteUpdate("10.65.1.0/26", "node-2", "198.18.0.12", vxlan=False),
    m.RouteUpdate("10.65.2.0/26", "node-3", "198.18.1.13", vxlan=True),
]


def programmed(kernel: FakeKernel, messages=MESSAGES) -> VXLANManager:
    mgr = VXLANManager(kernel, ME)
    for msg in messages:
        mgr.on_message(msg)
    mgr.resync()
    mgr.apply()
    return mgr


def test_programs_device_fdb_arp_routes():
    k = FakeKernel()
    programmed(k)
    assert k.device == VXLANDevice(DEVICE, 4096, 4789, "198.18.0.11", 2,
                                   "66:00:00:00:00:01", 1450, index=10)
    assert (10, "10.65.0.0/32") in k.addrs
    assert k.fdb_entries == {FDBEntry(10, "66:00:00:00:00:02", "198.18.0.12"),
                             FDBEntry(10, "66:00:00:00:00:03", "198.18.1.13")}
    assert k.arp_entries == {Neighbour(10, "10.65.1.0", "66:00:00:00:00:02"),
                             Neighbour(10, "10.65.2.0", "66:00:00:00:00:03")}
    assert k.gw_routes == {GatewayRoute("10.65.1.0/26", "198.18.0.12", 2, 80),
                           GatewayRoute("10.65.2.0/26", "10.65.2.0", 10, 80, onlink=True)}


def test_restart_over_programmed_kernel_writes_nothing():
    k = FakeKernel()
    programmed(k)
    k.writes.clear()
    programmed(k)  # a new manager: Felix restarted
    assert k.writes == []


def test_mtu_and_vni_from_config():
    k = FakeKernel()
    mgr = programmed(k)
    mgr.on_message(m.ConfigUpdate({"vxlanMTU": "1400", "VXLANVNI": "4096"}))
    k.writes.clear()
    mgr.apply()
    assert k.writes == ["set 10 1400 66:00:00:00:00:01"]
    mgr.on_message(m.ConfigUpdate({"vxlanMTU": "1400", "VXLANVNI": "77"}))
    k.writes.clear()
    mgr.apply()
    assert k.device.vni == 77 and k.writes[:2] == ["delete 10", "create vxlan.calico"]
    assert len(k.fdb_entries) == 2  # a new device starts empty: everything written again


def test_route_moves_to_tunnel_by_replace_not_delete():
    k = FakeKernel()
    mgr = programmed(k)
    k.writes.clear()
    mgr.on_message(m.RouteUpdate("10.65.1.0/26", "node-2", "198.18.0.12", vxlan=True))
    mgr.apply()
    assert k.writes == ["routes +1 -0"]
    assert GatewayRoute("10.65.1.0/26", "10.65.1.0", 10, 80, onlink=True) in k.gw_routes


def test_remote_vtep_and_route_removed():
    k = FakeKernel()
    mgr = programmed(k)
    mgr.on_message(m.RouteRemove("10.65.2.0/26"))
    mgr.on_message(m.VXLANTunnelEndpointRemove("node-3"))
    mgr.apply()
    assert {e.dst for e in k.fdb_entries} == {"198.18.0.12"}
    assert {n.ip for n in k.arp_entries} == {"10.65.1.0"}
    assert {r.dst for r in k.gw_routes} == {"10.65.1.0/26"}


def test_vxlan_off_removes_device_and_routes():
    k = FakeKernel()
    mgr = programmed(k)
    mgr.on_message(m.IPAMPoolUpdate("vx", "10.65.0.0/16", vxlan_mode="Never"))
    mgr.apply()
    assert k.device is None and k.gw_routes == set()


def test_explicit_vxlan_enabled_false_wins_over_pools():
    k = FakeKernel()
    programmed(k, [*MESSAGES, m.ConfigUpdate({"VXLANEnabled": "false"})])
    assert k.device is None


def test_nothing_touched_before_local_vtep():
    k = FakeKernel()
    programmed(k, [msg for msg in MESSAGES
                   if not (isinstance(msg, m.VXLANTunnelEndpointUpdate) and msg.node == ME)])
    assert k.writes == []


def test_foreign_device_with_our_name_is_replaced():
    k = FakeKernel()
    k.device = VXLANDevice(DEVICE, 1, 8472, "198.18.0.11", 2, "66:00:00:00:00:01", 1450, 10)
    k.link_list.append(Link(10, DEVICE, True, 1450))
    programmed(k)
    assert k.writes[:2] == ["delete 10", "create vxlan.calico"]
    assert (k.device.vni, k.device.port) == (4096, 4789)


def test_gateway_routes_outside_pools_are_never_touched():
    """With deviceRouteProtocol 3 ("boot"), the host's default route carries it too."""
    k = FakeKernel()
    default = GatewayRoute("0.0.0.0/0", "198.18.0.1", 2, 3)
    k.gw_routes.add(default)
    mgr = programmed(k, [*MESSAGES, m.ConfigUpdate({"DeviceRouteProtocol": "3"})])
    assert default in k.gw_routes
    mgr.on_message(m.IPAMPoolUpdate("vx", "10.65.0.0/16", vxlan_mode="Never"))
    mgr.apply()
    assert k.device is None and k.gw_routes == {default}
