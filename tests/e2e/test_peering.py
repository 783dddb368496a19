"""Acceptance for Calico's peering semantics on a lab (issue #17 item 1): a `listenPort`
other than 179 keeps every session up (each node listens on it and dials it); two BGPPeers
with the same peerIP and different ports are two sessions, each Established and each
bringing its own routes; with the mesh off, one BGPPeer from host2 to host1's address
brings up both ends, and only those, and their workloads reach each other, but with
`reversePeering: Manual` host1 does not peer back until a BGPPeer of its own names host2;
a route reflector with the mesh on leaves the mesh and peers with the others as its
clients."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from calico.datastore.client import ResourceClient
from calico.lab import segment
from calico.lab.proc import netns_delete, spawn, stop_daemon

from .conftest import bird_routes, wait_until

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


EXT = "198.18.0.5"  # a BGP speaker outside the cluster, on the fabric
EXT_ASN = 64513
EXT_ROUTES = {1791: "10.201.1.0/24", 1792: "10.201.2.0/24"}  # listen port: route it announces


def ext_bird_conf(port: int, route: str, router_id: str, hosts: list[str]) -> str:
    """A passive BIRD listening on `port` alone, peering with every host, announcing `route`."""
    lines = [f"router id {router_id};", "protocol device { scan time 10; }",
             f"protocol static announced {{ ipv4; route {route} blackhole; }}"]
    for i, addr in enumerate(hosts, 1):
        lines += [f"protocol bgp host{i} {{", f"  local {EXT} port {port} as {EXT_ASN};",
                  f"  neighbor {addr} as 64512;",
                  "  passive on; connect delay time 1; connect retry time 1;",
                  '  ipv4 { import all; export where proto = "announced"; };', "}"]
    return "\n".join(lines) + "\n"


def delete_if_present(lab, kind, name):
    try:
        delete(lab, kind, name)
    except Exception:  # noqa: BLE001 - cleanup of what the test may not have created
        pass


def calicoctl_node_status(lab, host):
    exe = os.path.join(os.path.dirname(sys.executable), "calico-lab")
    out = subprocess.run([exe, "exec", "--name", lab.name, host, "--", "calicoctl", "node",
                          "status"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_same_peer_ip_on_two_ports_is_two_sessions(lab):
    """One speaker at 198.18.0.5 runs two BIRDs, on ports 1791 and 1792, each announcing its
    own route; two global BGPPeers `198.18.0.5:1791` and `198.18.0.5:1792` give every host
    two sessions (`Global_198_18_0_5_port_1791`, `..._port_1792`), both Established, and
    both routes in every host's kernel."""
    ns, daemons = f"{lab.prefix}ext", []
    names = {f"Global_198_18_0_5_port_{port}" for port in EXT_ROUTES}
    try:
        segment.attach(lab, ns, "p-ext", f"{EXT}/24", None)
        addrs = [lab.host(h)["address"].split("/")[0] for h in HOSTS]
        for n, (port, route) in enumerate(sorted(EXT_ROUTES.items()), 1):
            base = os.path.join(lab.dir, f"ext-{port}")
            with open(f"{base}.conf", "w") as f:
                f.write(ext_bird_conf(port, route, f"10.201.{n}.1", addrs))
            daemons.append(spawn(["bird", "-f", "-c", f"{base}.conf", "-s", f"{base}.ctl",
                                  "-P", f"{base}.pid"], f"{base}.log", netns=ns))
        for port in EXT_ROUTES:
            apply(lab, "BGPPeer", f"ext-{port}", {"peerIP": f"{EXT}:{port}",
                                                  "asNumber": str(EXT_ASN)})
        for h in HOSTS:
            wait_until(lambda h=h: all(f"neighbor {EXT} port {port} as {EXT_ASN};"
                                       in conf(lab, h) for port in EXT_ROUTES), 20,
                       f"{h}'s bird.conf dials {EXT} on both ports")
        wait_until(lambda: all(names <= {p["name"] for p in lab.peers(h) if p["established"]}
                               for h in HOSTS), 30, f"{sorted(names)} Established on {HOSTS}")
        for h in HOSTS:  # the mesh is untouched: two more sessions, not one replacing another
            assert sorted((p["name"], p["established"]) for p in lab.peers(h)
                          if p["address"] == EXT) == [(n, True) for n in sorted(names)]
            assert len(lab.peers(h)) == 4
        wait_until(lambda: all(bird_routes(lab, h).get(r) == EXT for h in HOSTS
                               for r in EXT_ROUTES.values()), 20,
                   f"{sorted(EXT_ROUTES.values())} via {EXT} in every host's kernel")
        status = calicoctl_node_status(lab, "host1")
        print("\n" + status)
        rows = [line for line in status.splitlines() if f"| {EXT} " in line]
        assert len(rows) == 2 and all("| global" in r and "| up " in r and "Established" in r
                                      for r in rows), rows
    finally:
        for port in EXT_ROUTES:
            delete_if_present(lab, "BGPPeer", f"ext-{port}")
        for d in daemons:
            stop_daemon(d)
        netns_delete(ns)
    wait_until(lambda: all(not any(p["address"] == EXT for p in lab.peers(h)) for h in HOSTS),
               20, f"the sessions with {EXT} removed")
    lab.wait_established(30)


def test_reverse_peering_manual_waits_for_the_reverse_bgppeer(lab):
    """`reversePeering: Manual` on a BGPPeer from host2 to host1's address: host2 dials host1,
    but host1 does not peer back (no such protocol in its bird.conf, so the session stays
    down) until a second BGPPeer, for host1, names host2; then both ends are Established."""
    apply(lab, "BGPConfiguration", "default", {"nodeToNodeMeshEnabled": False})
    apply(lab, "BGPPeer", "host2-to-host1", {"node": "host2", "peerIP": "198.18.0.11",
                                             "asNumber": "64512",
                                             "reversePeering": "Manual"})
    try:
        wait_until(lambda: [p["name"] for p in lab.peers("host2")] == ["Node_198_18_0_11"]
                   and lab.peers("host1") == [] and lab.peers("host3") == [], 20,
                   "only host2 has a session (to host1); host1 and host3 none")
        assert "198.18.0.12" not in conf(lab, "host1")
        # host2 keeps dialing (connect retry time 5 s, error wait 5-30 s); host1, with no BGP
        # protocol at all, does not even listen. Watch it for 12 s: it never comes up.
        looks, until = [], time.monotonic() + 12
        while time.monotonic() < until:
            looks.append(lab.peers("host2"))
            assert [p["established"] for p in looks[-1]] == [False], looks[-1]
            time.sleep(0.5)
        print(f"\nhost2 -> host1 with reversePeering: Manual alone, {len(looks)} looks over "
              f"12 s: {looks[-1][0]['state']} {looks[-1][0]['info']!r}")
        assert lab.peers("host1") == [] and "198.18.0.12" not in conf(lab, "host1")

        apply(lab, "BGPPeer", "host1-to-host2", {"node": "host1", "peerIP": "198.18.0.12",
                                                 "asNumber": "64512",
                                                 "reversePeering": "Manual"})
        wait_until(lambda: established(lab, "host1") == [("node specific", "198.18.0.12")]
                   and established(lab, "host2") == [("node specific", "198.18.0.11")], 30,
                   "host1 <-> host2 Established once the reverse BGPPeer exists")
        assert lab.peers("host3") == []
        for addr in lab.workload("w2")["addresses"]:
            wait_until(lambda a=addr: lab.ping("w1", a), 10, f"w1 -> {addr}")
    finally:
        delete_if_present(lab, "BGPPeer", "host1-to-host2")
        delete_if_present(lab, "BGPPeer", "host2-to-host1")
        apply(lab, "BGPConfiguration", "default", {})
    lab.wait_established(30)


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
