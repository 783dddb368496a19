"""Acceptance for Calico's peering semantics on a lab (issue #17 item 1): a `listenPort`
other than 179 keeps every session up (each node listens on it and dials it); with the mesh
off, one BGPPeer from host2 to host1's address brings up both ends, and only those, and
their workloads reach each other; a route reflector with the mesh on leaves the mesh and
peers with the others as its clients."""

from __future__ import annotations

import pytest

from calico.datastore.client import ResourceClient

from .conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]
HOSTS = ("host1", "host2", "host3")


@pytest.fixture(scope="module")
def lab(make_lab):
    lab = make_lab("p", hosts=3)
    lab.add_workload("host1", "w1")
    lab.add_workload("host2", "w2")
    return lab


def apply(lab, kind, name, spec):
    backend = lab.backend()
    try:
        ResourceClient(backend).apply({"apiVersion": "projectcalico.org/v3", "kind": kind,
                                       "metadata": {"name": name}, "spec": spec})
    finally:
        backend.close()


def delete(lab, kind, name):
    backend = lab.backend()
    try:
        ResourceClient(backend).delete(kind, name)
    finally:
        backend.close()


def conf(lab, host):
    with open(f"{lab.host(host)['run_dir']}/bird.conf") as f:
        return f.read()


def established(lab, host):
    return sorted((p["type"], p["address"]) for p in lab.peers(host) if p["established"])


def test_sessions_come_up_on_a_listen_port_other_than_179(lab):
    apply(lab, "BGPConfiguration", "default", {"listenPort": 1790})
    try:
        wait_until(lambda: all("neighbor 198.18.0.12 port 1790" in conf(lab, "host1") and
                               "port 1790 as" in conf(lab, h) for h in HOSTS), 10,
                   "every bird.conf listens on and dials port 1790")
        lab.wait_established(20)
    finally:
        apply(lab, "BGPConfiguration", "default", {})
    lab.wait_established(20)


def test_bgppeer_by_peer_ip_of_a_node_is_peered_back(lab):
    apply(lab, "BGPConfiguration", "default", {"nodeToNodeMeshEnabled": False})
    apply(lab, "BGPPeer", "host2-to-host1", {"node": "host2", "peerIP": "198.18.0.11",
                                             "asNumber": "64512"})
    try:
        wait_until(lambda: established(lab, "host1") == [("node specific", "198.18.0.12")]
                   and established(lab, "host2") == [("node specific", "198.18.0.11")], 20,
                   "host1 <-> host2 Established from one BGPPeer, nothing else")
        assert lab.peers("host3") == []
        for addr in lab.workload("w2")["addresses"]:
            wait_until(lambda a=addr: lab.ping("w1", a), 5, f"w1 -> {addr}")
    finally:
        delete(lab, "BGPPeer", "host2-to-host1")
        apply(lab, "BGPConfiguration", "default", {})
    lab.wait_established(20)


def test_route_reflector_with_the_mesh_on(lab):
    """host1 becomes a reflector while the mesh stays on: as in Calico's confd it leaves the
    mesh (and the others drop it from theirs), host2 and host3 keep their mesh session and
    reach host1 through the BGPPeer, which host1 peers back with them as its clients."""
    backend = lab.backend()
    try:
        client = ResourceClient(backend)
        rr = client.get("Node", "host1").to_dict()
        rr["metadata"].setdefault("labels", {})["route-reflector"] = "true"
        rr["spec"]["bgp"]["routeReflectorClusterID"] = "224.0.0.1"
        client.update(rr)
        client.apply({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                      "metadata": {"name": "to-rr"},
                      "spec": {"nodeSelector": "all()",
                               "peerSelector": "route-reflector == 'true'"}})
    finally:
        backend.close()
    want = {"host1": [("node specific", "198.18.0.12"), ("node specific", "198.18.0.13")],
            "host2": [("node specific", "198.18.0.11"), ("node-to-node mesh", "198.18.0.13")],
            "host3": [("node specific", "198.18.0.11"), ("node-to-node mesh", "198.18.0.12")]}
    wait_until(lambda: all(established(lab, h) == want[h] and len(lab.peers(h)) == 2
                           for h in HOSTS), 20, f"sessions {want}")
    assert "rr client; rr cluster id 224.0.0.1;" in conf(lab, "host1")
    for src, dst in (("w1", "w2"), ("w2", "w1")):
        for addr in lab.workload(dst)["addresses"]:
            wait_until(lambda s=src, a=addr: lab.ping(s, a), 5, f"{src} -> {addr}")
