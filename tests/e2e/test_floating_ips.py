"""Acceptance: a floating IP (WorkloadEndpoint ipNATs) on a 2-host lab with a BIRD ToR standing
for the outside world. Felix routes the floating IP to the instance's interface, BIRD on that
host learns the /32 (inside a pool disabled for IPAM) and advertises it: the ToR reaches the
instance through its floating IP, and so does a workload on the other host."""

from __future__ import annotations

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceNotFound

from .conftest import bird_routes, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

FIP = "172.16.1.3"


def enable_floating_ips(client: ResourceClient) -> None:
    """FelixConfiguration floatingIPs: Enabled (the lab's workloads are CNI endpoints;
    OpenStack ones would not need it). Each Felix restarts to take it (calico-node
    supervises it)."""
    try:
        doc = client.get("FelixConfiguration", "default").to_dict()
    except ResourceNotFound:
        doc = {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
               "metadata": {"name": "default"}, "spec": {}}
    doc["spec"]["floatingIPs"] = "Enabled"
    client.apply(doc)


@pytest.fixture(scope="module")
def lab(make_lab):
    lab = make_lab("f", hosts=2, tor="bird")
    backend = lab.backend()
    try:
        client = ResourceClient(backend)
        client.create({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                       "metadata": {"name": "floating-ips"},
                       "spec": {"cidr": "172.16.1.0/24", "disabled": True}})
        enable_floating_ips(client)
        # The CNI profile admits only its own members: let the outside world in as well.
        client.create({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                       "metadata": {"name": "from-the-fabric"},
                       "spec": {"selector": "all()", "types": ["Ingress"],
                                "ingress": [{"action": "Allow",
                                             "source": {"nets": ["198.18.0.0/24"]}},
                                            {"action": "Pass"}]}})
        w1 = lab.add_workload("host1", "w1")
        lab.add_workload("host2", "w2")
        internal = next(a for a in w1["addresses"] if ":" not in a).split("/")[0]
        endpoint = next(e for e in client.list("WorkloadEndpoint").items
                        if e.spec.node == "host1").to_dict()
        endpoint["spec"]["ipNATs"] = [{"internalIP": internal, "externalIP": FIP}]
        client.apply(endpoint)
    finally:
        backend.close()
    return lab


def test_floating_ip_advertised_and_reachable_from_outside_and_another_host(lab):
    waited = wait_until(lambda: lab.ping("tor", FIP), 60, f"ToR -> floating IP {FIP}")
    print(f"\nfloating IP reachable from the ToR after {waited:.2f}s")
    assert bird_routes(lab, "host2").get(f"{FIP}") == "198.18.0.11"
    wait_until(lambda: lab.ping("w2", FIP), 10, f"w2 (host2) -> floating IP {FIP}")
