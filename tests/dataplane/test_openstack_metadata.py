"""OpenStack's special cases through the real calico-felix: an instance fetches its metadata
from http://169.254.169.254 (redirected to MetadataAddr:MetadataPort on its compute host, where
a small HTTP server stands in for Nova's metadata API) and resolves names through a DNS server
on the host (real dnsmasq, UDP and TCP), with DefaultEndpointToHostAction Drop: everything else
from the instance to the host stays dropped."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.dataplane.test_felix_harness import ALLOW_ALL, FelixHost, ping, wait_for

PROBE = str(Path(__file__).with_name("probe.py"))
META = {"uuid": "d8e02d56-2648-415b-b4a4-3ce8d5e5a6b2", "name": "vm1",
        "public_keys": {"key1": "ssh-ed25519 AAAAC3Nz test"}}
URL = "http://169.254.169.254/openstack/latest/meta_data.json"


def start_metadata_server(host: FelixHost, root: Path, addr: str, port: int) -> None:
    (root / "openstack" / "latest").mkdir(parents=True)
    (root / "openstack" / "latest" / "meta_data.json").write_text(json.dumps(META))
    host.host.popen(sys.executable, PROBE, "serve", str(root), addr, str(port))
    wait_for(lambda: host.host.run("curl", "-sf", "--max-time", "1",
                                   f"http://{addr}:{port}/", check=False).returncode == 0,
             10, "metadata server up")


def start_dns(host: FelixHost, tmp: Path) -> None:
    host.host.popen("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--user=root",
                    "--port=53", "--listen-address=10.0.0.1", "--bind-interfaces",
                    "--no-resolv", "--no-hosts", "--address=/metadata.test/10.9.9.9",
                    f"--pid-file={tmp / 'dnsmasq.pid'}", stderr=open(tmp / "dns.log", "w"))  # noqa: SIM115
    wait_for(lambda: dns(host.host, "udp") == "10.9.9.9", 10, "dnsmasq up")


def dns(ns, proto: str) -> str:
    out = ns.run(sys.executable, PROBE, "dns", proto, "10.0.0.1", "metadata.test", check=False)
    return out.stdout.strip()


def fetch(ns, url: str) -> str:
    out = ns.run("curl", "-s", "--max-time", "2", url, check=False)
    return out.stdout if out.returncode == 0 else ""


@pytest.fixture
def compute(netns, tmp_path, request):
    """A compute host: Felix with these env settings, one instance, the metadata server on
    (addr, port) and dnsmasq on the host's address."""
    env, (addr, port) = request.param
    host = FelixHost(netns, tmp_path, FELIX_DEFAULTENDPOINTTOHOSTACTION="Drop", **env)
    host.client.create(ALLOW_ALL)
    with host.running():
        start_metadata_server(host, tmp_path / "meta", addr, port)
        start_dns(host, tmp_path)
        host.add_workload(1)
        host.wait_programmed(1)
        yield host


ON_HOST_ADDRESS = ({"FELIX_METADATAADDR": "10.0.0.1", "FELIX_METADATAPORT": "8775"},
                   ("10.0.0.1", 8775))
ON_LOOPBACK = ({"FELIX_INTERFACEPREFIX": "cali,tap"}, ("127.0.0.1", 8775))  # Calico's defaults
NOT_OPENSTACK = ({"FELIX_INTERFACEPREFIX": "cali"}, ("127.0.0.1", 8775))


@pytest.mark.parametrize("compute", [ON_HOST_ADDRESS, ON_LOOPBACK], indirect=True,
                         ids=["host-address", "loopback"])
def test_instance_fetches_metadata_and_resolves_names(compute):
    wl1 = compute.workloads[1]
    wait_for(lambda: fetch(wl1, URL) != "", 10, "metadata through 169.254.169.254")
    assert json.loads(fetch(wl1, URL)) == META
    assert dns(wl1, "udp") == "10.9.9.9"
    assert dns(wl1, "tcp") == "10.9.9.9"
    # Everything else to the host is still dropped (DefaultEndpointToHostAction Drop).
    assert not ping(wl1, "10.0.0.1")
    assert fetch(wl1, "http://10.0.0.1:9099/liveness") == ""  # Felix's health port


@pytest.mark.parametrize("compute", [NOT_OPENSTACK], indirect=True, ids=["no-openstack"])
def test_without_openstack_evidence_no_special_cases(compute):
    wl1 = compute.workloads[1]
    assert fetch(wl1, URL) == ""
    assert dns(wl1, "udp") == ""
    assert dns(wl1, "tcp") == ""
