"""The BGP daemon: datastore state -> BGPInputs, passwords from secret files, write-on-change
and reload-on-change, against the local datastore (no BIRD)."""

import json
import threading
import time

import pytest

from calico.bgp.daemon import BGPDaemon, BGPState, SecretStore
from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.datastore.syncer import SyncUpdate

AFF = "/calico/ipam/v2/host/{}/ipv4/block/{}"


def node(name, v4):
    return {"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": name},
            "spec": {"bgp": {"ipv4Address": v4}}}


def peer(name, **spec):
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend(str(tmp_path / "calico.db"))
    yield b
    b.close()


@pytest.fixture
def secrets(tmp_path):
    root = tmp_path / "secrets"
    (root / "bgp").mkdir(parents=True)
    (root / "bgp" / "tor").write_text("s3cret\n")
    return SecretStore(str(root))


def test_affinities_of_this_host_only_and_confirmed_only():
    st = BGPState("h1")
    st.apply([
        SyncUpdate(AFF.format("h1", "10.65.0.0-26"), {"state": "confirmed"}, 1),
        SyncUpdate(AFF.format("h1", "10.65.0.64-26"), {"state": "pending"}, 2),
        SyncUpdate(AFF.format("h2", "10.65.1.0-26"), {"state": "confirmed"}, 3),
        SyncUpdate(AFF.format("h1", "10.65.2.0-26"), {}, 4),  # pre-state affinity: confirmed
    ])
    assert sorted(st.blocks.values()) == ["10.65.0.0/26", "10.65.2.0/26"]
    st.apply([SyncUpdate(AFF.format("h1", "10.65.0.0-26"), None, 5),
              SyncUpdate(AFF.format("h1", "10.65.2.0-26"), {"deleted": True}, 6)])
    assert st.blocks == {}


def test_password_from_secret_file(secrets):
    st = BGPState("h1", nodes={"h1": node("h1", "10.0.0.1/24")})
    st.peers["tor"] = peer("tor", peerIP="10.0.0.9", asNumber=64513,
                           password={"secretKeyRef": {"name": "bgp", "key": "tor"}})
    inp, problems = st.inputs(secrets)
    assert inp.passwords == {"tor": "s3cret"} and problems == []


def test_peer_with_missing_secret_is_peered_without_password(secrets, monkeypatch):
    st = BGPState("h1", nodes={"h1": node("h1", "10.0.0.1/24")})
    st.peers["tor"] = peer("tor", peerIP="10.0.0.9",
                           password={"secretKeyRef": {"name": "bgp", "key": "nope"}})
    st.peers["opt"] = peer("opt", peerIP="10.0.0.8", password={
        "secretKeyRef": {"name": "bgp", "key": "nope", "optional": True}})
    monkeypatch.setenv("CALICO_ROUTER_ID", "hash")
    inp, problems = st.inputs(secrets)
    assert [p["metadata"]["name"] for p in inp.peers] == ["opt", "tor"]
    assert inp.passwords == {}
    assert len(problems) == 1  # nothing said about the optional one
    assert 'BGPPeer "tor" peered without a password' in problems[0] and "bgp/nope" in problems[0]
    assert inp.router_id == "hash"


def test_mesh_password(secrets):
    st = BGPState("h1", nodes={"h1": node("h1", "10.0.0.1/24")})
    st.configs["default"] = {"spec": {"nodeMeshPassword": {
        "secretKeyRef": {"name": "bgp", "key": "tor"}}}}
    inp, _ = st.inputs(secrets)
    assert inp.passwords["__mesh__"] == "s3cret"


def test_secret_names_cannot_escape_the_directory(secrets):
    assert secrets.get("..", "etc") is None
    assert secrets.get("bgp", "../bgp/tor") is None


class Reloads:
    def __init__(self):
        self.calls = []

    def __call__(self, sock):
        self.calls.append(sock)
        return True, "Reconfigured"


def _run(daemon):
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    assert daemon.in_sync.wait(5)
    return t


def _wait_for(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_daemon_writes_and_reloads_only_on_change(backend, tmp_path, secrets):
    client = ResourceClient(backend)
    client.create(node("h1", "10.0.0.1/24"))
    client.create(node("h2", "10.0.0.2/24"))
    conf = tmp_path / "bird.conf"
    sock = tmp_path / "bird.ctl"
    sock.write_text("")  # BIRD "running": the socket path exists
    reloads = Reloads()
    daemon = BGPDaemon(backend, "h1", str(conf), str(sock), secrets=secrets, reload=reloads)
    t = _run(daemon)
    try:
        _wait_for(lambda: conf.exists() and "Mesh_10_0_0_2" in conf.read_text())
        assert reloads.calls == [str(sock)]
        # A change that does not change the text: no write, no reload.
        client.apply({**node("h2", "10.0.0.2/24"),
                      "metadata": {"name": "h2", "labels": {"x": "y"}}})
        time.sleep(0.3)
        assert daemon.renders == 1 and len(reloads.calls) == 1
        # A new block and a new node: one more reload each (or one for both).
        backend.put(AFF.format("h1", "10.65.0.0-26"), json.dumps({"state": "confirmed"}))
        _wait_for(lambda: "route 10.65.0.0/26 blackhole;" in conf.read_text())
        client.create(node("h3", "10.0.0.3/24"))
        _wait_for(lambda: "Mesh_10_0_0_3" in conf.read_text())
        assert 2 <= len(reloads.calls) <= 3
    finally:
        daemon.stop()
        t.join(5)


def test_daemon_without_bird_only_writes(backend, tmp_path, secrets):
    ResourceClient(backend).create(node("h1", "10.0.0.1/24"))
    conf = tmp_path / "bird.conf"
    reloads = Reloads()
    daemon = BGPDaemon(backend, "h1", str(conf), str(tmp_path / "absent.ctl"),
                       secrets=secrets, reload=reloads)
    t = _run(daemon)
    try:
        _wait_for(conf.exists)
        assert reloads.calls == []
        assert oct(conf.stat().st_mode & 0o777) == "0o640"
    finally:
        daemon.stop()
        t.join(5)


def test_daemon_waits_for_its_node(backend, tmp_path, secrets):
    conf = tmp_path / "bird.conf"
    daemon = BGPDaemon(backend, "h1", str(conf), str(tmp_path / "x.ctl"), secrets=secrets,
                       reload=Reloads())
    t = _run(daemon)
    try:
        time.sleep(0.2)
        assert not conf.exists()
        ResourceClient(backend).create(node("h1", "10.0.0.1/24"))
        _wait_for(conf.exists)
    finally:
        daemon.stop()
        t.join(5)


def test_space_pools_and_blocks_are_rendered_translated(secrets):
    from calico.api import validate
    from calico.bgp.render import render

    space = validate({"apiVersion": "projectcalico.org/v3", "kind": "AddressSpace",
                      "metadata": {"name": "blue"},
                      "spec": {"translationPrefix": "64:ff9b:1::/96"}})
    pool = validate({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                     "metadata": {"name": "pb"},
                     "spec": {"cidr": "10.200.0.0/24", "addressSpace": "blue"}})
    h1 = node("h1", "10.0.0.1/24")
    h1["spec"]["bgp"]["ipv6Address"] = "fd00:10::1/64"  # space routes are IPv6 routes
    st = BGPState("h1", nodes={"h1": h1})
    space_aff = "/calico/ipam/v2/spaces/blue/host/{}/ipv4/block/10.200.0.0-26"
    st.apply([
        SyncUpdate("/calico/resources/v3/projectcalico.org/ippools/pb", pool, 1),
        SyncUpdate(space_aff.format("h1"), {"state": "confirmed"}, 2),
        SyncUpdate(space_aff.format("h2"), {"state": "confirmed"}, 3),
        SyncUpdate("/calico/ipam/v2/spaces/blue/assignment/ipv4/block/10.200.0.0-26", {}, 4),
    ])
    inp, _ = st.inputs(secrets)
    assert inp.pools == [] and inp.blocks == []  # space unknown: nothing
    st.apply([SyncUpdate("/calico/resources/v3/projectcalico.org/addressspaces/blue", space, 5)])
    inp, _ = st.inputs(secrets)
    assert [p["spec"]["cidr"] for p in inp.pools] == ["64:ff9b:1::ac8:0/120"]
    assert inp.blocks == ["64:ff9b:1::ac8:0/122"]
    conf = render(inp)
    assert "route 64:ff9b:1::ac8:0/122 blackhole;" in conf
    assert "10.200.0.0" not in conf
    st.apply([SyncUpdate(space_aff.format("h1"), None, 6)])
    assert st.inputs(secrets)[0].blocks == []


def test_log_level_follows_log_severity_screen(backend, tmp_path, secrets, monkeypatch):
    """Calico's confd: BGP_LOGSEVERITYSCREEN, else node.<name>'s logSeverityScreen, else
    default's, else the level the daemon started with; BIRD's debugging follows too."""
    import logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)
    monkeypatch.delenv("BGP_LOGSEVERITYSCREEN", raising=False)
    conf = tmp_path / "bird.conf"
    daemon = BGPDaemon(backend, "h1", str(conf), str(tmp_path / "absent.ctl"), secrets=secrets)
    daemon.state.nodes["h1"] = node("h1", "10.0.0.1/24")
    levels = []
    for configs, env in [({}, None),
                         ({"default": {"spec": {"logSeverityScreen": "Debug"}}}, None),
                         ({"default": {"spec": {"logSeverityScreen": "Debug"}},
                           "node.h1": {"spec": {"logSeverityScreen": "Error"}}}, None),
                         ({"default": {"spec": {"logSeverityScreen": "Debug"}}}, "Warning"),
                         ({}, None)]:
        daemon.state.configs = configs
        if env:
            monkeypatch.setenv("BGP_LOGSEVERITYSCREEN", env)
        else:
            monkeypatch.delenv("BGP_LOGSEVERITYSCREEN", raising=False)
        daemon.render_once()
        debug = "debug protocols all;" in conf.read_text()
        levels.append((logging.getLevelName(root.level), debug))
    assert levels == [("INFO", False), ("DEBUG", True), ("ERROR", False), ("WARNING", True),
                      ("INFO", False)]
    assert "debug protocols { states };" in conf.read_text()
