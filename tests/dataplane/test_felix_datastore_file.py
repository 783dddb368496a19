"""The issue's bug, on a real Felix and a real etcd: a felix.cfg that says
`DatastoreType = etcdv3` and `EtcdEndpoints = ...`, with DATASTORE_TYPE unset, runs Felix on
that etcd (its status report appears there), and the local store is neither used nor created.

Felix runs in a namespace of its own; a forwarder (calico.lab.proxy) gives that namespace
`http://127.0.0.1:2379` for the etcd on the machine's loopback, as on a host with a local
etcd proxy."""

import os
import signal
import subprocess
import sys
import time

import pytest

from calico.datastore import DatastoreConfig, connect
from calico.felix.status import status_key
from tests.fixtures.etcd import etcd_server  # noqa: F401  (fixture)

FELIX = os.path.join(os.path.dirname(sys.executable), "calico-felix")
HOST = "cfg-host"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def forwarded(netns, etcd_server):  # noqa: F811
    ns = netns.add("fcfg")
    target = etcd_server.endpoint.split("://", 1)[1]
    proxy = subprocess.Popen([sys.executable, "-m", "calico.lab.proxy", "--target", target,
                              f"--listen={ns.name}:2379"], stdout=subprocess.PIPE, text=True)
    assert "forwarding" in proxy.stdout.readline()
    yield ns
    _stop(proxy)


def test_felix_cfg_chooses_etcd_without_datastore_type(forwarded, etcd_server, tmp_path):  # noqa: F811
    cfg = tmp_path / "felix.cfg"
    cfg.write_text("[global]\nDatastoreType = etcdv3\nEtcdEndpoints = http://127.0.0.1:2379\n"
                   "ReportingIntervalSecs = 1\nLogFilePath = none\nLogSeveritySys = none\n")
    local = tmp_path / "calico.db"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATASTORE_", "ETCD_", "FELIX_", "CALICO_"))}
    env["CALICO_DATASTORE_PATH"] = str(local)  # would be used if felix.cfg were ignored
    log = open(tmp_path / "felix.log", "w")  # noqa: SIM115 (closed below)
    felix = subprocess.Popen(["ip", "netns", "exec", forwarded.name, FELIX, "--hostname", HOST,
                              "-c", str(cfg)], env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    backend = connect(DatastoreConfig(type="etcdv3", etcd_endpoints=(etcd_server.endpoint,)))
    try:
        deadline = time.monotonic() + 30
        while backend.get(status_key("no-region", HOST)) is None:
            assert felix.poll() is None, (tmp_path / "felix.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "felix.log").read_text()
            time.sleep(0.2)
    finally:
        backend.close()
        _stop(felix)
    assert not local.exists()
