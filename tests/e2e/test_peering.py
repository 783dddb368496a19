"""Acceptance for Calico's peering semantics on a lab (issue #17 item 1): a `listenPort`
other than 179 keeps every session up (each node listens on it and dials it); with the mesh
off, one BGPPeer from host2 to host1's address brings up both ends, and only those, and
their workloads reach each other."""

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
