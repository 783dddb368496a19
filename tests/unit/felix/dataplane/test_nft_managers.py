"""The nftables managers with a fake runner: each change yields a minimal transaction."""

import pytest

from calico.felix import messages as m
from calico.felix.dataplane.nft import NftDataplane, NftError
from calico.felix.dataplane.nft.names import ip_set_name, policy_chain_name
from calico.felix.dataplane.nft.readback import parse_table

R, A = m.Rule, m.Action
P1, P2 = m.PolicyID("p1"), m.PolicyID("p2")
PROF = m.ProfileID("kns.default")
W1 = m.WorkloadEndpointID("ns", "w1")


class FakeRunner:
    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.fail_next = False
        self.table_json: dict | None = None

    def run(self, script: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise NftError("boom")
        self.scripts.append(script)

    def list_table(self, family: str, name: str) -> dict | None:
        return self.table_json


def lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line]


def wep(**kw) -> m.WorkloadEndpointUpdate:
    base = dict(id=W1, interface="cali1", ipv4_nets=("10.65.0.2/32",),
                profile_ids=(PROF,), tiers=(m.TierInfo("default", (P1, P2), (P1,)),))
    base.update(kw)
    return m.WorkloadEndpointUpdate(**base)


@pytest.fixture
def dp():
    runner = FakeRunner()
    d = NftDataplane(runner)
    for msg in (m.IPSetUpdate("s1", m.IPSetType.NET, frozenset({"10.0.0.1/32", "10.0.0.2"})),
                m.ActivePolicyUpdate(P1, inbound_rules=(R(A.ALLOW, src_ip_set_ids=("s1",)),)),
                m.ActivePolicyUpdate(P2, inbound_rules=(R(A.DENY, protocol=6),)),
                m.ActiveProfileUpdate(PROF, inbound_rules=(R(A.ALLOW),)),
                wep()):
        d.on_message(msg)
    d.apply()
    return d


def test_cold_apply_is_one_transaction_creating_everything(dp):
    (script,) = dp.runner.scripts
    assert script.startswith("add table inet calico\n")
    assert "add chain inet calico filter-forward { type filter hook forward priority 0;" in script
    assert ('add map inet calico wl-from { type ifname : verdict; elements = '
            '{ "cali1" : goto fw-cali1 } }') in script
    assert "add element" not in script  # nft would dump every interval set's elements first
    assert "flush" not in script and "delete" not in script
    assert dp.apply() == ""  # nothing pending


def test_policy_change_touches_only_that_policy_chain(dp):
    dp.on_message(m.ActivePolicyUpdate(P2, inbound_rules=(R(A.DENY, protocol=17),)))
    script = dp.apply()
    chain = policy_chain_name(P2, True)
    flush, rule = lines(script)
    assert flush == f"flush chain inet calico {chain}"
    assert rule.startswith(f'add rule inet calico {chain} meta l4proto 17 drop comment "')


def test_unchanged_policy_update_is_a_no_op(dp):
    dp.on_message(m.ActivePolicyUpdate(P2, inbound_rules=(R(A.DENY, protocol=6),)))
    assert dp.apply() == ""


def test_ip_set_delta_touches_only_elements(dp):
    dp.on_message(m.IPSetDeltaUpdate("s1", added=frozenset({"10.0.0.3/32"}),
                                     removed=frozenset({"10.0.0.1/32"})))
    name = ip_set_name("s1", 4, m.IPSetType.NET)
    assert lines(dp.apply()) == [f"delete element inet calico {name} {{ 10.0.0.1 }}",
                                 f"add set inet calico {name} {{ type ipv4_addr; flags interval; "
                                 "elements = { 10.0.0.3 } }"]


def test_ip_set_prefixes_are_collapsed_without_overlap(dp):
    dp.on_message(m.IPSetDeltaUpdate("s1", added=frozenset({"10.0.0.0/30"})))
    name = ip_set_name("s1", 4, m.IPSetType.NET)
    assert lines(dp.apply()) == [f"delete element inet calico {name} {{ 10.0.0.1, 10.0.0.2 }}",
                                 f"add set inet calico {name} {{ type ipv4_addr; flags interval; "
                                 "elements = { 10.0.0.0/30 } }"]


def test_named_port_sets_use_concatenations():
    d = NftDataplane(FakeRunner())
    d.on_message(m.IPSetUpdate("np", m.IPSetType.NET_PORT,
                               frozenset({"10.0.0.1,tcp:8080", "fd00::1,udp:53"})))
    script = d.apply()
    assert ("add set inet calico n4-np { type ipv4_addr . inet_proto . inet_service; "
            "elements = { 10.0.0.1 . 6 . 8080 } }") in script
    assert ("add set inet calico n6-np { type ipv6_addr . inet_proto . inet_service; "
            "elements = { fd00::1 . 17 . 53 } }") in script


def test_endpoint_remove_deletes_its_chains_and_map_elements(dp):
    dp.on_message(m.WorkloadEndpointRemove(W1))
    out = lines(dp.apply())
    assert 'delete element inet calico wl-from { "cali1" }' in out
    assert "delete chain inet calico fw-cali1" in out
    assert out.index('delete element inet calico wl-from { "cali1" }') < out.index(
        "delete chain inet calico fw-cali1")
    assert not any("add rule" in line for line in out)


def test_endpoint_update_rewrites_only_its_chains(dp):
    dp.on_message(wep(tiers=(m.TierInfo("default", (P1,), (P1,)),)))
    out = lines(dp.apply())
    assert {line.split()[4] for line in out if line.startswith("flush")} == {"tw-cali1"}


def test_policy_and_set_removal_order(dp):
    dp.on_message(wep(tiers=()))
    dp.on_message(m.ActivePolicyRemove(P1))
    dp.on_message(m.IPSetRemove("s1"))
    out = lines(dp.apply())
    p1 = policy_chain_name(P1, True)
    assert out.index("flush chain inet calico fw-cali1") < out.index(f"delete chain inet calico {p1}")
    assert out[-2:] == ["delete set inet calico s4-s1", "delete set inet calico s6-s1"]


def test_literal_sets_are_reference_counted(dp):
    big = R(A.ALLOW, protocol=6, dst_ports=tuple((p, p) for p in range(1, 60, 2)))
    dp.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(big,)))
    dp.on_message(m.ActivePolicyUpdate(P2, inbound_rules=(big,)))
    script = dp.apply()
    assert script.count("add set inet calico lp_") == 1
    dp.on_message(m.ActivePolicyUpdate(P1))
    assert "delete set" not in dp.apply()
    dp.on_message(m.ActivePolicyUpdate(P2))
    assert "delete set inet calico lp_" in dp.apply()


def test_failed_transaction_resyncs_and_retries(dp):
    dp.runner.fail_next = True
    dp.on_message(m.ActivePolicyUpdate(P2, inbound_rules=(R(A.ALLOW),)))
    script = dp.apply()
    # The fake kernel read back as empty: the retry recreates everything.
    assert script.startswith("add table inet calico")
    assert len(dp.runner.scripts) == 2


def test_restart_diffs_against_the_kernel(dp):
    # Build what the kernel would print from the committed state, then restart Felix.
    doc = kernel_json(dp)
    runner = FakeRunner()
    runner.table_json = doc
    d2 = NftDataplane(runner)
    for msg in (m.IPSetUpdate("s1", m.IPSetType.NET, frozenset({"10.0.0.1/32", "10.0.0.2"})),
                m.ActivePolicyUpdate(P1, inbound_rules=(R(A.ALLOW, src_ip_set_ids=("s1",)),)),
                m.ActivePolicyUpdate(P2, inbound_rules=(R(A.DENY, protocol=17),)),
                m.ActiveProfileUpdate(PROF, inbound_rules=(R(A.ALLOW),)), wep()):
        d2.on_message(msg)
    out = lines(d2.apply())
    assert out[0] == f"flush chain inet calico {policy_chain_name(P2, True)}"
    assert len(out) == 2  # only the changed policy


def test_refresh_repairs_a_chain_flushed_by_hand(dp):
    doc = kernel_json(dp)
    for item in doc["nftables"]:
        if "rule" in item and item["rule"]["chain"] == "fw-cali1":
            item["rule"]["chain"] = "gone"  # drop its rules from the read-back
    dp.runner.table_json = doc
    out = lines(dp.refresh())
    assert out[0] == "add rule inet calico fw-cali1 meta mark set meta mark & 0xfff8ffff " \
                     + out[0].split(" 0xfff8ffff ")[1]
    assert all(line.startswith("add rule inet calico fw-cali1") for line in out)


def test_refresh_names_the_drift_and_adopts_only_that(dp, caplog):
    doc = kernel_json(dp)
    for item in doc["nftables"]:
        if "rule" in item and item["rule"]["chain"] == "fw-cali1":
            item["rule"]["chain"] = "gone"
    dp.runner.table_json = doc
    believed = dict(dp.table.kernel.chains)
    with caplog.at_level("WARNING"):
        dp.refresh()
    (record,) = caplog.records
    assert "1 sets and chains, e.g. fw-cali1" in record.getMessage()
    # what matched the read-back is still the believed object, not a parsed copy
    for name, chain in dp.table.kernel.chains.items():
        if name != "fw-cali1":
            assert chain is believed[name]


def test_refresh_without_drift_logs_nothing_and_leaves_nothing_dirty(dp, caplog):
    dp.runner.table_json = kernel_json(dp)
    with caplog.at_level("WARNING"):
        assert dp.refresh() == ""
    assert caplog.records == []
    assert dp.table.transaction() == ""
    assert not dp.table._dirty_chains and not dp.table._dirty_sets


def test_pending_changes_in_a_refresh_are_not_drift(dp, caplog):
    dp.runner.table_json = kernel_json(dp)
    dp.on_message(m.ActivePolicyUpdate(P2, inbound_rules=(R(A.DENY, protocol=17),)))
    with caplog.at_level("WARNING"):
        out = lines(dp.refresh())
    assert caplog.records == []
    assert out[0] == f"flush chain inet calico {policy_chain_name(P2, True)}"
    assert len(out) == 2


def test_host_endpoint_maps_are_looked_up_only_while_they_have_entries(dp):
    """No host endpoint: no `hep-*` lookups in the base chains. The first forward-policy host
    endpoint brings back the forward chain's lookups in the transaction that adds its entries;
    removing it takes them out again."""
    def forward() -> tuple[str, ...]:
        return dp.table.chains["filter-forward"].rules

    assert not any("@hep-" in r for c in dp.table.chains.values() for r in c.rules)
    hep = m.HostEndpointID("h1")
    dp.on_message(m.HostEndpointUpdate(hep, interface="eth1", forward_tiers=(
        m.TierInfo("default", (P1,), ()),)))
    script = dp.apply()
    assert "iifname vmap @hep-fwd-from" in forward()
    assert "oifname vmap @hep-fwd-to" not in forward()
    assert "iifname vmap @hep-from" in dp.table.chains["filter-input"].rules
    # The entry and the rule looking it up are in one transaction.
    assert '"eth1" : jump fhf-eth1' in script
    assert "filter-forward iifname vmap @hep-fwd-from" in script
    # No untracked or pre-DNAT policy: no raw or pre-DNAT base chain, no untracked accept.
    assert not {"raw-prerouting", "raw-output", "prednat"} & dp.table.chains.keys()
    assert not any("untracked" in r for r in forward())
    dp.on_message(m.HostEndpointRemove(hep))
    dp.apply()
    assert not any("@hep-" in r for c in dp.table.chains.values() for r in c.rules)


def test_config_update_changes_static_chains_only(dp):
    dp.on_message(m.ConfigUpdate({"DefaultEndpointToHostAction": "Accept"}))
    out = lines(dp.apply())
    assert {line.split()[4] for line in out} == {"wl-to-host"}


def kernel_json(d: NftDataplane) -> dict:
    """What `nft -j list table` would print for the committed kernel state."""
    items: list[dict] = [{"table": {"family": "inet", "name": "calico"}}]
    for name, s in d.table.kernel.sets.items():
        obj = {"name": name, "type": list(s.spec.type), "flags": list(s.spec.flags)}
        if s.spec.map_to:
            obj["map"] = s.spec.map_to
            obj["elem"] = [[k.strip('"'), {v.split()[0]: {"target": v.split()[1]}}]
                           for k, v in s.elements.items()]
            items.append({"map": obj})
        else:
            obj["elem"] = list(s.elements)
            items.append({"set": obj})
    for name, c in d.table.kernel.chains.items():
        chain = {"name": name}
        if c.base:
            chain.update(type=c.base.type, hook=c.base.hook, prio=c.base.priority,
                         policy=c.base.policy)
        items.append({"chain": chain})
        items += [{"rule": {"chain": name, "comment": h}} for h in c.hashes]
    doc = {"nftables": items}
    assert parse_table(doc).chains == d.table.kernel.chains
    return doc


def test_large_table_removes_elements_by_flush_and_refill(dp):
    """With more interval-set elements in the table than a refill would write, a set losing
    members is flushed and refilled in the same transaction (nft answers `delete element`
    by dumping every interval set first)."""
    big = frozenset(f"10.9.{i // 100}.{i % 100 * 2 + 1}/32" for i in range(3000))  # apart
    dp.on_message(m.IPSetUpdate("big", m.IPSetType.NET, big))
    dp.apply()
    name = ip_set_name("s1", 4, m.IPSetType.NET)
    dp.on_message(m.IPSetDeltaUpdate("s1", added=frozenset({"10.0.0.3/32"}),
                                     removed=frozenset({"10.0.0.1/32"})))
    out = lines(dp.apply())
    assert out[0] == f"flush set inet calico {name}"
    assert out[1].startswith(f"add set inet calico {name} {{ type ipv4_addr; flags interval; "
                             "elements = { ")
    assert sorted(out[1].split("elements = { ")[1].rstrip(" }").split(", ")) == \
        ["10.0.0.2", "10.0.0.3"]
    assert len(out) == 2
    assert "delete element" not in dp.runner.scripts[-1]


def test_a_set_built_by_deltas_equals_the_same_set_built_whole():
    """Neighbouring hosts are not merged, so a Felix restarted after churn computes exactly the
    elements the deltas left in the kernel and rewrites nothing."""
    import random

    rnd = random.Random(5)
    pool = [f"10.0.{i // 256}.{i % 256}/32" for i in range(64)] + ["10.0.0.0/30", "10.0.1.0/28"]
    pool += [f"fd00::{i:x}/128" for i in range(8)]
    for _ in range(200):
        members = set(rnd.sample(pool, 8))
        churned = NftDataplane(FakeRunner())
        churned.on_message(m.IPSetUpdate("s", m.IPSetType.NET, frozenset(members)))
        for _ in range(10):
            added = frozenset(rnd.sample(pool, rnd.randrange(3)))
            removed = frozenset(rnd.sample(sorted(members), min(len(members), rnd.randrange(3))))
            added -= removed
            members = (members - removed) | added
            churned.on_message(m.IPSetDeltaUpdate("s", added=added, removed=removed))
        whole = NftDataplane(FakeRunner())
        whole.on_message(m.IPSetUpdate("s", m.IPSetType.NET, frozenset(members)))
        for fam in (4, 6):
            name = ip_set_name("s", fam, m.IPSetType.NET)
            assert churned.table.sets[name].elements == whole.table.sets[name].elements, members
            assert churned.ip_sets.empty("s", fam) == whole.ip_sets.empty("s", fam), members


def test_a_family_whose_selector_set_is_empty_is_not_rendered(dp):
    """s1 holds IPv4 addresses only: P1's `ip6 saddr @s6-...` rule could never match."""
    chain = policy_chain_name(P1, True)
    v6_set = ip_set_name("s1", 6, m.IPSetType.NET)
    assert not any(v6_set in r for r in dp.table.chains[chain].rules)
    # The first IPv6 member: the element and the rule that uses it, in one transaction.
    dp.on_message(m.IPSetDeltaUpdate("s1", added=frozenset({"fd00::1/128"})))
    script = dp.apply()
    assert f"add rule inet calico {chain} " in script and f"ip6 saddr @{v6_set}" in script
    assert script.index(f"add set inet calico {v6_set}") < script.index(f"ip6 saddr @{v6_set}")
    # The last one leaves: the rule goes again.
    dp.on_message(m.IPSetDeltaUpdate("s1", removed=frozenset({"fd00::1/128"})))
    script = dp.apply()
    assert f"flush chain inet calico {chain}" in script and f"@{v6_set}" not in script.split(
        f"flush chain inet calico {chain}")[1].split("delete element")[0]


def test_negated_selectors_and_empty_sets_keep_their_rules():
    d = NftDataplane(FakeRunner())
    d.on_message(m.IPSetUpdate("e", m.IPSetType.NET, frozenset()))
    d.on_message(m.ActivePolicyUpdate(P1, inbound_rules=(
        R(A.DENY, not_src_ip_set_ids=("e",)), R(A.ALLOW, src_ip_set_ids=("e",)))))
    rules = d.table.chains[policy_chain_name(P1, True)].rules
    assert len(rules) == 2  # the negated rule for both families; the positive one for neither
    assert all("!= @" in r for r in rules)


def test_vxlan_from_workloads_dropped_while_a_pool_has_vxlan(dp):
    """As Calico: with VXLAN on, a workload's VXLAN packets are dropped before policy
    (unless AllowVXLANPacketsFromWorkloads); only wl-from-dispatch changes."""
    dp.on_message(m.IPAMPoolUpdate("vx", "10.65.0.0/16", vxlan_mode="CrossSubnet"))
    out = lines(dp.apply())
    assert {line.split()[4] for line in out} == {"wl-from-dispatch", "pools4-all"}  # + NAT's
    assert any("meta nfproto ipv4 udp dport 4789 drop" in line for line in out)
    dp.on_message(m.ConfigUpdate({"AllowVXLANPacketsFromWorkloads": "true"}))
    assert not any("dport 4789" in line for line in lines(dp.apply()))
    dp.on_message(m.ConfigUpdate({"VXLANPort": "8472"}))
    assert any("udp dport 8472 drop" in line for line in lines(dp.apply()))
    dp.on_message(m.IPAMPoolUpdate("vx", "10.65.0.0/16", vxlan_mode="Never"))
    assert not any("dport 8472" in line for line in lines(dp.apply()))


def test_endpoint_replaced_on_its_interface_keeps_its_chains_and_map_keys(dp):
    """A successor's update can precede its predecessor's removal (one calc-graph batch):
    the removal must not take the successor's chains and dispatch keys with it."""
    successor = m.WorkloadEndpointID("openstack", "w1-new")
    dp.on_message(wep(id=successor))
    dp.on_message(m.WorkloadEndpointRemove(W1))
    dp.apply()
    assert dp.table.sets["wl-to"].elements == {'"cali1"': "goto tw-cali1"}
    assert dp.table.sets["wl-from"].elements == {'"cali1"': "goto fw-cali1"}
    assert {"tw-cali1", "fw-cali1"} <= set(dp.table.chains)
    dp.on_message(m.WorkloadEndpointRemove(successor))
    dp.apply()
    assert dp.table.sets["wl-to"].elements == {}
    assert "tw-cali1" not in dp.table.chains
