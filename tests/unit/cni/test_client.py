"""The plugin executables hand requests to calico-node's CNI socket, or run them themselves.

A real CNIServer (calico.node.cniserver, in this process, on threads) and the real
executables (subprocesses, as a runtime runs them): every request answered through the socket
must be answered byte for byte as the executable answers it alone, and every way the socket
can be unusable (no server, a stale socket file, a server that declines) must end in the
executable doing the work itself. No root needed: calico-ipam and the calico plugin's error
paths touch only the datastore.
"""

import os
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from calico.cni import client, install
from calico.node.cniserver import CNIServer, CNIServerError, socket_path

from .driver import CALICO, CALICO_IPAM, handle_addresses, make_store, netconf, run


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "calico.db")
    return path, make_store(path)


@pytest.fixture
def server(tmp_path):
    srv = CNIServer(str(tmp_path / "run" / "cni.sock"))
    srv.start()
    yield srv
    srv.close()


def via(sock: str) -> dict[str, str]:
    return {client.SOCKET_ENV: sock}


ALONE = via("")  # the hand-off disabled: the executable does the work


def both(sock, binary, command, conf, **kw):
    """The same request through the socket and alone (each on its own container id)."""
    return (run(binary, command, conf, env=via(sock), **kw),
            run(binary, command, conf, env=ALONE, **kw))


def test_served_answers_are_the_executables_answers(store, tmp_path, server):
    path, client_ = store
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "assign_ipv6": "true"})
    cases = [
        (CALICO, "VERSION", {"cniVersion": "0.4.0"}, {}),
        (CALICO, "ADD", b"{not json", {}),
        (CALICO, "ADD", dict(conf, cniVersion="9.9.9"), {}),
        (CALICO, "ADD", conf, {"netns": None}),
        (CALICO, "ADD", conf, {"netns": str(tmp_path / "no-such-netns")}),
        (CALICO, "CHECK", dict(conf, cniVersion="0.3.1"), {}),
        (CALICO_IPAM, "DEL", conf, {"container_id": "never-added"}),
        (CALICO_IPAM, "CHECK", dict(conf, prevResult={"ips": [{"address": "10.77.3.3/32"}]}),
         {}),
    ]
    served_before = server.served
    for binary, command, doc, kw in cases:
        served, alone = both(server.path, binary, command, doc, **kw)
        assert (served.rc, served.stdout) == (alone.rc, alone.stdout), (command, doc, kw)
    assert server.served - served_before == len(cases)


def test_served_add_check_del_match_the_executable(store, tmp_path, server):
    path, client_ = store
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam"})
    for n, env in enumerate((via(server.path), ALONE)):
        # the same explicit address on both paths: the results can be compared exactly
        ans = run(CALICO_IPAM, "ADD", conf, cni_args="IP=10.77.9.9", env=env,
                  container_id=f"c{n}")
        assert ans.rc == 0, ans.stdout + ans.stderr
        if n == 0:
            first = ans.stdout
            prev = ans.doc
        else:
            assert ans.stdout == first
        assert handle_addresses(client_, f"calico-net.c{n}") == ["10.77.9.9"]
        other = ALONE if n == 0 else via(server.path)  # CHECK and DEL on the other path
        check = run(CALICO_IPAM, "CHECK", dict(conf, prevResult=prev), env=other,
                    container_id=f"c{n}")
        assert check.rc == 0, check.stdout
        for _ in range(2):
            gone = run(CALICO_IPAM, "DEL", conf, env=other, container_id=f"c{n}")
            assert (gone.rc, gone.stdout) == (0, "")
        assert handle_addresses(client_, f"calico-net.c{n}") == []


def test_parallel_adds_through_the_socket_get_distinct_addresses(store, tmp_path, server):
    path, client_ = store
    conf = netconf(path, str(tmp_path), ipam={"type": "calico-ipam", "assign_ipv6": "true"})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: run(CALICO_IPAM, "ADD", conf, env=via(server.path),
                                              container_id=f"p{i}"), range(8)))
    assert all(a.rc == 0 for a in answers), [a.stdout for a in answers]
    addresses = [ip["address"] for a in answers for ip in a.doc["ips"]]
    assert len(set(addresses)) == 16
    for i in range(8):
        assert len(handle_addresses(client_, f"calico-net.p{i}")) == 2


def test_without_calico_node_the_executable_does_the_work(store, tmp_path):
    path, client_ = store
    conf = netconf(path, str(tmp_path), calico_node_socket=str(tmp_path / "nobody.sock"))
    ans = run(CALICO_IPAM, "ADD", conf)  # the socket named by the network configuration
    assert ans.rc == 0, ans.stdout + ans.stderr
    assert handle_addresses(client_, "calico-net.c0ffee01") == [
        ans.doc["ips"][0]["address"].split("/")[0]]


def test_a_stale_socket_file_is_ignored_then_replaced(store, tmp_path):
    path, client_ = store
    stale = str(tmp_path / "run" / "cni.sock")
    os.makedirs(os.path.dirname(stale))
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(stale)  # bound, never listening: what a killed calico-node leaves
    dead.close()
    conf = netconf(path, str(tmp_path))
    assert run(CALICO_IPAM, "ADD", conf, env=via(stale)).rc == 0
    srv = CNIServer(stale)
    srv.start()
    try:
        assert run(CALICO_IPAM, "DEL", conf, env=via(stale)).rc == 0
        assert srv.served == 1
        assert handle_addresses(client_, "calico-net.c0ffee01") == []
        with pytest.raises(CNIServerError, match="another process"):
            CNIServer(stale).start()  # a live server is never replaced
    finally:
        srv.close()
    assert not os.path.exists(stale)


def test_a_declined_request_runs_in_the_executable(store, tmp_path, server):
    path, client_ = store
    server._netns = (0, 0)  # as if calico-node ran in another network namespace
    ans = run(CALICO_IPAM, "ADD", netconf(path, str(tmp_path)), env=via(server.path))
    assert ans.rc == 0, ans.stdout + ans.stderr
    assert server.served == 0
    assert len(handle_addresses(client_, "calico-net.c0ffee01")) == 1


def test_a_path_that_is_not_a_socket_is_left_alone(tmp_path):
    target = tmp_path / "cni.sock"
    target.write_text("not a socket")
    with pytest.raises(CNIServerError, match="not a socket"):
        CNIServer(str(target)).start()
    assert target.read_text() == "not a socket"


def test_socket_path_setting():
    assert socket_path("/run/x", None) == "/run/x/cni.sock"
    assert socket_path("/run/x", "none") == ""
    assert socket_path("/run/x", "") == ""
    assert socket_path("/run/x", "/tmp/s") == "/tmp/s"


def test_the_client_finds_the_socket_without_json():
    env = {b"CNI_COMMAND": b"ADD"}
    assert client.socket_path(b'{"calico_node_socket": "/a/b.sock", "x": [1, 2.5]}',
                              env) == "/a/b.sock"
    assert client.socket_path(b"{broken", env) == client.DEFAULT_SOCKET
    assert client.socket_path(b'{"name": "n"}', env) == client.DEFAULT_SOCKET
    env[client.SOCKET_ENV.encode()] = b"/env.sock"
    assert client.socket_path(b'{"calico_node_socket": "/a/b.sock"}', env) == "/env.sock"


def test_the_installed_wrappers_hand_over_or_run_the_request(store, tmp_path, server):
    """What a runtime executes: the files `install()` writes (which may be started by the
    system's python, and re-execute in calico's interpreter for the slow way)."""
    path, client_ = store
    _, ipam = install(str(tmp_path / "bin"))
    conf = netconf(path, str(tmp_path))
    version = run(ipam, "VERSION", {"cniVersion": "1.0.0"}, env=ALONE)
    assert version.rc == 0 and "1.0.0" in version.doc["supportedVersions"], version.stderr
    before = server.served
    for n, env in enumerate((ALONE, via(server.path))):
        ans = run(ipam, "ADD", conf, env=env, container_id=f"w{n}")
        assert ans.rc == 0, ans.stdout + ans.stderr
        assert handle_addresses(client_, f"calico-net.w{n}") == [
            ans.doc["ips"][0]["address"].split("/")[0]]
        assert run(ipam, "DEL", conf, env=env, container_id=f"w{n}").rc == 0
    assert server.served - before == 2
