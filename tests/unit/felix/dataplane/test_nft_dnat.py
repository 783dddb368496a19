"""Floating IPs (ipNATs) and OpenStack's metadata/DNS special cases: the nft rules rendered,
the routes and sysctls the host network adds for them, and the conntrack entries forgotten
when a floating IP moves (fake runner, fake kernel, a recording conntrack)."""

from __future__ import annotations

import pytest

from calico.felix import messages as m
from calico.felix.dataplane.conntrack import ConntrackManager
from calico.felix.dataplane.floating import active_nats, nat_maps
from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.nft import NftDataplane
from calico.felix.dataplane.nft.config import NftConfig
from calico.felix.dataplane.routes import DEFAULT_ROUTE_PROTOCOL as PROTO
from tests.unit.felix.dataplane.test_nft_managers import FakeRunner, lines
from tests.unit.felix.dataplane.test_routes import feed
from tests.unit.felix.dataplane.test_routes_fake_kernel import FakeKernel

W1, W2 = m.WorkloadEndpointID("ns", "w1"), m.WorkloadEndpointID("ns", "w2")
K8S = {"InterfacePrefix": "cali"}  # no OpenStack evidence
OPENSTACK = {"InterfacePrefix": "cali,tap"}


def wep(ep_id=W1, iface="cali1", ip="10.65.0.1", nats=(), orchestrator="k8s",
        v6_nats=()) -> m.WorkloadEndpointUpdate:
    return m.WorkloadEndpointUpdate(id=ep_id, interface=iface, ipv4_nets=(f"{ip}/32",),
                                    ipv4_nat=tuple(nats), ipv6_nat=tuple(v6_nats),
                                    orchestrator=orchestrator)


def dataplane(config: dict, *msgs) -> NftDataplane:
    dp = NftDataplane(FakeRunner(), config)
    dp.on_message(m.ConfigUpdate(config))
    for msg in msgs:
        dp.on_message(msg)
    dp.apply()
    return dp


def chain(dp: NftDataplane, name: str) -> tuple[str, ...]:
    return dp.table.chains[name].rules


def elements(dp: NftDataplane, name: str) -> dict:
    return dp.table.sets[name].elements


def test_nat_chains_use_named_maps_at_the_nat_hooks():
    dp = dataplane(K8S)
    script = dp.runner.scripts[0]
    assert "add map inet calico fip4-dnat { type ipv4_addr : ipv4_addr; }" in script
    assert ("add map inet calico fip4-snat { type ipv4_addr . ipv4_addr : ipv4_addr; }"
            in script)
    assert "add map inet calico fip6-dnat { type ipv6_addr : ipv6_addr; }" in script
    hooks = {name: (c.base.type, c.base.hook, c.base.priority) for name, c in
             dp.table.chains.items() if name in ("nat-prerouting", "nat-output",
                                                  "fip-postrouting")}
    assert hooks == {"nat-prerouting": ("nat", "prerouting", -100),
                     "nat-output": ("nat", "output", -100),
                     "fip-postrouting": ("nat", "postrouting", 95)}
    dnat = ("dnat ip to ip daddr map @fip4-dnat", "dnat ip6 to ip6 daddr map @fip6-dnat")
    assert chain(dp, "nat-prerouting") == dnat  # no OpenStack evidence: no metadata redirect
    assert chain(dp, "nat-output") == dnat
    assert chain(dp, "fip-postrouting") == (
        "snat ip to ip saddr . ip daddr map @fip4-snat",
        "snat ip6 to ip6 saddr . ip6 daddr map @fip6-snat")
    assert "{" not in "".join(chain(dp, "nat-prerouting"))  # no anonymous sets


def test_openstack_endpoint_nats_ignore_floating_ips_disabled():
    dp = dataplane({**K8S, "FloatingIPs": "Disabled"},
                   wep(nats=[("10.65.0.1", "172.16.1.3")], orchestrator="openstack"),
                   wep(W2, "cali2", "10.65.0.2", nats=[("10.65.0.2", "172.16.1.4")]))
    assert elements(dp, "fip4-dnat") == {"172.16.1.3": "10.65.0.1"}
    assert elements(dp, "fip4-snat") == {"10.65.0.1 . 10.65.0.1": "172.16.1.3"}
    script = dp.runner.scripts[0]
    assert "elements = { 172.16.1.3 : 10.65.0.1 }" in script


def test_floating_ips_enabled_programs_every_orchestrators_nats():
    dp = dataplane({**K8S, "FloatingIPs": "Enabled"},
                   wep(nats=[("10.65.0.1", "172.16.1.3")]),
                   wep(W2, "cali2", "10.65.0.2", v6_nats=[("fd00::2", "2001:db8::2")]))
    assert elements(dp, "fip4-dnat") == {"172.16.1.3": "10.65.0.1"}
    assert elements(dp, "fip6-dnat") == {"2001:db8::2": "fd00::2"}
    assert elements(dp, "fip6-snat") == {"fd00::2 . fd00::2": "2001:db8::2"}


def test_moving_a_floating_ip_is_one_small_transaction():
    dp = dataplane(OPENSTACK, wep(nats=[("10.65.0.1", "172.16.1.3")], orchestrator="openstack"),
                   wep(W2, "cali2", "10.65.0.2", orchestrator="openstack"))
    dp.on_message(wep(orchestrator="openstack"))
    dp.on_message(wep(W2, "cali2", "10.65.0.2", nats=[("10.65.0.2", "172.16.1.3")],
                      orchestrator="openstack"))
    script = dp.apply()
    assert elements(dp, "fip4-dnat") == {"172.16.1.3": "10.65.0.2"}
    assert set(lines(script)) == {
        "delete element inet calico fip4-dnat { 172.16.1.3 }",
        "delete element inet calico fip4-snat { 10.65.0.1 . 10.65.0.1 }",
        "add map inet calico fip4-dnat { type ipv4_addr : ipv4_addr; elements = "
        "{ 172.16.1.3 : 10.65.0.2 } }",
        "add map inet calico fip4-snat { type ipv4_addr . ipv4_addr : ipv4_addr; elements = "
        "{ 10.65.0.2 . 10.65.0.2 : 172.16.1.3 } }"}
    dp.on_message(m.WorkloadEndpointRemove(W2))
    dp.apply()
    assert elements(dp, "fip4-dnat") == elements(dp, "fip4-snat") == {}


def test_an_update_that_changes_no_nat_changes_no_map():
    dp = dataplane(OPENSTACK, wep(nats=[("10.65.0.1", "172.16.1.3")], orchestrator="openstack"))
    dp.on_message(wep(nats=[("10.65.0.1", "172.16.1.3")], orchestrator="openstack"))
    assert dp.apply() == ""


def test_conflicts_settle_the_same_way_on_every_host():
    pairs = [("10.65.0.9", "172.16.1.3"), ("10.65.0.10", "172.16.1.3"),
             ("10.65.0.1", "172.16.1.8"), ("10.65.0.1", "172.16.1.7")]
    dnat, snat = nat_maps(pairs)
    assert dnat == {"172.16.1.3": "10.65.0.9", "172.16.1.8": "10.65.0.1",
                    "172.16.1.7": "10.65.0.1"}
    assert snat == {"10.65.0.9": "172.16.1.3", "10.65.0.1": "172.16.1.7"}
    assert nat_maps(reversed(pairs)) == (dnat, snat)


def test_active_nats_follow_calicos_rule():
    k8s = wep(nats=[("10.65.0.1", "172.16.1.3")])
    openstack = wep(nats=[("10.65.0.1", "172.16.1.3")], orchestrator="openstack")
    assert active_nats(k8s, enabled=False) == ()
    assert active_nats(k8s, enabled=True) == (("10.65.0.1", "172.16.1.3"),)
    assert active_nats(openstack, enabled=False) == (("10.65.0.1", "172.16.1.3"),)


# ---- metadata and DNS ------------------------------------------------------------------------

def test_openstack_special_cases_redirect_metadata_and_allow_it_and_dns():
    dp = dataplane({**OPENSTACK, "DefaultEndpointToHostAction": "Drop"})
    assert chain(dp, "nat-prerouting")[-1] == (
        "ip daddr 169.254.169.254 tcp dport 80 dnat ip to 127.0.0.1:8775")
    to_host = chain(dp, "wl-to-host")
    special = ["ip daddr 127.0.0.1 tcp dport 8775 accept", "udp dport 53 accept",
               "tcp dport 53 accept"]
    start = to_host.index(special[0])
    assert list(to_host[start:start + 3]) == special
    assert to_host.index("jump wl-from-dispatch") > start + 2  # before egress policy
    assert to_host[-1] == "drop"


def test_metadata_address_and_port_from_config():
    dp = dataplane({**K8S, "MetadataAddr": "10.0.0.1", "MetadataPort": "8080"})
    assert chain(dp, "nat-prerouting")[-1] == (
        "ip daddr 169.254.169.254 tcp dport 80 dnat ip to 10.0.0.1:8080")
    assert "ip daddr 10.0.0.1 tcp dport 8080 accept" in chain(dp, "wl-to-host")


def test_no_openstack_evidence_no_special_cases():
    dp = dataplane(K8S)
    assert not any("169.254" in r for r in chain(dp, "nat-prerouting"))
    assert not any("dport 53" in r or "8775" in r for r in chain(dp, "wl-to-host"))


@pytest.mark.parametrize("config, active", [
    (K8S, False), (OPENSTACK, True), ({"InterfacePrefix": "tap"}, True),
    ({**K8S, "ClusterType": "k8s,OpenStack"}, True), ({**K8S, "MetadataPort": "8775"}, False),
    ({**K8S, "MetadataPort": "9000"}, True), ({**K8S, "MetadataAddr": "127.0.0.1"}, False),
])
def test_openstack_evidence_as_calico_reads_it(config, active):
    assert NftConfig.from_mapping(config).openstack is active


def test_a_metadata_host_name_gives_no_redirect_but_still_dns():
    cfg = NftConfig.from_mapping({**K8S, "MetadataAddr": "metadata.example"})
    assert cfg.openstack and cfg.metadata_addr == ""
    dp = dataplane({**K8S, "MetadataAddr": "metadata.example"})
    assert not any("169.254" in r for r in chain(dp, "nat-prerouting"))
    assert "udp dport 53 accept" in chain(dp, "wl-to-host")


# ---- host network: routes for floating IPs, route_localnet ----------------------------------

@pytest.fixture
def kernel() -> FakeKernel:
    kernel = FakeKernel()
    kernel.add_link("cali1")
    kernel.add_link("cali2")
    return kernel


@pytest.fixture
def hn(kernel: FakeKernel) -> HostNetworkManager:
    return HostNetworkManager(kernel, "host1")


def test_floating_ip_routed_to_the_instance_interface(kernel, hn):
    feed(hn, m.ConfigUpdate(K8S), wep(nats=[("10.65.0.1", "172.16.1.3")],
                                      orchestrator="openstack"))
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32", "172.16.1.3/32"}
    idx = kernel.index("cali1")
    assert (idx, "172.16.1.3") not in kernel.neigh
    feed(hn, wep(orchestrator="openstack"),
         wep(W2, "cali2", "10.65.0.2", nats=[("10.65.0.2", "172.16.1.3")],
             orchestrator="openstack"))
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32"}
    assert kernel.dsts(PROTO, "cali2") == {"10.65.0.2/32", "172.16.1.3/32"}


def test_floating_ip_routes_follow_the_floating_ips_setting(kernel, hn):
    feed(hn, m.ConfigUpdate(K8S), wep(nats=[("10.65.0.1", "172.16.1.3")]))
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32"}
    feed(hn, m.ConfigUpdate({**K8S, "FloatingIPs": "Enabled"}))
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32", "172.16.1.3/32"}
    feed(hn, m.ConfigUpdate({**K8S, "FloatingIPs": "Disabled"}))
    assert kernel.dsts(PROTO, "cali1") == {"10.65.0.1/32"}


@pytest.mark.parametrize("config, localnet", [
    (OPENSTACK, "1"), ({**OPENSTACK, "MetadataAddr": "10.0.0.1"}, "0"), (K8S, "0")])
def test_route_localnet_only_for_a_loopback_metadata_target(kernel, hn, config, localnet):
    feed(hn, m.ConfigUpdate(config))
    assert kernel.sysctls["net/ipv4/conf/cali1/route_localnet"] == localnet


# ---- conntrack: flows of a floating IP that moved -------------------------------------------

def conntrack(*msgs) -> tuple[ConntrackManager, list[str]]:
    deleted: list[str] = []
    ct = ConntrackManager(lambda address: deleted.append(address) or 1)
    for msg in msgs:
        ct.on_message(msg)
    ct.complete_deferred_work()
    ct.apply()
    return ct, deleted


def step(ct: ConntrackManager, deleted: list[str], *msgs) -> list[str]:
    deleted.clear()
    for msg in msgs:
        ct.on_message(msg)
    ct.complete_deferred_work()
    ct.apply()
    return list(deleted)


def test_conntrack_forgets_only_floating_ips_that_moved_or_went():
    a = wep(nats=[("10.65.0.1", "172.16.1.3")], orchestrator="openstack")
    b = wep(W2, "cali2", "10.65.0.2", nats=[("10.65.0.2", "172.16.1.4")],
            orchestrator="openstack")
    ct, deleted = conntrack(m.ConfigUpdate(K8S), a, b)
    assert deleted == []  # the first mappings: nothing to forget
    assert step(ct, deleted, wep(orchestrator="openstack"),
                wep(W2, "cali2", "10.65.0.2", orchestrator="openstack",
                    nats=[("10.65.0.2", "172.16.1.4"), ("10.65.0.2", "172.16.1.3")])) == [
        "172.16.1.3"]  # moved; 172.16.1.4 unchanged
    assert step(ct, deleted, m.WorkloadEndpointRemove(W2)) == ["172.16.1.3", "172.16.1.4"]
    assert step(ct, deleted) == []


def test_conntrack_follows_the_floating_ips_setting():
    ct, deleted = conntrack(m.ConfigUpdate({**K8S, "FloatingIPs": "Enabled"}),
                            wep(nats=[("10.65.0.1", "172.16.1.3")]))
    assert step(ct, deleted, m.ConfigUpdate(K8S)) == ["172.16.1.3"]
