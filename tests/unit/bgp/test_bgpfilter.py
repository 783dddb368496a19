"""BGPFilter rendered into BIRD 2 functions (issue #17 item 2): every match and operation,
peerType guards, the order of a peer's filters, long names; and BIRD parses the result."""

from calico.bgp.render import render
from calico.bgp.render.bgpfilter import function_name, rule_statement

from .test_peering import protocol
from .test_render import bird_accepts, peer, three_nodes

FULL = {"metadata": {"name": "full-example"}, "spec": {
    "importV4": [
        {"cidr": "10.244.0.0/16", "matchOperator": "In", "prefixLength": {"min": 24, "max": 28},
         "peerType": "iBGP", "communities": {"values": ["65000:100"]}, "asPathPrefix": [65000],
         "priority": 512, "interface": "eth0", "action": "Accept",
         "operations": [{"setPriority": {"value": 256}},
                        {"addCommunity": {"value": "65000:200"}},
                        {"prependASPath": {"prefix": [65001, 65002]}}]},
        {"cidr": "10.244.0.0/16", "matchOperator": "In", "peerType": "eBGP",
         "communities": {"values": ["65000:100:999"]}, "asPathPrefix": [65000, 65001],
         "priority": 100, "action": "Accept", "operations": [{"setPriority": {"value": 1024}}]},
        {"action": "Reject"}],
    "exportV4": [
        {"cidr": "192.168.0.0/16", "matchOperator": "In", "source": "RemotePeers",
         "interface": "eth1", "peerType": "eBGP", "communities": {"values": ["65000:42"]},
         "asPathPrefix": [65000, 65001], "priority": 100, "action": "Accept",
         "operations": [{"addCommunity": {"value": "65000:300:400"}},
                        {"prependASPath": {"prefix": [64999]}}]},
        {"cidr": "10.0.0.0/8", "matchOperator": "Equal", "peerType": "iBGP",
         "action": "Accept"}]}}
SIMPLE = {"metadata": {"name": "simple"}, "spec": {
    "importV4": [{"cidr": "10.0.0.0/8", "matchOperator": "In", "action": "Reject"}],
    "exportV4": [{"cidr": "192.168.0.0/16", "matchOperator": "Equal", "action": "Accept"}],
    "importV6": [{"cidr": "fd00:1::/32", "matchOperator": "NotIn", "action": "Reject"},
                 {"cidr": "fd00::/16", "matchOperator": "In", "prefixLength": {"max": 64},
                  "action": "Accept"}]}}


def test_every_match_and_operation():
    ibgp, ebgp, reject = FULL["spec"]["importV4"]
    assert rule_statement(ibgp, 4) == (
        "if (is_same_as) then { if ((net ~ [ 10.244.0.0/16{24,28} ])&&((defined(ifname))&&"
        '(ifname ~ "eth0"))&&((65000, 100) ~ bgp_community)&&(bgp_path ~ [= 65000 * =])&&'
        "(krt_metric = 512)) then { krt_metric = 256; bgp_community.add((65000, 200)); "
        "bgp_path.prepend(65002); bgp_path.prepend(65001); accept; } }")
    assert rule_statement(ebgp, 4) == (
        "if (!is_same_as) then { if ((net ~ 10.244.0.0/16)&&((65000, 100, 999) ~ "
        "bgp_large_community)&&(bgp_path ~ [= 65000 65001 * =])&&(krt_metric = 100)) then "
        "{ krt_metric = 1024; accept; } }")
    assert rule_statement(reject, 4) == "reject;"
    export = FULL["spec"]["exportV4"][0]
    assert "((defined(source))&&(source ~ [ RTS_BGP ]))" in rule_statement(export, 4)
    assert "bgp_large_community.add((65000, 300, 400)); bgp_path.prepend(64999);" in \
        rule_statement(export, 4)
    v6 = SIMPLE["spec"]["importV6"]
    assert rule_statement(v6[0], 6) == "if ((net !~ fd00:1::/32)) then { reject; }"
    assert rule_statement(v6[1], 6) == "if ((net ~ [ fd00::/16{16,64} ])) then { accept; }"


def test_peers_call_their_filters_in_order_with_the_session_kind(tmp_path):
    inp = three_nodes(peers=[peer("tor", peerIP="10.0.0.254", asNumber=65000,
                                  filters=["simple", "full-example", "gone"]),
                             peer("ibgp", peerIP="10.0.0.253", asNumber=64512,
                                  filters=["full-example"])],
                      filters={"full-example": FULL, "simple": SIMPLE})
    text = render(inp)
    assert "function 'bgp_full-example_importFilterV4'(bool is_same_as) {" in text
    assert "function 'bgp_simple_importFilterV4'() {" in text
    assert "function 'bgp_simple_importFilterV6'() {" in text
    assert "'bgp_simple_exportFilterV6'" not in text  # no exportV6 rules
    tor = protocol(text, "Global_10_0_0_254")
    assert ("import filter { 'bgp_simple_importFilterV4'(); "
            "'bgp_full-example_importFilterV4'(false); accept; };") in tor
    assert ("export filter { 'bgp_simple_exportFilterV4'(); "
            "'bgp_full-example_exportFilterV4'(false); calico_export4(false); reject; };") in tor
    assert ("export filter { 'bgp_full-example_exportFilterV4'(true); calico_export4(true); "
            "reject; };") in protocol(text, "Global_10_0_0_253")
    assert 'BGPFilter "gone" does not exist' in inp.skipped[0]
    bird_accepts(text, tmp_path)


def test_long_names_are_cut_with_a_hash_as_calico_does():
    name = "a" * 60
    fn = function_name(name, "import", 4)
    assert len(fn.strip("'")) <= 64
    assert fn.startswith("'bgp_" + "a" * 34 + "_") and fn.endswith("_importFilterV4'")
    assert function_name("short", "export", 6) == "'bgp_short_exportFilterV6'"
