"""Acceptance: a 3-host mesh (local datastore, IPv4 + IPv6): sessions, cross-host
connectivity, a new block's reachability, withdrawal when a host stops, and a route
reflector replacing the mesh."""

from __future__ import annotations

import time

import pytest

from calico.datastore.client import ResourceClient

from .conftest import bird_routes, blocks_of, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(make_lab):
    lab = make_lab("m", hosts=3, ipv6=True)
    lab.add_workload("host1", "w1", {"group": "a"})
    lab.add_workload("host2", "w2", {"group": "b"})
    return lab


def _reach_all(lab, pairs, timeout=5.0):
    for src, dst in pairs:
        for addr in lab.workload(dst)["addresses"]:
            wait_until(lambda s=src, a=addr: lab.ping(s, a), timeout,
                       f"{src} -> {dst} ({addr})")


def test_mesh_established_both_families(lab):
    for h in ("host1", "host2", "host3"):
        peers = lab.peers(h)
        assert sorted((p["type"], p["established"]) for p in peers) == \
            [("node-to-node mesh", True)] * 4, peers
        assert {p["address"] for p in peers} >= {f"198.18.0.1{i}" for i in (1, 2, 3)
                                                 if f"host{i}" != h}


def test_cross_host_ipv4_and_ipv6(lab):
    assert any(":" in a for a in lab.workload("w1")["addresses"])
    _reach_all(lab, [("w1", "w2"), ("w2", "w1")])


def test_workload_on_a_new_block_reachable_within_2s(lab):
    assert blocks_of(lab, "host3") == set()
    started = time.monotonic()
    rec = lab.add_workload("host3", "w3")
    added = time.monotonic()
    v4 = next(a for a in rec["addresses"] if ":" not in a)
    waited = wait_until(lambda: lab.ping("w1", v4, timeout=0.2), 2.0,
                        f"w1 -> new workload w3 ({v4})")
    print(f"\nnew block {sorted(blocks_of(lab, 'host3'))}: CNI ADD {added - started:.2f}s, "
          f"then reachable from host1 in {waited:.2f}s")
    _reach_all(lab, [("w2", "w3"), ("w3", "w1")])


def test_stopping_a_host_withdraws_its_routes(lab):
    h3_blocks = blocks_of(lab, "host3") | blocks_of(lab, "host3", 6)
    assert h3_blocks
    for h in ("host1", "host2"):
        assert h3_blocks <= set(bird_routes(lab, h)) | set(bird_routes(lab, h, 6))
    lab.stop_node("host3")
    waited = wait_until(lambda: all(not (h3_blocks & (set(bird_routes(lab, h)) |
                                                      set(bird_routes(lab, h, 6))))
                                    for h in ("host1", "host2")), 5.0,
                        "host3's blocks withdrawn from host1 and host2")
    print(f"\nhost3 stopped: its routes gone from the others in {waited:.2f}s")
    # BIRD's `persist`: host3 keeps what it had, its workload routes stay.
    assert any(r in bird_routes(lab, "host3") for r in blocks_of(lab, "host1"))
    started = time.monotonic()
    lab.start_node("host3")
    lab.wait_established(20)
    print(f"host3 restarted: sessions Established again in {time.monotonic() - started:.2f}s")
    _reach_all(lab, [("w1", "w3")])


def test_route_reflector_instead_of_mesh(lab):
    backend = lab.backend()
    try:
        client = ResourceClient(backend)
        rr = client.get("Node", "host1").to_dict()
        rr["metadata"].setdefault("labels", {})["route-reflector"] = "true"
        rr["spec"]["bgp"]["routeReflectorClusterID"] = "224.0.0.1"
        client.update(rr)
        client.apply({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                      "metadata": {"name": "peer-with-rr"},
                      "spec": {"nodeSelector": "all()",
                               "peerSelector": "route-reflector == 'true'"}})
        client.apply({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                      "metadata": {"name": "default"},
                      "spec": {"nodeToNodeMeshEnabled": False}})
    finally:
        backend.close()

    def shape() -> bool:
        got = {h: sorted((p["type"], p["address"], p["established"]) for p in lab.peers(h))
               for h in ("host1", "host2", "host3")}
        return (all(p[0] == "node specific" and p[2] for ps in got.values() for p in ps)
                and len(got["host1"]) == 4 and len(got["host2"]) == 2
                and len(got["host3"]) == 2)

    waited = wait_until(shape, 15, "host1 reflecting for host2 and host3, no mesh",
                        interval=0.2)
    print(f"\nmesh off, host1 route reflector: sessions in place in {waited:.2f}s")
    # host2 learns host3's block through the reflector, next hop unchanged.
    for b in blocks_of(lab, "host3"):
        wait_until(lambda b=b: bird_routes(lab, "host2").get(b) == "198.18.0.13", 5,
                   f"host2 route to {b} via host3")
    _reach_all(lab, [("w2", "w3"), ("w3", "w2"), ("w1", "w3"), ("w2", "w1")])
