"""The real calico-felix process programming a host namespace from the local datastore:
routed v4/v6 connectivity between workloads, default deny, a GlobalNetworkPolicy that denies
then allows, workload → host blocked by default, health and status reports."""

from __future__ import annotations

import json

import pytest

from calico.felix.status import EndpointKey, status_key
from tests.dataplane.test_felix_harness import (
    ALLOW_ALL,
    HOSTNAME,
    FelixHost,
    ping,
    resource,
    wait_for,
    wl_ip,
)


@pytest.fixture
def felix(netns, tmp_path):
    host = FelixHost(netns, tmp_path, FELIX_ENDPOINTREPORTINGENABLED="true",
                     FELIX_ENDPOINTREPORTINGDELAYSECS="0")
    host.client.create(ALLOW_ALL)
    with host.running():
        yield host


def test_routed_connectivity_v4_and_v6(felix):
    wl1, wl2 = felix.add_workload(1), felix.add_workload(2)
    felix.wait_programmed(1)
    felix.wait_programmed(2)
    for version in (4, 6):
        assert ping(wl1, wl_ip(2, version), count=2), f"IPv{version} wl1 -> wl2"
        assert ping(wl2, wl_ip(1, version), count=2), f"IPv{version} wl2 -> wl1"
    assert felix.felix_routes() == {"10.65.0.1@cali1", "10.65.0.2@cali2",
                                    "fd00::1@cali1", "fd00::2@cali2"}


def test_default_deny_without_profile_or_policy(felix):
    wl1 = felix.add_workload(1)
    felix.add_workload(3, profiles=())
    felix.wait_programmed(1)
    felix.wait_programmed(3)
    assert not ping(wl1, wl_ip(3))
    assert not ping(wl1, wl_ip(3, 6))


def test_global_network_policy_denies_then_allows(felix):
    wl1, _ = felix.add_workload(1), felix.add_workload(2, labels={"app": "db"})
    felix.wait_programmed(1)
    felix.wait_programmed(2)
    assert ping(wl1, wl_ip(2))
    policy = resource("GlobalNetworkPolicy", "db-ingress", {
        "selector": "app == 'db'", "types": ["Ingress"], "ingress": [{"action": "Deny"}]})
    felix.client.create(policy)
    wait_for(lambda: not ping(wl1, wl_ip(2)), 10, "deny in force")
    assert not ping(wl1, wl_ip(2, 6))
    policy["spec"]["ingress"] = [{"action": "Allow", "protocol": "ICMP"},
                                 {"action": "Allow", "protocol": "ICMPv6"}]
    felix.client.apply(policy)
    wait_for(lambda: ping(wl1, wl_ip(2)), 10, "allow in force")
    assert ping(wl1, wl_ip(2, 6))


def test_workload_to_host_is_blocked_by_default(felix):
    wl1 = felix.add_workload(1)
    felix.wait_programmed(1)
    assert ping(felix.fabric, "10.0.0.1")  # the host itself answers others
    assert not ping(wl1, "10.0.0.1")
    assert not ping(wl1, "2001:db8::1")


def test_status_reports_and_health(felix):
    felix.add_workload(1)
    felix.wait_programmed(1)
    assert felix.http("/liveness") == 200
    backend = felix.backend
    wait_for(lambda: backend.get(status_key("no-region", HOSTNAME)) is not None, 5,
             "felix status key")
    assert backend.get(status_key("no-region", HOSTNAME)).lease != 0
    key = EndpointKey("k8s", "default/pod1", "eth0").path("no-region", HOSTNAME)
    wait_for(lambda: backend.get(key) is not None, 10, "endpoint status")
    assert json.loads(backend.get(key).value) == {"status": "up"}
    felix.host.ip("link", "set", "cali1", "down")
    wait_for(lambda: json.loads(backend.get(key).value) == {"status": "down"}, 10,
             "endpoint down")


def test_tiers_apply_in_their_order_not_by_name(felix):
    """Tier "z-allow" (order 100) allows ICMP to db before tier "a-deny" (order 200) denies
    it, as in Calico; re-ordering the tiers turns the deny on."""
    wl1, _ = felix.add_workload(1), felix.add_workload(2, labels={"app": "db"})
    felix.wait_programmed(1)
    felix.wait_programmed(2)
    felix.client.create(resource("Tier", "a-deny", {"order": 200}))
    felix.client.create(resource("Tier", "z-allow", {"order": 100}))
    felix.client.create(resource("GlobalNetworkPolicy", "deny-db", {
        "tier": "a-deny", "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Deny"}]}))
    felix.client.create(resource("GlobalNetworkPolicy", "allow-db", {
        "tier": "z-allow", "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "ICMP"}]}))
    wait_for(lambda: ping(wl1, wl_ip(2)), 10, "z-allow (order 100) decides first")
    assert not ping(wl1, wl_ip(2, 6))  # no ICMPv6 allow: a-deny denies it
    felix.client.apply(resource("Tier", "z-allow", {"order": 300}))
    wait_for(lambda: not ping(wl1, wl_ip(2)), 10, "a-deny (order 200) decides first now")
