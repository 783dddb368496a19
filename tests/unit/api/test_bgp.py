"""BGPPeer, BGPConfiguration, BGPFilter; AS numbers, peer addresses and Go durations."""

from pathlib import Path

import pytest

from calico import api
from calico.api.nets import format_go_duration, parse_as_number, parse_go_duration, parse_ip_port

INFRA = Path(__file__).parents[2] / "fixtures" / "manifests" / "infra"


def doc(kind, spec, name="x"):
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name},
            "spec": spec}


@pytest.mark.parametrize("text, value", [
    (64512, 64512), ("64512", 64512), ("1.10", 65546), ("0.1", 1), ("65535.65535", 2**32 - 1),
    (4294967295, 4294967295),
])
def test_as_numbers(text, value):
    assert parse_as_number(text) == value


@pytest.mark.parametrize("bad", [0, "0", -1, 2**32, "1.65536", "1.2.3", "AS64512", True, 1.5, ""])
def test_bad_as_numbers(bad):
    with pytest.raises(ValueError):
        parse_as_number(bad)


@pytest.mark.parametrize("text, nanos, canonical", [
    ("90s", 90 * 10**9, "1m30s"), ("5m30s", 330 * 10**9, "5m30s"), ("1h", 3600 * 10**9, "1h0m0s"),
    ("0", 0, "0s"), ("0s", 0, "0s"), ("300ms", 300 * 10**6, "300ms"), ("1.5h", 5400 * 10**9,
    "1h30m0s"), ("2h45m", 9900 * 10**9, "2h45m0s"), ("1.5s", 1500 * 10**6, "1.5s"),
    ("10us", 10**4, "10µs"), ("10µs", 10**4, "10µs"), ("7ns", 7, "7ns"), ("-2s", -2 * 10**9, "-2s"),
    ("1h0m0.5s", 3600 * 10**9 + 5 * 10**8, "1h0m0.5s"),
])
def test_go_durations(text, nanos, canonical):
    assert parse_go_duration(text) == nanos
    assert format_go_duration(nanos) == canonical
    assert parse_go_duration(canonical) == nanos


@pytest.mark.parametrize("bad", ["", "90", "s", "1x", "5m30", "1 h", ".s", 90, None, "1d"])
def test_bad_go_durations(bad):
    with pytest.raises(ValueError):
        parse_go_duration(bad)


def test_peer_addresses():
    assert parse_ip_port("10.0.0.1") == (parse_ip_port("10.0.0.1:179")[0], None)
    assert parse_ip_port("10.0.0.1:179")[1] == 179
    assert str(parse_ip_port("[fd00::1]:1179")[0]) == "fd00::1"
    for bad in ["10.0.0.1:0", "10.0.0.1:70000", "[fd00::1]", "fd00::1]:179", "host:179", ""]:
        with pytest.raises(ValueError):
            parse_ip_port(bad)


def test_peer_is_stored_with_integer_as_and_canonical_durations():
    peer = api.validate(doc("BGPPeer", {"peerIP": "10.0.0.1:179", "asNumber": "1.10",
                                        "maxRestartTime": "90s", "keepOriginalNextHop": False}))
    assert peer.to_dict()["spec"] == {"peerIP": "10.0.0.1:179", "asNumber": 65546,
                                      "maxRestartTime": "1m30s"}


@pytest.mark.parametrize("spec, path, reason", [
    ({"peerIP": "10.0.0.300"}, "spec.peerIP", "is not a valid peer address"),
    ({"peerIP": "10.0.0.1:0"}, "spec.peerIP", "invalid port"),
    ({"peerIP": "[fd00::1]:65536"}, "spec.peerIP", "invalid port"),
    ({"asNumber": 0}, "spec.asNumber", "is not a valid AS number"),
    ({"asNumber": "4294967296"}, "spec.asNumber", "is not a valid AS number"),
    ({"asNumber": "1.70000"}, "spec.asNumber", "dotted form"),
    ({"localASNumber": -5}, "spec.localASNumber", "is not a valid AS number"),
    ({"node": "Host_1"}, "spec.node", "is not a valid name"),
    ({"node": "a", "nodeSelector": "all()"}, "spec.node", "must be empty when nodeSelector"),
    ({"peerIP": "10.0.0.1", "peerSelector": "all()"}, "spec.peerIP",
     "must be empty when peerSelector"),
    ({"asNumber": 64512, "peerSelector": "all()"}, "spec.asNumber",
     "must be empty when peerSelector"),
    ({"localWorkloadSelector": "app == 'bgp'"}, "spec.localWorkloadSelector",
     "requires asNumber"),
    ({"localWorkloadSelector": "all()", "asNumber": 1, "peerIP": "10.0.0.1"}, "spec.peerIP",
     "must be empty when localWorkloadSelector"),
    ({"peerSelector": "has(rr"}, "spec.peerSelector", "is not a valid selector"),
    ({"reachableBy": "10.0.0.254"}, "spec.reachableBy", "must be empty when peerIP is empty"),
    ({"peerIP": "[fd00::1]:179", "reachableBy": "10.0.0.254"}, "spec.reachableBy",
     "same IP version"),
    ({"peerIP": "10.0.0.1", "reachableBy": "gateway"}, "spec.reachableBy", "valid IP address"),
    ({"keepOriginalNextHop": True, "nextHopMode": "Keep"}, "spec.keepOriginalNextHop",
     "nextHopMode"),
    ({"nextHopMode": "Other"}, "spec.nextHopMode", "is not one of"),
    ({"sourceAddress": "NodeIP"}, "spec.sourceAddress", "is not one of"),
    ({"maxRestartTime": "120"}, "spec.maxRestartTime", "is not a valid duration"),
    ({"keepaliveTime": "soon"}, "spec.keepaliveTime", "is not a valid duration"),
    ({"ttlSecurity": 256}, "spec.ttlSecurity", "0-255"),
    ({"numAllowedLocalASNumbers": -1}, "spec.numAllowedLocalASNumbers", "negative"),
    ({"filters": ["ok", "Not OK"]}, "spec.filters[1]", "is not a valid name"),
    ({"password": {"secretKeyRef": {"name": "s"}}}, "spec.password.secretKeyRef.key",
     "is required"),
    ({"password": "hunter2"}, "spec.password", "is not an object"),
    ({"reversePeering": "Both"}, "spec.reversePeering", "is not one of"),
    ({"peerAddress": "10.0.0.1"}, "spec.peerAddress", "is not a known field"),
])
def test_invalid_peers(spec, path, reason):
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc("BGPPeer", spec, "peer"))
    assert err.value.path == path
    assert reason in str(err.value)
    assert str(err.value).startswith(f'BGPPeer "peer": {path}: ')


def test_configuration_default_only_fields():
    for field, value in [("asNumber", 64512), ("nodeToNodeMeshEnabled", True),
                         ("serviceClusterIPs", [{"cidr": "10.96.0.0/12"}])]:
        api.validate(doc("BGPConfiguration", {field: value}, "default"))
        with pytest.raises(api.ValidationError) as err:
            api.validate(doc("BGPConfiguration", {field: value}, "node.host1"))
        assert err.value.path == f"spec.{field}"
        assert 'only be set on the BGPConfiguration named "default"' in str(err.value)


@pytest.mark.parametrize("spec, path, reason", [
    ({"logSeverityScreen": "Verbose"}, "spec.logSeverityScreen", "is not one of"),
    ({"listenPort": 0}, "spec.listenPort", "1-65535"),
    ({"listenPort": 65536}, "spec.listenPort", "1-65535"),
    ({"asNumber": "x"}, "spec.asNumber", "is not a valid AS number"),
    ({"bindMode": "All"}, "spec.bindMode", "is not one of"),
    ({"serviceExternalIPs": [{"cidr": "10.0.0.1/8"}]}, "spec.serviceExternalIPs[0].cidr",
     "host bits"),
    ({"serviceLoadBalancerIPs": [{"cidr": "nope"}]}, "spec.serviceLoadBalancerIPs[0].cidr",
     "is not a valid CIDR"),
    ({"communities": [{"name": "c", "value": "65536:1"}],
      "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}]},
     "spec.communities[0].value", "16-bit"),
    ({"communities": [{"name": "c", "value": "1:2:4294967296"}],
      "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}]},
     "spec.communities[0].value", "32-bit"),
    ({"communities": [{"name": "c", "value": "100"}],
      "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}]},
     "spec.communities[0].value", '"aa:nn"'),
    ({"communities": [{"name": "Big C", "value": "1:1"}],
      "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["1:1"]}]},
     "spec.communities[0].name", "is not a valid name"),
    ({"communities": [{"name": "c", "value": "1:1"}]}, "spec.communities",
     "not used by any prefixAdvertisements"),
    ({"prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["1:1", "missing"]}]},
     "spec.prefixAdvertisements[0].communities[1]", "neither a community value nor the name"),
    ({"prefixAdvertisements": [{"cidr": "10.0.0.1/8", "communities": ["1:1"]}]},
     "spec.prefixAdvertisements[0].cidr", "host bits"),
    ({"nodeToNodeMeshEnabled": False, "nodeMeshPassword": {"secretKeyRef": {"key": "k"}}},
     "spec.nodeMeshPassword", "nodeToNodeMeshEnabled is false"),
    ({"nodeToNodeMeshEnabled": False, "nodeMeshMaxRestartTime": "2m"},
     "spec.nodeMeshMaxRestartTime", "nodeToNodeMeshEnabled is false"),
    ({"nodeMeshMaxRestartTime": "2 min"}, "spec.nodeMeshMaxRestartTime", "valid duration"),
    ({"ignoredInterfaces": ["eth0", "*"]}, "spec.ignoredInterfaces[1]", "interface name"),
    ({"ignoredInterfaces": ["a-very-long-interface-name"]}, "spec.ignoredInterfaces[0]",
     "interface name"),
    ({"localWorkloadPeeringIPV4": "fd00::1"}, "spec.localWorkloadPeeringIPV4", "IPv4 address"),
    ({"localWorkloadPeeringIPV6": "10.0.0.1"}, "spec.localWorkloadPeeringIPV6", "IPv6 address"),
    ({"nodeToNodeMeshEnabled": "true"}, "spec.nodeToNodeMeshEnabled", "is not a boolean"),
])
def test_invalid_configurations(spec, path, reason):
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc("BGPConfiguration", spec, "default"))
    assert err.value.path == path
    assert reason in str(err.value)


@pytest.mark.parametrize("rules, path, reason", [
    ({"exportV4": [{"cidr": "10.0.0.0/8", "matchOperator": "In"}]}, "spec.exportV4[0].action",
     "is required"),
    ({"exportV4": [{"action": "Allow"}]}, "spec.exportV4[0].action", "is not one of"),
    ({"exportV4": [{"action": "Accept", "cidr": "fd00::/8", "matchOperator": "In"}]},
     "spec.exportV4[0].cidr", "IPv4 CIDR"),
    ({"importV6": [{"action": "Accept", "cidr": "10.0.0.0/8", "matchOperator": "In"}]},
     "spec.importV6[0].cidr", "IPv6 CIDR"),
    ({"exportV4": [{"action": "Accept", "cidr": "10.0.0.0/8"}]}, "spec.exportV4[0].cidr",
     "requires matchOperator"),
    ({"exportV4": [{"action": "Accept", "matchOperator": "In"}]},
     "spec.exportV4[0].matchOperator", "requires cidr"),
    ({"exportV4": [{"action": "Accept", "prefixLength": {"min": 8}}]},
     "spec.exportV4[0].prefixLength", "requires cidr"),
    ({"exportV4": [{"action": "Accept", "cidr": "10.0.0.0/8", "matchOperator": "In",
                    "prefixLength": {"max": 33}}]}, "spec.exportV4[0].prefixLength.max", "0-32"),
    ({"exportV6": [{"action": "Accept", "cidr": "fd00::/8", "matchOperator": "In",
                    "prefixLength": {"max": 129}}]}, "spec.exportV6[0].prefixLength.max", "0-128"),
    ({"importV4": [{"action": "Reject", "interface": "eth0 eth1"}]},
     "spec.importV4[0].interface", "interface name"),
    ({"importV4": [{"action": "Reject", "source": "Anywhere"}]}, "spec.importV4[0].source",
     "is not one of"),
    ({"importV4": [{"action": "Reject", "operations": [{"setPriority": {"value": 3}}]}]},
     "spec.importV4[0].operations", 'only allowed with action "Accept"'),
    ({"importV4": [{"action": "Accept", "operations": [{"addCommunity": {"value": "1"}}]}]},
     "spec.importV4[0].operations[0].addCommunity.value", "is not a valid community"),
    ({"importV4": [{"action": "Accept", "communities": {"values": ["1:1", "2:2"]}}]},
     "spec.importV4[0].communities.values", "exactly one"),
])
def test_invalid_filters(rules, path, reason):
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc("BGPFilter", rules, "f"))
    assert err.value.path == path
    assert reason in str(err.value)


@pytest.mark.parametrize("name", ["bgppeers.yaml", "bgpconfigurations.yaml"])
def test_fixture_manifests_load_and_round_trip(name):
    resources = api.load((INFRA / name).read_text(), name)
    assert {r.kind for r in resources} <= {"BGPPeer", "BGPConfiguration", "BGPFilter"}
    for res in resources:
        assert api.load(api.dump_yaml([res]))[0] == res
        assert api.validate(res.to_dict()).to_dict() == res.to_dict()


def test_fixture_values_are_normalised():
    peers = {p.name: p for p in api.load((INFRA / "bgppeers.yaml").read_text())}
    assert peers["ipv6-tor"].spec.asNumber == 65546
    assert peers["tor-rack1"].spec.maxRestartTime == "1m30s"
    assert peers["tor-rack1"].spec.password.secretKeyRef.key == "rack1-password"
