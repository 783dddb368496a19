"""calico-node's CNI socket as calico-node starts it: where it goes, and that a socket which
cannot be served never stops calico-node (the plugins then work alone)."""

import logging
import os

from calico.node.cniserver import CNIServer
from calico.node.main import start_cni_server


def test_disabled_serves_nothing():
    assert start_cni_server("") is None


def test_serves_the_path_and_removes_it_when_closed(tmp_path):
    path = str(tmp_path / "run" / "cni.sock")
    server = start_cni_server(path)
    assert isinstance(server, CNIServer)
    assert os.path.exists(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    server.close()
    assert not os.path.exists(path)


def test_a_second_calico_node_on_the_same_socket_says_why_and_runs_on(tmp_path, caplog):
    path = str(tmp_path / "cni.sock")
    first = start_cni_server(path)
    try:
        with caplog.at_level(logging.ERROR):
            assert start_cni_server(path) is None
        assert "another process serves CNI requests" in caplog.text
        assert os.path.exists(path)  # the first one's socket is left alone
    finally:
        first.close()
