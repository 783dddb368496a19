"""The L3 fabric's pure pieces: topology plan, ToR and spine BIRD configurations, the
resources the lab writes (checked with calico.api and against calico.bgp's peer
computation), and the ping-gap parser."""

import ipaddress
import subprocess

import pytest

from calico import api
from calico.bgp.render import BGPInputs, compute_peers, render
from calico.lab import fabric, failover
from calico.lab.proc import LabError
from tests.conftest import require_programs


def _routers(topo, role):
    return [r for r in topo["routers"] if r["role"] == role]


def test_plan_racks_subnets_and_ases():
    topo = fabric.plan(2, 2, 2, as_per_host=False)
    assert [r["name"] for r in topo["routers"]] == ["tor1", "tor2", "spine1", "spine2"]
    assert [(h["name"], h["address"], h["gateway"], h["asn"]) for h in topo["hosts"]] == [
        ("r1h1", "198.18.1.11/24", "198.18.1.1", 65001),
        ("r1h2", "198.18.1.12/24", "198.18.1.1", 65001),
        ("r2h1", "198.18.2.11/24", "198.18.2.1", 65002),
        ("r2h2", "198.18.2.12/24", "198.18.2.1", 65002)]
    assert {r["asn"] for r in _routers(topo, "spine")} == {fabric.SPINE_ASN}
    assert [r["asn"] for r in _routers(topo, "tor")] == [65001, 65002]
    ids = [r["router_id"] for r in topo["routers"]]
    assert len(set(ids)) == len(ids)


def test_plan_ipv6_beside_ipv4():
    topo = fabric.plan(3, 1, 2, as_per_host=False, ipv6=True)
    tor3 = _routers(topo, "tor")[2]
    assert tor3["address6"] == "fd00:198:18:3::1/64"
    assert [h["address6"] for h in topo["hosts"]] == [
        "fd00:198:18:1::11/64", "fd00:198:18:2::11/64", "fd00:198:18:3::11/64"]
    for link in tor3["links"]:
        assert ipaddress.ip_address(link["peer6"]) in \
            ipaddress.ip_interface(link["address6"]).network
    assert fabric.plan(1, 1, 1, False)["hosts"][0]["address6"] is None


def test_plan_as_per_host():
    topo = fabric.plan(2, 2, 1, as_per_host=True)
    assert [h["asn"] for h in topo["hosts"]] == [65101, 65102, 65201, 65202]


def test_plan_links_are_both_ends_of_one_30():
    topo = fabric.plan(3, 1, 2, as_per_host=False, ipv6=True)
    ends = {}
    for r in topo["routers"]:
        for link in r["links"]:
            ends[(r["name"], link["peer_name"])] = link
    assert len(ends) == 3 * 2 * 2
    for (a, b), link in ends.items():
        back = ends[(b, a)]
        assert back["peer"] == link["address"].split("/")[0]
        assert link["peer"] == back["address"].split("/")[0]
        assert back["peer6"] == link["address6"].split("/")[0]
        for key in ("address", "address6"):
            assert ipaddress.ip_interface(link[key]).network == \
                ipaddress.ip_interface(back[key]).network
    for key in ("address", "address6"):
        nets = {ipaddress.ip_interface(x[key]).network for x in ends.values()}
        assert len(nets) == 6


@pytest.mark.parametrize("args", [(0, 1, 1), (1, 0, 1), (1, 1, 0), (10, 1, 1), (1, 1, 5)])
def test_plan_limits(args):
    with pytest.raises(LabError, match="must be between"):
        fabric.plan(*args, as_per_host=False)


def test_tor_config_as_per_rack_reflects_for_its_hosts_only():
    topo = fabric.plan(2, 2, 2, as_per_host=False)
    conf = fabric.router_config(_routers(topo, "tor")[0], topo["hosts"])
    assert "protocol bgp r1h1 from fabric" in conf and "r2h1" not in conf
    assert conf.count("rr client;") == 2 and conf.count("next hop self ebgp;") == 2
    assert "neighbor 198.18.1.11 as 65001;" in conf
    assert "neighbor 198.19.1.5 as 65000;" in conf and "neighbor 198.19.2.5 as 65000;" in conf
    assert "merge paths on" in conf and "connect delay time 1" in conf


def test_tor_config_as_per_host_is_ebgp():
    topo = fabric.plan(1, 2, 1, as_per_host=True)
    conf = fabric.router_config(_routers(topo, "tor")[0], topo["hosts"])
    assert "rr client" not in conf and "next hop self" not in conf
    assert "neighbor 198.18.1.12 as 65102;" in conf


def test_ipv6_sessions_beside_ipv4():
    topo = fabric.plan(2, 1, 2, as_per_host=False, ipv6=True)
    conf = fabric.router_config(_routers(topo, "tor")[0], topo["hosts"])
    assert "protocol bgp r1h1_v6 from fabric" in conf and "protocol bgp spine2_v6" in conf
    assert "neighbor fd00:198:18:1::11 as 65001;" in conf
    assert "protocol kernel { ipv6" in conf and "ipv4; ipv6; interface" in conf
    assert "_v6" not in fabric.router_config(_routers(fabric.plan(1, 1, 1, False), "tor")[0],
                                             [])


@pytest.mark.parametrize("as_per_host,ipv6", [(False, False), (True, False), (False, True)])
def test_router_configs_parse(tmp_path, as_per_host, ipv6):
    require_programs("bird")
    topo = fabric.plan(2, 2, 2, as_per_host, ipv6)
    for router in topo["routers"]:
        path = tmp_path / f"{router['name']}.conf"
        path.write_text(fabric.router_config(router, topo["hosts"]))
        proc = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, (router["name"], proc.stderr)


def _inputs(topo, host):
    """What calico.bgp sees once calico-node has registered every host (AS, address)."""
    resources = fabric.bgp_resources(topo)
    nodes = {}
    for h in topo["hosts"]:
        node = next(r for r in resources if r["kind"] == "Node"
                    and r["metadata"]["name"] == h["name"])
        nodes[h["name"]] = dict(node, spec={"bgp": {"ipv4Address": h["address"],
                                                    "ipv6Address": h["address6"],
                                                    "asNumber": h["asn"]}})
    return BGPInputs(hostname=host, nodes=nodes,
                     peers=[r for r in resources if r["kind"] == "BGPPeer"],
                     configs={"default": next(r for r in resources
                                              if r["kind"] == "BGPConfiguration")})


@pytest.mark.parametrize("as_per_host", [False, True])
def test_resources_validate_and_peer_each_host_with_its_tor_only(as_per_host):
    topo = fabric.plan(2, 2, 2, as_per_host, ipv6=True)
    resources = fabric.bgp_resources(topo)
    for res in resources:
        api.validate(res)
    for h in topo["hosts"]:
        peers = compute_peers(_inputs(topo, h["name"]), 4)
        assert [(str(p.ip), p.asn) for p in peers] == [(h["gateway"], 65000 + h["rack"])]
        assert peers[0].name == f"Node_198_18_{h['rack']}_1"
        peers6 = compute_peers(_inputs(topo, h["name"]), 6)
        assert [(str(p.ip), p.asn) for p in peers6] == \
            [(f"fd00:198:18:{h['rack']}::1", 65000 + h["rack"])]
    conf = render(_inputs(topo, "r2h2"))
    assert "Mesh_" not in conf and "direct;" in conf


def test_reply_gap_from_ping_output():
    out = """PING 10.65.0.1 (10.65.0.1) 56(84) bytes of data.
[1000.000] 64 bytes from 10.65.0.1: icmp_seq=1 ttl=62 time=0.1 ms
[1000.010] 64 bytes from 10.65.0.1: icmp_seq=2 ttl=62 time=0.1 ms
[1000.250] 64 bytes from 10.65.0.1: icmp_seq=26 ttl=62 time=0.1 ms
[1000.260] 64 bytes from 10.65.0.1: icmp_seq=27 ttl=62 time=0.1 ms

--- 10.65.0.1 ping statistics ---
27 packets transmitted, 4 received, 85.1852% packet loss, time 260ms
"""
    stamps, sent = failover.ping_replies(out)
    assert (len(stamps), sent) == (4, 27)
    assert failover.longest_gap(stamps) == pytest.approx(0.24)
    assert failover.longest_gap(stamps, 0, 1000.2) == pytest.approx(0.01)
    assert failover.longest_gap(stamps, 1000.255) == pytest.approx(0.01)
    assert failover.longest_gap([]) == 0.0
