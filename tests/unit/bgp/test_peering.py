"""Calico's peering semantics in the rendered BIRD 2 configuration (issue #17, items 1 and 3):
listen ports, passive mesh sides, reverse peering by peerIP, ports as separate sessions,
route reflectors and the mesh, export rules between iBGP and eBGP, communities on our own
blocks, one-address blocks, CALICO_ROUTER_ID, IP-in-IP. Every config is also parsed by BIRD."""

import hashlib
import re

import pytest

from calico.bgp.render import BGPInputs, RenderError, compute_peers, render

from .test_render import bird_accepts, node, peer, pool, three_nodes


def protocol(text, name):
    """The `protocol bgp NAME ... }` block of a rendered config."""
    m = re.search(rf"^protocol bgp {name} from calico_peer {{\n(.*?)^}}", text, re.M | re.S)
    assert m, f"no protocol {name} in\n{text}"
    return m.group(1)


def test_mesh_dials_the_peers_listen_port_and_listens_on_its_own(tmp_path):
    inp = three_nodes(configs={"default": {"spec": {"listenPort": 1790}},
                               "node.h3": {"spec": {"listenPort": 1791}}})
    peers = {p.name: p.port for p in compute_peers(inp, 4)}
    assert peers == {"Mesh_10_0_0_2": 1790, "Mesh_10_0_0_3": 1791}
    text = render(inp)
    assert "neighbor 10.0.0.3 port 1791 as 64512;" in protocol(text, "Mesh_10_0_0_3")
    assert "local 10.0.0.1 port 1790 as 64512;" in protocol(text, "Mesh_10_0_0_2")
    bird_accepts(text, tmp_path)


def test_mesh_side_with_the_greater_address_text_is_passive():
    inp = three_nodes()
    inp.nodes["h4"] = node("h4", "10.0.0.10/24")
    passive = {p.name: p.passive for p in compute_peers(inp, 4)}
    # Calico compares the address text: "10.0.0.10" < "10.0.0.1"? no: "10.0.0.1" is a prefix.
    assert passive == {"Mesh_10_0_0_2": True, "Mesh_10_0_0_3": True, "Mesh_10_0_0_10": True}
    inp.hostname = "h3"
    passive = {p.name: p.passive for p in compute_peers(inp, 4)}
    assert passive == {"Mesh_10_0_0_1": False, "Mesh_10_0_0_2": False,
                       "Mesh_10_0_0_10": False}  # "10.0.0.10" < "10.0.0.3" as text
    assert "passive on;" not in protocol(render(inp), "Mesh_10_0_0_2")


def test_every_pair_has_exactly_one_active_side():
    nodes = {f"n{i}": node(f"n{i}", f"10.0.{i // 3}.{i}/16") for i in range(1, 12)}
    for a in nodes:
        for p in compute_peers(BGPInputs(hostname=a, nodes=nodes), 4):
            other = next(n for n in nodes if nodes[n]["spec"]["bgp"]["ipv4Address"]
                         .startswith(f"{p.ip}/"))
            back = next(q for q in compute_peers(BGPInputs(hostname=other, nodes=nodes), 4)
                        if nodes[a]["spec"]["bgp"]["ipv4Address"].startswith(f"{q.ip}/"))
            assert p.passive != back.passive


def test_bgppeer_by_peer_ip_of_one_of_our_nodes_is_peered_back(tmp_path):
    inp = three_nodes(configs={"default": {"spec": {"nodeToNodeMeshEnabled": False}}},
                      peers=[peer("h2-to-h1", node="h2", peerIP="10.0.0.1", asNumber=64512)])
    assert [p.name for p in compute_peers(inp, 4)] == ["Node_10_0_0_2"]
    inp.hostname = "h2"
    assert [p.name for p in compute_peers(inp, 4)] == ["Node_10_0_0_1"]
    inp.hostname = "h3"
    assert compute_peers(inp, 4) == []
    # reversePeering: Manual leaves the other end to its own BGPPeer.
    inp.hostname = "h1"
    inp.peers[0]["spec"]["reversePeering"] = "Manual"
    assert compute_peers(inp, 4) == []
    bird_accepts(render(inp), tmp_path)


MESH_OFF = {"default": {"spec": {"nodeToNodeMeshEnabled": False}}}


def test_own_bgppeer_beats_a_reverse_peering_to_the_same_address(tmp_path):
    """Calico's confd emits every BGPPeer's own peerings before any reverse one, and the first
    for an address wins: h1's own BGPPeer to h2 sets that session's options even though h2's
    BGPPeer naming h1 sorts first."""
    inp = three_nodes(configs=MESH_OFF, peers=[
        peer("a-h2-to-h1", node="h2", peerIP="10.0.0.1", asNumber=64512, keepaliveTime="40s"),
        peer("z-h1-to-h2", node="h1", peerIP="10.0.0.2", asNumber=64512, keepaliveTime="20s")])
    assert [(p.name, p.keepalive_time) for p in compute_peers(inp, 4)] == [
        ("Node_10_0_0_2", 20)]
    inp.hostname = "h2"  # and the same on the other end, whatever the names' order
    assert [(p.name, p.keepalive_time) for p in compute_peers(inp, 4)] == [
        ("Node_10_0_0_1", 40)]
    bird_accepts(render(inp), tmp_path)


def test_global_bgppeer_beats_a_node_specific_one_to_the_same_address():
    inp = three_nodes(peers=[peer("a-node", node="h1", peerIP="192.168.5.1", asNumber=65001),
                             peer("b-global", peerIP="192.168.5.1", asNumber=65000)])
    assert [(p.name, p.asn) for p in compute_peers(inp, 4) if p.kind != "mesh"] == [
        ("Global_192_168_5_1", 65000)]


def test_peer_ip_names_a_node_only_with_its_as_number():
    inp = three_nodes(configs=MESH_OFF,
                      peers=[peer("h2-out", node="h2", peerIP="10.0.0.1", asNumber=65000)])
    assert compute_peers(inp, 4) == []  # h1 is AS 64512: not the peer h2's BGPPeer names
    inp.peers[0]["spec"]["asNumber"] = 64512
    assert [p.name for p in compute_peers(inp, 4)] == ["Node_10_0_0_2"]


def test_peer_ip_of_a_node_dials_its_listen_port_and_meets_the_reverse_peering(tmp_path):
    """Both ends' BGPPeers and both reverse peerings land on one (address, port) key: one
    session per end, at the listen port, named with it as Calico names it."""
    inp = three_nodes(configs={"default": {"spec": {"nodeToNodeMeshEnabled": False,
                                                    "listenPort": 1790}}},
                      peers=[peer("h1-to-h2", node="h1", peerIP="10.0.0.2", asNumber=64512),
                             peer("h2-to-h1", node="h2", peerIP="10.0.0.1", asNumber=64512)])
    for host, other in (("h1", "10_0_0_2"), ("h2", "10_0_0_1")):
        inp.hostname = host
        assert [(p.name, p.port) for p in compute_peers(inp, 4)] == [
            (f"Node_{other}_port_1790", 1790)]
    text = render(inp)
    assert "neighbor 10.0.0.1 port 1790 as 64512;" in protocol(text, "Node_10_0_0_1_port_1790")
    bird_accepts(text, tmp_path)


def test_same_peer_ip_on_two_ports_is_two_sessions(tmp_path):
    inp = three_nodes(peers=[peer("a", peerIP="192.168.5.1", asNumber=65000),
                             peer("b", peerIP="192.168.5.1:1790", asNumber=65000)])
    names = [p.name for p in compute_peers(inp, 4) if p.kind == "global"]
    assert names == ["Global_192_168_5_1", "Global_192_168_5_1_port_1790"]
    text = render(inp)
    assert "neighbor 192.168.5.1 port 1790 as 65000;" in protocol(
        text, "Global_192_168_5_1_port_1790")
    bird_accepts(text, tmp_path)


def test_route_reflector_has_no_mesh_and_the_mesh_skips_it(tmp_path):
    inp = three_nodes(peers=[peer("to-rr", nodeSelector="!has(rr)", peerSelector="has(rr)")])
    inp.nodes["h3"] = node("h3", "10.0.0.3/24", rr="1.0.0.1", labels={"rr": ""})
    # h1: mesh with h2 (not with the reflector), and a session to the reflector.
    assert [(p.name, p.kind) for p in compute_peers(inp, 4)] == [
        ("Mesh_10_0_0_2", "mesh"), ("Node_10_0_0_3", "node")]
    # The reflector: no mesh at all, its clients peered back.
    inp.hostname = "h3"
    assert [(p.name, p.rr_client) for p in compute_peers(inp, 4)] == [
        ("Node_10_0_0_1", True), ("Node_10_0_0_2", True)]
    text = render(inp)
    assert "rr client; rr cluster id 1.0.0.1;" in protocol(text, "Node_10_0_0_1")
    bird_accepts(text, tmp_path)


def test_reflector_peered_by_peer_ip_treats_it_as_client_and_rr_peers_as_peers():
    inp = three_nodes(configs={"default": {"spec": {"nodeToNodeMeshEnabled": False}}},
                      peers=[peer("rr-rr", nodeSelector="has(rr)", peerSelector="has(rr)"),
                             peer("tor", node="h1", peerIP="10.0.0.9", asNumber=64512)])
    for name in ("h1", "h2"):
        inp.nodes[name] = node(name, f"10.0.0.{name[1]}/24", rr="1.0.0.1", labels={"rr": ""})
    assert [(p.name, p.rr_client) for p in compute_peers(inp, 4)] == [
        ("Node_10_0_0_2", False), ("Node_10_0_0_9", True)]


def test_export_passes_ibgp_learned_routes_to_ebgp_and_the_reverse(tmp_path):
    inp = three_nodes(peers=[peer("tor", peerIP="10.0.0.254", asNumber=65000)])
    text = render(inp)
    # Routes learned from iBGP sessions are recognised by protocol name...
    assert 'if proto = "Mesh_10_0_0_2" then return true;' in text
    assert 'proto = "Global_10_0_0_254"' not in text
    # ...and what BGP learned goes to iBGP peers (eBGP-learned) or eBGP peers (iBGP-learned).
    assert ("if source = RTS_BGP then { if to_ibgp || calico_ibgp_learned4() then accept; "
            "reject; }") in text
    assert "calico_export4(true); reject;" in protocol(text, "Mesh_10_0_0_2")
    assert "calico_export4(false); reject;" in protocol(text, "Global_10_0_0_254")
    bird_accepts(text, tmp_path)


def test_communities_reach_our_own_blocks_and_node_config_wins(tmp_path):
    default = {"communities": [{"name": "gold", "value": "64512:100"}],
               "prefixAdvertisements": [{"cidr": "10.65.0.0/16", "communities": ["gold"]}]}
    inp = three_nodes(configs={"default": {"spec": default}})
    text = render(inp)
    # Added before calico_aggr4() accepts the block, so the block carries them.
    assert text.index("bgp_community.add((64512, 100));") < text.index("  calico_aggr4();")
    inp.configs["node.h1"] = {"spec": {"prefixAdvertisements": [
        {"cidr": "10.65.0.0/26", "communities": ["gold", "1:2:3"]}]}}
    text = render(inp)
    assert ("if net ~ [ 10.65.0.0/26+ ] then { bgp_community.add((64512, 100)); "
            "bgp_large_community.add((1, 2, 3)); }") in text
    assert "10.65.0.0/16+ ] then { bgp_community" not in text
    bird_accepts(text, tmp_path)


def test_one_address_block_gets_no_blackhole(tmp_path):
    inp = three_nodes()
    inp.blocks = ["10.65.0.0/26", "10.65.9.9/32", "fd10::5/128"]
    text = render(inp)
    assert "route 10.65.0.0/26 blackhole;" in text
    assert "10.65.9.9/32 blackhole" not in text and "fd10::5/128 blackhole" not in text
    assert "if net = 10.65.9.9/32 then accept;" in text  # still exported as our block
    bird_accepts(text, tmp_path)


def test_calico_router_id():
    inp = three_nodes(router_id="192.0.2.7")
    assert "router id 192.0.2.7;" in render(inp)
    inp.router_id = "hash"
    digest = hashlib.sha256(b"h1").digest()[:4]
    first = digest[0] - 32 if digest[0] > 223 else digest[0]
    assert f"router id {first}.{digest[1]}.{digest[2]}.{digest[3]};" in render(inp)
    inp.router_id = "fd00::1"
    with pytest.raises(RenderError, match='CALICO_ROUTER_ID "fd00::1" is neither'):
        render(inp)


def test_peer_options_local_as_next_hop_keepalive_reachable_by(tmp_path):
    inp = three_nodes(peers=[
        peer("a", peerIP="192.168.5.1", asNumber=65000, localASNumber=65100,
             nextHopMode="Self", keepaliveTime="20s", reachableBy="10.0.0.254"),
        peer("b", peerIP="10.0.0.200", asNumber=64512, keepOriginalNextHop=True),
        peer("c", peerIP="10.0.0.201", asNumber=64512, nextHopMode="Keep")])
    text = render(inp)
    a = protocol(text, "Global_192_168_5_1")
    assert "local 10.0.0.1 as 65100;" in a and "next hop self;" in a
    assert "hold time 60; keepalive time 20;" in a
    assert "route 192.168.5.1/32 via 10.0.0.254;" in text
    assert "next hop keep;" not in protocol(text, "Global_10_0_0_200")  # iBGP: deprecated field
    assert "next hop keep;" in protocol(text, "Global_10_0_0_201")
    bird_accepts(text, tmp_path)


def test_ipip_pools_route_through_the_tunnel(tmp_path):
    inp = three_nodes()
    inp.pools = [pool("10.65.0.0/16", ipipMode="Always"),
                 pool("10.66.0.0/16", ipipMode="CrossSubnet"), pool("10.67.0.0/16"),
                 pool("fd10::/48", ipipMode="Always")]
    text = render(inp)
    tunnel = 'ifname = "tunl0"; onlink = true; gw = bgp_next_hop;'
    assert f"if source = RTS_BGP && net ~ [ 10.65.0.0/16+ ] then {{ {tunnel} }}" in text
    assert ("if source = RTS_BGP && net ~ [ 10.66.0.0/16+ ] && bgp_next_hop !~ 10.0.0.0/24 "
            f"then {{ {tunnel} }}") in text
    assert "10.67.0.0/16+ ] then { ifname" not in text and "fd10::/48+ ] then { ifname" not in text
    assert "export filter calico_kernel4;" in text
    bird_accepts(text, tmp_path)


def test_service_cidrs_are_advertised_not_programmed(tmp_path):
    inp = three_nodes(configs={"default": {"spec": {
        "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
        "serviceExternalIPs": [{"cidr": "192.0.2.0/24"}, {"cidr": "fd96::/112"}],
        "serviceLoadBalancerIPs": [{"cidr": "198.51.100.0/24"}]}}})
    text = render(inp)
    for cidr in ("10.96.0.0/12", "192.0.2.0/24", "198.51.100.0/24", "fd96::/112"):
        assert f"route {cidr} blackhole;" in text
    assert ("if source = RTS_STATIC && net ~ [ 10.96.0.0/12, 192.0.2.0/24, 198.51.100.0/24 ] "
            "then accept;") in text
    assert "if net ~ [ 10.96.0.0/12+, 192.0.2.0/24+, 198.51.100.0/24+ ] then reject;" in text
    assert "if net ~ [ fd96::/112+ ] then reject;" in text
    bird_accepts(text, tmp_path)
    inp.configs["default"]["spec"]["serviceLoadBalancerAggregation"] = "Disabled"
    assert "198.51.100.0/24" not in render(inp)


def test_ignored_interfaces_and_bind_mode(tmp_path):
    inp = three_nodes(configs={"default": {"spec": {"ignoredInterfaces": ["eth9", "veth*"],
                                                    "bindMode": "NodeIP"}}})
    text = render(inp)
    assert ('protocol direct direct4 { ipv4; interface -"eth9", -"veth*", -"cali*", '
            '-"kube-ipvs*", "*"; }') in text
    assert "strict bind on;" in protocol(text, "Mesh_10_0_0_2")
    inp.configs["node.h1"] = {"spec": {"ignoredInterfaces": ["bond1"], "bindMode": "None"}}
    text = render(inp)
    assert 'interface -"bond1", -"cali*"' in text and "strict bind" not in text
    bird_accepts(text, tmp_path)


def test_local_workload_peering(tmp_path):
    wep = {"metadata": {"name": "h1-k8s-vm1-eth0", "labels": {"bgp": "yes"}},
           "spec": {"node": "h1", "ipNetworks": ["10.65.0.5/32", "fd10::5/128"]}}
    other = {"metadata": {"name": "h1-k8s-web-eth0", "labels": {}},
             "spec": {"node": "h1", "ipNetworks": ["10.65.0.6/32"]}}
    inp = three_nodes(configs={"default": {"spec": {"localWorkloadPeeringIPV4": "169.254.0.179"}}},
                      peers=[peer("vms", localWorkloadSelector="bgp == 'yes'", asNumber=65010)],
                      workloads=[wep, other])
    locals_ = [(p.name, p.local_address) for p in compute_peers(inp, 4) if p.kind ==
               "local_workload"]
    assert locals_ == [("Local_Workload_10_65_0_5", "169.254.0.179")]
    text = render(inp)
    session = protocol(text, "Local_Workload_10_65_0_5")
    assert "local 169.254.0.179 as 64512;" in session and "neighbor 10.65.0.5 as 65010;" in \
        session and "multihop;" in session
    # No IPv6 peering address configured: no IPv6 session, and a note saying why.
    assert "Local_Workload_fd10" not in text
    assert "localWorkloadPeeringIPV6 is not set" in inp.skipped[0]
    bird_accepts(text, tmp_path)
