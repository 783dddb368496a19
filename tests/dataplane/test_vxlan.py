"""VXLANManager on the real kernel: two host namespaces on one veth, each with an address
inside the other's "block" reachable only by the routes the manager writes.

- `vxlanMode: Always`: packets between the blocks cross vxlan.calico (its tx counter grows);
- the read-back (device, FDB, ARP, routes) equals what was asked, and a second manager over
  the programmed kernel (a restarted Felix) writes nothing;
- CrossSubnet within one subnet: the route moves to the fabric in one replace and the tunnel
  carries nothing more.
"""

from __future__ import annotations

import json

from calico.felix import messages as m
from calico.felix.dataplane.netlink import NetlinkKernel
from calico.felix.dataplane.vxlan import DEVICE, VXLANManager
from calico.felix.dataplane.vxlan_kernel import GatewayRoute, VXLANKernel
from tests.fixtures.netns import Netns, ping

HOSTS = {"a": ("198.18.0.11", "10.65.0.0", "66:00:00:00:00:0a", "10.65.0.0/26"),
         "b": ("198.18.0.12", "10.65.1.0", "66:00:00:00:00:0b", "10.65.1.0/26")}


def messages(me: str, vxlan: bool) -> list[m.Message]:
    out: list[m.Message] = [m.IPAMPoolUpdate("vx", "10.65.0.0/16", vxlan_mode="CrossSubnet")]
    out += [m.VXLANTunnelEndpointUpdate(n, ip, tun, mac) for n, (ip, tun, mac, _) in
            HOSTS.items()]
    other = "b" if me == "a" else "a"
    ip, _, _, block = HOSTS[other]
    out.append(m.RouteUpdate(block, other, ip, vxlan=vxlan))
    return out


def manager(ns: Netns, me: str, vxlan: bool = True) -> tuple[VXLANManager, list[str]]:
    kernel = VXLANKernel(NetlinkKernel(ns.name))
    writes: list[str] = []
    for name in ("create_vxlan_device", "set_link", "delete_link", "set_fdb",
                 "set_neighbours", "set_gateway_routes", "set_addresses"):
        real = getattr(kernel, name)
        setattr(kernel, name, lambda *a, _r=real, _n=name: (writes.append(_n), _r(*a))[1])
    mgr = VXLANManager(kernel, me)
    for msg in messages(me, vxlan):
        mgr.on_message(msg)
    mgr.apply()
    assert mgr.error == ""
    return mgr, writes


def tx(ns: Netns) -> int:
    return json.loads(ns.ip("-s", "-j", "link", "show", DEVICE).stdout)[0]["stats64"]["tx"][
        "packets"]


def test_vxlan_between_two_hosts(netns):
    a, b = netns.add("vxa"), netns.add("vxb")
    netns.veth(a, "eth0", b, "eth0")
    for ns, me in ((a, "a"), (b, "b")):
        ip, tunnel, _, block = HOSTS[me]
        ns.ip("addr", "add", f"{ip}/24", "dev", "eth0")
        ns.ip("link", "set", "eth0", "up")
        ns.ip("addr", "add", f"{block.split('/')[0][:-1]}9/32", "dev", "lo")  # 10.65.x.9
    mgrs = {"a": manager(a, "a")[0], "b": manager(b, "b")[0]}
    kernel = VXLANKernel(NetlinkKernel(a.name))
    dev = kernel.vxlan_device(DEVICE)
    assert (dev.vni, dev.port, dev.local, dev.mac, dev.mtu) == (
        4096, 4789, "198.18.0.11", "66:00:00:00:00:0a", 1450)
    assert {(e.mac, e.dst) for e in kernel.fdb(dev.index)} == {("66:00:00:00:00:0b",
                                                                "198.18.0.12")}
    assert {(n.ip, n.mac) for n in kernel.arp(dev.index)} == {("10.65.1.0",
                                                               "66:00:00:00:00:0b")}
    assert kernel.gateway_routes(80) == [GatewayRoute("10.65.1.0/26", "10.65.1.0", dev.index,
                                                      80, onlink=True)]

    before = tx(a)
    assert ping(a, "10.65.1.9", count=3)  # from the tunnel address, the device's own
    a.run("ping", "-c", "3", "-i", "0.2", "-I", "10.65.0.9", "10.65.1.9")
    assert tx(a) - before >= 6

    _, writes = manager(a, "a")  # Felix restarted: adopts everything as it is
    assert writes == []

    # CrossSubnet, same subnet: the route is replaced by one via the fabric, no encapsulation.
    for me, other in (("a", "b"), ("b", "a")):
        ip, _, _, block = HOSTS[other]
        mgrs[me].on_message(m.RouteUpdate(block, other, ip, vxlan=False))
        mgrs[me].apply()
    assert kernel.gateway_routes(80)[0].gateway == "198.18.0.12"
    before = tx(a)
    a.run("ping", "-c", "3", "-i", "0.2", "-I", "10.65.0.9", "10.65.1.9")
    assert tx(a) == before
