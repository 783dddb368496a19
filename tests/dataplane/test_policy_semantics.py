"""Calico policy semantics and host protection on the nftables dataplane, real packets:
tier order and Pass, default deny, anti-spoofing, workload → host, failsafe ports, host
endpoints, natOutgoing, and repair of a chain flushed by hand. Topology: test_policy.py."""

from __future__ import annotations

import pytest

from calico.felix import messages as m
from tests.dataplane.test_policy import PROF, A, R, Topology, program, tcp, wep
from tests.fixtures.netns import netns_set, ping


@pytest.fixture(scope="module")
def topo():
    with netns_set() as nets:
        yield Topology(nets)


T1 = m.PolicyID("t1-pol", "", "tier1")
D1, D2 = m.PolicyID("d1", "ns"), m.PolicyID("d2", "ns")


def ingress(*tiers: tuple[str, tuple[m.PolicyID, ...]], profiles=(PROF,)):
    return wep("w2", tiers=tuple(m.TierInfo(n, ingress_policies=p) for n, p in tiers),
               profiles=profiles)


def w1_to_w2(topo, port=80) -> bool:
    return tcp(topo.wl["w1"], "10.65.0.2", port) is not None


def test_first_matching_policy_wins_in_order(topo):
    program(topo, m.ActivePolicyUpdate(D1, inbound_rules=(R(A.DENY, protocol=6,
                                                            dst_ports=((80, 80),)),)),
            m.ActivePolicyUpdate(D2, inbound_rules=(R(A.ALLOW),)),
            endpoints=[ingress(("default", (D1, D2)))])
    assert not w1_to_w2(topo, 80) and w1_to_w2(topo, 8080)


def test_pass_skips_rest_of_tier_then_next_tier_decides(topo):
    pol_t1 = m.ActivePolicyUpdate(T1, inbound_rules=(R(A.PASS, protocol=6, dst_ports=((80, 80),)),
                                                     R(A.DENY)))
    program(topo, pol_t1, m.ActivePolicyUpdate(D2, inbound_rules=(R(A.ALLOW),)),
            endpoints=[ingress(("tier1", (T1,)), ("default", (D2,)))])
    assert w1_to_w2(topo, 80)  # passed to the default tier, which allows
    assert not w1_to_w2(topo, 8080)  # denied in tier1


def test_end_of_tier_default_deny_ignores_profiles(topo):
    program(topo, m.ActivePolicyUpdate(D1, inbound_rules=(R(A.ALLOW, protocol=6,
                                                            dst_ports=((80, 80),)),)),
            endpoints=[ingress(("default", (D1,)))])
    assert w1_to_w2(topo, 80) and not w1_to_w2(topo, 8080)


def test_pass_from_last_tier_goes_to_profiles(topo):
    program(topo, m.ActivePolicyUpdate(D1, inbound_rules=(R(A.PASS),)),
            endpoints=[ingress(("default", (D1,)))])
    assert w1_to_w2(topo, 8080)  # profile allow-all


def test_log_continues(topo):
    program(topo, m.ActivePolicyUpdate(D1, inbound_rules=(R(A.LOG, log_prefix="x"),
                                                          R(A.ALLOW))),
            endpoints=[ingress(("default", (D1,)))])
    assert w1_to_w2(topo)


def test_no_policies_no_profiles_denies(topo):
    program(topo, endpoints=[ingress(profiles=())])
    assert not w1_to_w2(topo)
    assert not ping(topo.wl["w1"], "fd00::2", timeout=1)


def test_egress_policy_applies_on_the_sender(topo):
    program(topo, m.ActivePolicyUpdate(D1, outbound_rules=(R(A.DENY, ip_version=6),
                                                           R(A.ALLOW))),
            endpoints=[wep("w1", tiers=(m.TierInfo("default", egress_policies=(D1,)),))])
    assert w1_to_w2(topo)
    assert tcp(topo.wl["w1"], "fd00::2", 80) is None


def test_spoofed_source_dropped_unless_allowed(topo):
    w1 = topo.wl["w1"]
    w1.ip("addr", "add", "10.65.0.99/32", "dev", "eth0")
    topo.host.ip("route", "replace", "10.65.0.99/32", "dev", "cali-w1")
    try:
        program(topo)
        assert ping(w1, "10.65.0.2", timeout=1)
        assert not w1.run("ping", "-c1", "-W1", "-I", "10.65.0.99", "10.65.0.2",
                          check=False).returncode == 0
        program(topo, endpoints=[wep("w1", spoof=("10.65.0.96/28",))])
        assert w1.run("ping", "-c1", "-W1", "-I", "10.65.0.99", "10.65.0.2",
                      check=False).returncode == 0
    finally:
        w1.ip("addr", "del", "10.65.0.99/32", "dev", "eth0", check=False)
        topo.host.ip("route", "del", "10.65.0.99/32", check=False)


def test_unknown_workload_interface_dropped(topo):
    dp = program(topo)
    dp.on_message(m.WorkloadEndpointRemove(m.WorkloadEndpointID("ns", "w3")))
    dp.apply()
    assert not ping(topo.wl["w3"], "10.65.0.2", timeout=1)
    assert ping(topo.wl["w1"], "10.65.0.2", timeout=1)


def test_workload_to_host_blocked_by_default_then_accept(topo):
    program(topo)
    assert tcp(topo.wl["w1"], "192.168.100.1", 8080) is None
    assert tcp(topo.wl["w1"], "2001:db8::1", 8080) is None
    program(topo, config={"DefaultEndpointToHostAction": "Accept"})
    assert tcp(topo.wl["w1"], "192.168.100.1", 8080) == "10.65.0.1"


def test_nat_outgoing_rewrites_source(topo):
    dp = program(topo)
    assert tcp(topo.wl["w1"], "192.168.100.2", 80) is None  # `out` has no route back
    dp.on_message(m.IPAMPoolUpdate("pool", "10.65.0.0/16", masquerade=True))
    dp.apply()
    assert tcp(topo.wl["w1"], "192.168.100.2", 80) == "192.168.100.1"
    dp.on_message(m.IPAMPoolUpdate("pool", "10.65.0.0/16", masquerade=False))
    dp.apply()
    assert tcp(topo.wl["w1"], "192.168.100.2", 80) is None
    assert w1_to_w2(topo)  # within the pools: never masqueraded


def test_host_endpoint_default_deny_with_failsafe_ports(topo):
    hep = m.HostEndpointUpdate(m.HostEndpointID("eth1"), interface="eth1")
    dp = program(topo, hep)
    out = topo.out
    assert tcp(out, "192.168.100.1", 22) == "192.168.100.2"  # failsafe tcp:22
    assert tcp(out, "192.168.100.1", 8080) is None
    assert tcp(out, "2001:db8::1", 8080) is None
    assert tcp(out, "2001:db8::1", 22) is not None
    dp.on_message(m.ActivePolicyUpdate(D1, inbound_rules=(R(A.ALLOW, protocol=6,
                                                            dst_ports=((8080, 8080),)),)))
    dp.on_message(m.HostEndpointUpdate(m.HostEndpointID("eth1"), interface="eth1",
                                       tiers=(m.TierInfo("default", (D1,)),)))
    dp.apply()
    assert tcp(out, "192.168.100.1", 8080) == "192.168.100.2"


def test_host_endpoint_by_expected_ip_apply_on_forward(topo):
    dp = program(topo, m.IPAMPoolUpdate("pool", "10.65.0.0/16", masquerade=True),
                 m.ActivePolicyUpdate(D1, outbound_rules=(R(A.DENY, protocol=6,
                                                              dst_ports=((8080, 8080),)),
                                                          R(A.ALLOW))))
    dp.endpoints.on_interface_addrs("eth1", ["192.168.100.1/24"])
    dp.on_message(m.HostEndpointUpdate(m.HostEndpointID("h"), expected_ipv4_addrs=("192.168.100.1",),
                                       profile_ids=(PROF,),
                                       forward_tiers=(m.TierInfo("default", (), (D1,)),)))
    dp.apply()
    assert tcp(topo.wl["w1"], "192.168.100.2", 80) == "192.168.100.1"
    assert tcp(topo.wl["w1"], "192.168.100.2", 8080) is None  # forward policy, egress


def test_untracked_and_pre_dnat_policies(topo):
    untracked = m.ActivePolicyUpdate(D1, inbound_rules=(R(A.ALLOW, protocol=6,
                                                          dst_ports=((8080, 8080),)),),
                                     outbound_rules=(R(A.ALLOW, protocol=6,
                                                       src_ports=((8080, 8080),)),),
                                     untracked=True)
    prednat = m.ActivePolicyUpdate(D2, inbound_rules=(R(A.DENY, protocol=6,
                                                        dst_ports=((80, 80),)),), pre_dnat=True)
    dp = program(topo, untracked, prednat,
                 m.HostEndpointUpdate(m.HostEndpointID("eth1"), interface="eth1",
                                      profile_ids=(PROF,),
                                      untracked_tiers=(m.TierInfo("default", (D1,), (D1,)),),
                                      pre_dnat_tiers=(m.TierInfo("default", (D2,)),)))
    assert tcp(topo.out, "192.168.100.1", 8080) == "192.168.100.2"  # untracked allow
    assert tcp(topo.out, "192.168.100.1", 80) is None  # pre-DNAT deny
    assert tcp(topo.out, "192.168.100.1", 22) is not None  # failsafe beats pre-DNAT deny
    assert dp.apply() == ""


def test_refresh_repairs_a_chain_flushed_by_hand(topo):
    dp = program(topo, m.ActivePolicyUpdate(D1, inbound_rules=(R(A.DENY),)),
                 endpoints=[ingress(("default", (D1,)))])
    assert not w1_to_w2(topo)
    topo.host.run("nft", "flush", "chain", "inet", "calico", "tw-cali-w2")
    assert w1_to_w2(topo)  # the hole the refresh must close
    script = dp.refresh()
    assert script.splitlines()[0].startswith("add rule inet calico tw-cali-w2 ")
    assert all(" tw-cali-w2 " in line for line in script.splitlines())
    assert not w1_to_w2(topo)
