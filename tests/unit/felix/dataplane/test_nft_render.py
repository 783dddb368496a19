"""The pure nftables renderer: Calico rules → nft rule texts, endpoint chains, names."""

import re

from calico.felix.dataplane.nft import endpoints as ep
from calico.felix.dataplane.nft.config import NftConfig, ProtoPort, parse_ports
from calico.felix.dataplane.nft.names import ip_set_name, policy_chain_name
from calico.felix.dataplane.nft.readback import parse_table, parse_text
from calico.felix.dataplane.nft.rules import (
    MAX_EXPANSION,
    Marks,
    action_verdict,
    render_rule,
    render_rules,
)
from calico.felix.messages import Action, IPSetType, PolicyID, Rule

M = Marks()
ALLOW = action_verdict(Rule(Action.ALLOW), M)


def rules(rule: Rule) -> list[str]:
    return render_rule(rule, "accept").rules


def test_plain_rule_renders_once_for_both_families():
    assert rules(Rule(Action.ALLOW)) == ["accept"]
    assert rules(Rule(Action.ALLOW, protocol=6)) == ["meta l4proto 6 accept"]


def test_ip_version_restricts_family():
    assert rules(Rule(Action.ALLOW, ip_version=6)) == ["meta nfproto ipv6 accept"]


def test_nets_split_by_family_and_expand_one_rule_per_value():
    out = rules(Rule(Action.ALLOW, src_nets=("10.0.0.0/8", "fd00::/64"),
                     dst_nets=("10.1.0.1/32",)))
    assert out == ["ip saddr 10.0.0.0/8 ip daddr 10.1.0.1 accept"]  # no v6 dst: no v6 rule


def test_not_nets_and_not_ports_are_conjunctions():
    out = rules(Rule(Action.DENY, protocol=17, not_src_nets=("10.0.0.0/8", "10.2.0.0/16"),
                     not_dst_ports=((53, 53), (100, 200))))
    assert out == ["meta l4proto 17 th dport != 53 th dport != 100-200 "
                   "ip saddr != 10.0.0.0/8 ip saddr != 10.2.0.0/16 accept",
                   # IPv4 not-nets say nothing about IPv6 packets
                   "meta nfproto ipv6 meta l4proto 17 th dport != 53 th dport != 100-200 accept"]


def test_ports_cross_product():
    out = rules(Rule(Action.ALLOW, protocol=6, src_ports=((1, 1), (2, 2)),
                     dst_ports=((80, 80), (443, 443))))
    assert len(out) == 4
    assert "meta l4proto 6 th sport 2 th dport 443 accept" in out


def test_ports_without_protocol_expand_tcp_udp_sctp():
    out = rules(Rule(Action.ALLOW, dst_ports=((80, 80),)))
    assert [r.split()[2] for r in out] == ["6", "17", "132"]


def test_large_lists_move_to_literal_named_sets():
    r = render_rule(Rule(Action.ALLOW, protocol=6,
                         dst_ports=tuple((p, p) for p in range(100, 140)),
                         src_nets=tuple(f"10.{i}.0.0/16" for i in range(30))), "accept")
    assert len(r.rules) <= MAX_EXPANSION
    names = set(r.sets)
    assert any(n.startswith("lp_") for n in names) and any(n.startswith("l4_") for n in names)
    port_set = next(v for n, v in r.sets.items() if n.startswith("lp_"))
    assert port_set[1] == frozenset({"100-139"})  # merged into one range


def test_no_inline_anonymous_sets_ever():
    r = render_rule(Rule(Action.ALLOW, protocol=6, dst_ports=tuple((p, p) for p in range(50)),
                         src_nets=("10.0.0.0/8", "10.1.0.0/16", "fd00::/8"),
                         not_dst_ports=((1, 1), (2, 2)), src_ip_set_ids=("a", "b"),
                         dst_named_port_ip_set_ids=("np",)), "accept")
    assert not any("{" in rule for rule in r.rules)


def test_cheap_matches_first_then_addresses_then_set_lookups():
    """The kernel stops at a rule's first failing match: a packet of another protocol or port
    must not pay for the set lookups."""
    out = rules(Rule(Action.ALLOW, protocol=6, src_ip_set_ids=("a",), src_nets=("10.0.0.0/8",),
                     dst_ports=((80, 80),), ip_version=4))
    assert out == ["meta l4proto 6 th dport 80 ip saddr 10.0.0.0/8 ip saddr @s4-a accept"]


def test_chain_of_one_protocol_starts_with_a_guard():
    verdict = lambda r: "accept"  # noqa: E731
    tcp = [Rule(Action.ALLOW, protocol=6, dst_ports=((p, p),), src_ip_set_ids=("a",))
           for p in (80, 443)]
    assert render_rules(tcp, verdict, lambda i, f: f == 6).rules == [
        "meta l4proto != 6 return", "meta l4proto 6 th dport 80 ip saddr @s4-a accept",
        "meta l4proto 6 th dport 443 ip saddr @s4-a accept"]
    # One rule: its own first match is the protocol test.  Mixed or missing protocols: none.
    assert not render_rules(tcp[:1], verdict, lambda i, f: f == 6).rules[0].startswith(
        "meta l4proto !=")
    for other in (Rule(Action.ALLOW, protocol=17), Rule(Action.ALLOW), Rule(
            Action.ALLOW, not_protocol=6)):
        assert "meta l4proto != 6 return" not in render_rules([*tcp, other], verdict).rules


def test_ip_sets_and_named_ports_per_family():
    out = rules(Rule(Action.ALLOW, protocol=6, src_ip_set_ids=("a",),
                     not_dst_ip_set_ids=("b",), dst_named_port_ip_set_ids=("np",)))
    assert out == [
        "meta l4proto 6 ip saddr @s4-a ip daddr != @s4-b ip daddr . meta l4proto . "
        "th dport @n4-np accept",
        "meta l4proto 6 ip6 saddr @s6-a ip6 daddr != @s6-b ip6 daddr . meta l4proto . "
        "th dport @n6-np accept"]


def test_ports_or_named_ports():
    out = rules(Rule(Action.ALLOW, protocol=6, dst_ports=((80, 80),), ip_version=4,
                     dst_named_port_ip_set_ids=("np",), not_src_named_port_ip_set_ids=("x",)))
    assert len(out) == 2
    assert all("ip saddr . meta l4proto . th sport != @n4-x" in r for r in out)


def test_icmp_type_code_and_negation():
    assert rules(Rule(Action.ALLOW, protocol=1, icmp_type=8, icmp_code=0)) == [
        "meta l4proto 1 icmp type 8 icmp code 0 accept"]
    assert rules(Rule(Action.ALLOW, protocol=58, not_icmp_type=128)) == [
        "meta l4proto 58 icmpv6 type != 128 accept"]
    assert rules(Rule(Action.ALLOW, protocol=1, not_icmp_type=8, not_icmp_code=3)) == [
        "meta nfproto ipv4 meta l4proto 1 @th,0,16 != 2051 accept"]
    assert rules(Rule(Action.ALLOW, protocol=1, ip_version=6)) == []


def test_not_protocol():
    assert rules(Rule(Action.ALLOW, not_protocol=17)) == ["meta l4proto != 17 accept"]


def test_action_verdicts():
    assert action_verdict(Rule(Action.DENY), M) == "drop"
    assert action_verdict(Rule(Action.ALLOW), M) == "meta mark set meta mark | 0x00010000 return"
    assert action_verdict(Rule(Action.ALLOW), M, untracked=True).startswith("notrack ")
    assert action_verdict(Rule(Action.PASS), M) == "meta mark set meta mark | 0x00020000 return"
    # A Log rule keeps the path's verdict out of the verdict cache (verdict_cache.py).
    assert action_verdict(Rule(Action.LOG, log_prefix='x"y'), M) == (
        'log prefix "xy: " meta mark set meta mark | 0x00080000')


def test_endpoint_chain_tiers_pass_and_default_deny():
    chain = ep.endpoint_chain([ep.TierChains("t1", ("a", "b")), ep.TierChains("t2", ()),
                               ep.TierChains("default", ("c",))], ["prof"], M)
    assert chain.rules == (
        "meta mark set meta mark & 0xfff8ffff",
        "jump a", "meta mark & 0x00010000 == 0x00010000 return",
        "meta mark & 0x00020000 == 0 jump b", "meta mark & 0x00010000 == 0x00010000 return",
        "meta mark & 0x00020000 == 0 drop",
        "meta mark set meta mark & 0xfffdffff",
        "jump c", "meta mark & 0x00010000 == 0x00010000 return",
        "meta mark & 0x00020000 == 0 drop",
        "jump prof", "meta mark & 0x00010000 == 0x00010000 return",
        "drop")


def test_no_policies_no_profiles_is_deny():
    assert ep.endpoint_chain([], [], M).rules[-1] == "drop"


def test_anti_spoofing():
    assert ep.anti_spoof_rules(["10.0.0.1/32"], M) == ["ip saddr != 10.0.0.1 drop",
                                                       "meta nfproto ipv6 drop"]
    many = ep.anti_spoof_rules(["10.0.0.1/32", "192.168.0.0/24", "fd00::1/128"], M)
    assert many[-1] == "ip6 saddr != fd00::1 drop"
    assert "meta nfproto ipv4 meta mark & 0x00040000 == 0 drop" in many


def test_static_chains_dispatch_by_vmap_and_prefix():
    cfg = NftConfig.from_mapping({"InterfacePrefix": "cali,tap",
                                  "DefaultEndpointToHostAction": "Accept"})
    chains = ep.static_chains(cfg, M)
    fwd = chains["filter-forward"].rules
    assert 'iifname "tap*" jump wl-from-dispatch' in fwd
    assert chains["wl-from-dispatch"].rules == ("iifname vmap @wl-from", "drop")
    assert chains["wl-to-host"].rules[-1] == "accept"
    assert chains["filter-input"].base.hook == "input"


def test_failsafe_defaults_are_calicos():
    cfg = NftConfig.from_mapping({})
    assert ProtoPort(6, 22) in cfg.failsafe_inbound and ProtoPort(17, 68) in cfg.failsafe_inbound
    assert ProtoPort(17, 53) in cfg.failsafe_outbound and len(cfg.failsafe_outbound) == 9
    assert "6 . 22" in ep.failsafe_elements(cfg.failsafe_inbound)
    assert parse_ports("F", "none") == ()
    assert parse_ports("F", "udp:10.0.0.0/8:53, 22") == (ProtoPort(17, 53, "10.0.0.0/8"),
                                                         ProtoPort(6, 22))


def test_names_are_short_valid_and_injective():
    ident = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
    long_id = "s:" + "x" * 200
    for name in (ip_set_name(long_id, 4, IPSetType.NET), ip_set_name("abc", 6, IPSetType.NET_PORT),
                 policy_chain_name(PolicyID("a" * 300, "ns", "tier"), True)):
        assert len(name) <= 63 and ident.match(name)
    assert ip_set_name("a_b", 4, IPSetType.NET) != ip_set_name("a-b", 4, IPSetType.NET)


def test_readback_parses_sets_maps_and_rule_hashes():
    doc = {"nftables": [
        {"table": {"family": "inet", "name": "calico"}},
        {"set": {"name": "s4-a", "type": "ipv4_addr", "flags": ["interval"],
                 "elem": ["10.0.0.1", {"prefix": {"addr": "10.1.0.0", "len": 16}}]}},
        {"set": {"name": "n4-a", "type": ["ipv4_addr", "inet_proto", "inet_service"],
                 "elem": [{"concat": ["10.0.0.1", "tcp", 8080]}]}},
        {"map": {"name": "wl-from", "type": "ifname", "map": "verdict",
                 "elem": [["cali1", {"goto": {"target": "fw-cali1"}}]]}},
        {"chain": {"name": "filter-input", "type": "filter", "hook": "input", "prio": 0,
                   "policy": "accept"}},
        {"chain": {"name": "x"}},
        {"rule": {"chain": "x", "comment": "abc", "expr": []}},
        {"rule": {"chain": "x", "expr": []}},
    ]}
    state = parse_table(doc)
    assert set(state.sets["s4-a"].elements) == {"10.0.0.1", "10.1.0.0/16"}
    assert set(state.sets["n4-a"].elements) == {"10.0.0.1 . 6 . 8080"}
    assert state.sets["wl-from"].elements == {'"cali1"': "goto fw-cali1"}
    assert state.chains["x"].hashes == ("abc", "")
    assert state.chains["filter-input"].base.priority == 0
    assert parse_table(None).exists is False


LISTING = """table inet calico {
    set s4-a {
        type ipv4_addr
        flags interval
        elements = { 10.0.0.1, 10.1.0.0/16,
                 10.2.0.1-10.2.0.5 }
    }
    set n4-a {
        type ipv4_addr . inet_proto . inet_service
        elements = { 10.0.0.1 . 6 . 8080, 10.0.0.2 . udp . 53 }
    }
    set empty {
        type ipv6_addr
        flags interval
    }
    map wl-from {
        type ifname : verdict
        elements = { "cali1" : goto fw-cali1,
                 "cali,2" : jump fw-cali2 }
    }
    chain filter-input {
        type filter hook input priority 0; policy accept;
        iifname vmap @wl-from comment "h1"
    }
    chain x {
        log prefix "comment \"y\": " comment "abc"
        drop
    }
    chain nat-postrouting {
        type nat hook postrouting priority 100; policy accept;
    }
}
"""


def test_text_readback_matches_the_json_readback():
    state = parse_text(LISTING)
    assert state.exists
    assert state.sets["s4-a"].elements == dict.fromkeys(
        ["10.0.0.1", "10.1.0.0/16", "10.2.0.1-10.2.0.5"])
    assert state.sets["s4-a"].spec.flags == ("interval",)
    assert set(state.sets["n4-a"].elements) == {"10.0.0.1 . 6 . 8080", "10.0.0.2 . 17 . 53"}
    assert state.sets["n4-a"].spec.type == ("ipv4_addr", "inet_proto", "inet_service")
    assert state.sets["empty"].elements == {}
    assert state.sets["wl-from"].spec.map_to == "verdict"
    assert state.sets["wl-from"].elements == {'"cali1"': "goto fw-cali1",
                                              '"cali,2"': "jump fw-cali2"}
    assert state.chains["filter-input"].base.hook == "input"
    assert state.chains["filter-input"].hashes == ("h1",)
    assert state.chains["x"].hashes == ("abc", "")
    assert state.chains["nat-postrouting"].base.priority == 100
    assert state.chains["nat-postrouting"].hashes == ()
    doc = {"nftables": [
        {"table": {"family": "inet", "name": "calico"}},
        {"set": {"name": "s4-a", "type": "ipv4_addr", "flags": ["interval"],
                 "elem": ["10.0.0.1", {"prefix": {"addr": "10.1.0.0", "len": 16}},
                          {"range": ["10.2.0.1", "10.2.0.5"]}]}},
        {"set": {"name": "n4-a", "type": ["ipv4_addr", "inet_proto", "inet_service"],
                 "elem": [{"concat": ["10.0.0.1", "tcp", 8080]},
                          {"concat": ["10.0.0.2", "udp", 53]}]}},
        {"set": {"name": "empty", "type": "ipv6_addr", "flags": ["interval"]}},
        {"map": {"name": "wl-from", "type": "ifname", "map": "verdict",
                 "elem": [["cali1", {"goto": {"target": "fw-cali1"}}],
                          ["cali,2", {"jump": {"target": "fw-cali2"}}]]}},
        {"chain": {"name": "filter-input", "type": "filter", "hook": "input", "prio": 0,
                   "policy": "accept"}},
        {"rule": {"chain": "filter-input", "comment": "h1"}},
        {"chain": {"name": "x"}},
        {"rule": {"chain": "x", "comment": "abc"}},
        {"rule": {"chain": "x"}},
        {"chain": {"name": "nat-postrouting", "type": "nat", "hook": "postrouting",
                   "prio": 100, "policy": "accept"}},
    ]}
    assert parse_table(doc) == state
    assert parse_text(None).exists is False


def test_config_names_match_case_insensitively():
    """Felix sends its own names, the calc graph FelixConfiguration field names."""
    calc = NftConfig.from_mapping({"interfacePrefix": "tap", "defaultEndpointToHostAction":
                                   "Accept", "failsafeInboundHostPorts": "udp:53",
                                   "logPrefix": "x"})
    felix = NftConfig.from_mapping({"InterfacePrefix": "tap", "DefaultEndpointToHostAction":
                                    "Accept", "FailsafeInboundHostPorts": "udp:53",
                                    "LogPrefix": "x"})
    assert calc == felix
    assert calc.interface_prefixes == ("tap",) and calc.endpoint_to_host_action == "accept"
    assert calc.failsafe_inbound == (ProtoPort(17, 53),) and calc.log_prefix == "x"


def test_text_readback_shares_what_matches_the_belief():
    from dataclasses import replace

    believed = parse_text(LISTING)
    believed.sets["empty"] = replace(believed.sets["empty"], elements={"fd00::1": None})
    believed.chains["x"] = replace(believed.chains["x"], hashes=("abc",))
    read = parse_text(LISTING, believed)
    assert read.sets["s4-a"] is believed.sets["s4-a"]
    assert read.chains["filter-input"] is believed.chains["filter-input"]
    assert read.sets["empty"] is not believed.sets["empty"]  # drifted: what the kernel has
    assert read.sets["empty"].elements == {}
    assert read.chains["x"].hashes == ("abc", "")
    assert read == parse_text(LISTING)  # the same state, whatever is shared
