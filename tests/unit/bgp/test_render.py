"""The BIRD 2 renderer: peers per Calico's rules, filters, and configs BIRD itself accepts."""

import subprocess

import pytest

from calico.bgp.render import BGPInputs, RenderError, compute_peers, render
from tests.conftest import require_programs


def node(name, v4=None, v6=None, asn=None, rr=None, labels=None):
    bgp = {}
    if v4:
        bgp["ipv4Address"] = v4
    if v6:
        bgp["ipv6Address"] = v6
    if asn:
        bgp["asNumber"] = asn
    if rr:
        bgp["routeReflectorClusterID"] = rr
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"bgp": bgp}}


def pool(cidr, **spec):
    return {"metadata": {"name": cidr.replace("/", "-")}, "spec": {"cidr": cidr, **spec}}


def peer(name, **spec):
    return {"metadata": {"name": name}, "spec": spec}


def three_nodes(**kw):
    return BGPInputs(
        hostname="h1",
        nodes={"h1": node("h1", "10.0.0.1/24", "fd00::1/64"),
               "h2": node("h2", "10.0.0.2/24", "fd00::2/64"),
               "h3": node("h3", "10.0.0.3/24")},
        pools=[pool("10.65.0.0/16"), pool("fd10::/48")],
        blocks=["10.65.0.0/26", "fd10::/122"], **kw)


def bird_accepts(text, tmp_path):
    require_programs("bird")
    conf = tmp_path / "bird.conf"
    conf.write_text(text)
    proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + "\n" + text


def test_full_mesh_both_families(tmp_path):
    inp = three_nodes()
    assert [p.name for p in compute_peers(inp, 4)] == ["Mesh_10_0_0_2", "Mesh_10_0_0_3"]
    assert [p.name for p in compute_peers(inp, 6)] == ["Mesh_fd00__2"]
    text = render(inp)
    assert "route 10.65.0.0/26 blackhole;" in text
    assert "if net = 10.65.0.0/26 then accept;" in text
    assert "if net ~ 10.65.0.0/26 then reject;" in text
    assert "direct;" in text
    # A BIRD restarted with -R waits at most 10 s (not BIRD's 240) for sessions that are not
    # back before it syncs the kernel; the kernel protocol keeps routes meanwhile.
    assert "graceful restart wait 10;" in text
    assert "learn; persist; scan time 10; graceful restart;" in text
    bird_accepts(text, tmp_path)


def test_mesh_disabled_with_route_reflector(tmp_path):
    inp = three_nodes(configs={"default": {"spec": {"nodeToNodeMeshEnabled": False}}},
                      peers=[peer("to-rr", nodeSelector="all()", peerSelector="has(rr)"),
                             peer("rr-to-all", nodeSelector="has(rr)", peerSelector="all()")])
    inp.nodes["h1"] = node("h1", "10.0.0.1/24", rr="1.0.0.1", labels={"rr": ""})
    peers = compute_peers(inp, 4)
    assert [(p.name, p.rr_client) for p in peers] == [("Node_10_0_0_2", True),
                                                      ("Node_10_0_0_3", True)]
    text = render(inp)
    assert "rr client; rr cluster id 1.0.0.1;" in text
    assert "if source = RTS_BGP then reject;" not in text  # a reflector reflects
    bird_accepts(text, tmp_path)


def test_client_of_reflector_peers_only_with_it():
    inp = three_nodes(configs={"default": {"spec": {"nodeToNodeMeshEnabled": False}}},
                      peers=[peer("to-rr", nodeSelector="all()", peerSelector="has(rr)")])
    inp.nodes["h3"] = node("h3", "10.0.0.3/24", rr="1.0.0.1", labels={"rr": ""})
    assert [(p.name, p.rr_client) for p in compute_peers(inp, 4)] == [("Node_10_0_0_3", False)]


def test_explicit_peers_and_options(tmp_path):
    inp = three_nodes(
        configs={"default": {"spec": {"asNumber": "64513", "listenPort": 1790}}},
        peers=[peer("tor", peerIP="192.168.5.1:1179", asNumber=65000,
                    keepOriginalNextHop=True, maxRestartTime="2m"),
               peer("other-node", node="h2", peerIP="10.0.0.9", asNumber="1.10"),
               peer("mine", node="h1", peerIP="10.0.0.254", asNumber=64513,
                    numAllowedLocalASNumbers=2, ttlSecurity=2),
               peer("v6", peerIP="[fd00::99]:179", asNumber=65001)],
        passwords={"tor": "s3cret", "v6": 'bad"quote'})
    names = [p.name for p in compute_peers(inp, 4)]
    assert names == ["Mesh_10_0_0_2", "Mesh_10_0_0_3", "Node_10_0_0_254",
                     "Global_192_168_5_1_port_1179"]
    text = render(inp)
    assert "neighbor 192.168.5.1 port 1179 as 65000;" in text
    assert 'password "s3cret";' in text
    assert "fd00::99" not in text and "password has characters" in inp.skipped[0]
    assert "graceful restart time 120;" in text
    assert "next hop keep;" in text
    assert "local 10.0.0.1 port 1790 as 64513;" in text
    assert "allow local as 2;" in text and "ttl security on; multihop 2;" in text
    bird_accepts(text, tmp_path)


def test_disable_bgp_export_and_communities(tmp_path):
    inp = three_nodes(configs={"default": {"spec": {
        "communities": [{"name": "gold", "value": "64512:100"}],
        "prefixAdvertisements": [{"cidr": "10.65.0.0/16", "communities": ["gold", "1:2:3"]}]}}})
    inp.pools.append(pool("10.70.0.0/16", disableBGPExport=True))
    text = render(inp)
    assert "if net ~ [ 10.70.0.0/16+ ] then reject;" in text
    assert "bgp_community.add((64512, 100));" in text
    assert "bgp_large_community.add((1, 2, 3));" in text
    bird_accepts(text, tmp_path)


def test_missing_node_or_address_is_a_clear_error():
    with pytest.raises(RenderError, match='Node "nope" does not exist'):
        render(BGPInputs(hostname="nope"))
    with pytest.raises(RenderError, match="has no spec.bgp"):
        render(BGPInputs(hostname="h", nodes={"h": node("h")}))


def test_one_bgppeer_configures_route_reflector_and_clients(tmp_path):
    """Calico's usual RR set-up: mesh off, one BGPPeer from every node to the reflectors;
    the reflector peers back with every client."""
    nodes = {"rr": node("rr", "10.0.0.1/24", rr="224.0.0.1", labels={"route-reflector": "true"}),
             "c1": node("c1", "10.0.0.2/24"), "c2": node("c2", "10.0.0.3/24")}
    peers = [peer("to-rr", nodeSelector="all()", peerSelector="route-reflector == 'true'")]
    configs = {"default": {"spec": {"nodeToNodeMeshEnabled": False}}}

    def inputs(host):
        return BGPInputs(hostname=host, nodes=nodes, peers=peers, configs=configs,
                         pools=[pool("10.65.0.0/16")], blocks=["10.65.0.0/26"])

    rr_peers = compute_peers(inputs("rr"), 4)
    assert [(p.name, p.rr_client) for p in rr_peers] == [("Node_10_0_0_2", True),
                                                         ("Node_10_0_0_3", True)]
    assert [(p.name, p.rr_client) for p in compute_peers(inputs("c1"), 4)] == [
        ("Node_10_0_0_1", False)]
    text = render(inputs("rr"))
    assert "rr client; rr cluster id 224.0.0.1;" in text
    bird_accepts(text, tmp_path)


def test_floating_ip_routes_in_a_disabled_pool_are_learned_and_exported(tmp_path):
    """Felix routes an OpenStack floating IP (/32, its route protocol) to the instance's tap;
    a pool covering the floating range, disabled for IPAM, is what lets BIRD advertise it."""
    inp = three_nodes()
    inp.pools.append(pool("172.16.1.0/24", disabled=True))
    text = render(inp)
    pools = "[ 10.65.0.0/16+, 172.16.1.0/24+ ]"
    assert f"import where krt_source = {inp.route_protocol} && net ~ {pools};" in text
    assert f"if net ~ {pools} then accept;" in text
    bird_accepts(text, tmp_path)
