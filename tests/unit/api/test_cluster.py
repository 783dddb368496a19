"""Node, ClusterInformation, KubeControllersConfiguration, IPAMConfiguration, BlockAffinity."""

import base64
from pathlib import Path

import pytest

from calico import api

INFRA = Path(__file__).parents[2] / "fixtures" / "manifests" / "infra"


def doc(kind, spec, name="default", **extra):
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name},
            "spec": spec, **extra}


def test_node_round_trip_and_as_number():
    node = api.validate(doc("Node", {"bgp": {"ipv4Address": "10.0.0.5/24", "asNumber": "1.1",
                                             "routeReflectorClusterID": "224.0.0.1"},
                                     "addresses": [{"address": "10.0.0.5", "type": "InternalIP"}]},
                            "host-1",
                            status={"wireguardPublicKey": base64.b64encode(b"k" * 32).decode()}))
    assert node.spec.bgp.asNumber == 65537
    assert node.key() == "/calico/resources/v3/projectcalico.org/nodes/host-1"
    assert api.validate(node.to_dict()) == node


@pytest.mark.parametrize("spec, status, path, reason", [
    ({"bgp": {}}, None, "spec.bgp", "must not be empty"),
    ({"bgp": {"ipv4Address": "fd00::1/64"}}, None, "spec.bgp.ipv4Address", "IPv4"),
    ({"bgp": {"ipv6Address": "10.0.0.1/24"}}, None, "spec.bgp.ipv6Address", "IPv6"),
    ({"bgp": {"ipv4Address": "10.0.0.1/33"}}, None, "spec.bgp.ipv4Address", "valid CIDR"),
    ({"bgp": {"ipv4Address": "10.0.0.1", "asNumber": 0}}, None, "spec.bgp.asNumber",
     "valid AS number"),
    ({"bgp": {"ipv4Address": "10.0.0.1", "routeReflectorClusterID": "rr1"}}, None,
     "spec.bgp.routeReflectorClusterID", "valid IP address"),
    ({"bgp": {"ipv4IPIPTunnelAddr": "fd00::1"}}, None, "spec.bgp.ipv4IPIPTunnelAddr", "IPv4"),
    ({"ipv4VXLANTunnelAddr": "10.0.0.1/32"}, None, "spec.ipv4VXLANTunnelAddr",
     "valid IP address"),
    ({"vxlanTunnelMACAddr": "66:cf:23:df:22"}, None, "spec.vxlanTunnelMACAddr", "MAC"),
    ({"addresses": [{"address": "10.0.0.5/24"}]}, None, "spec.addresses[0].address",
     "host bits"),
    ({"addresses": [{"address": "10.0.0.5", "type": "PublicIP"}]}, None,
     "spec.addresses[0].type", "is not one of"),
    ({"orchRefs": [{"nodeName": "n"}]}, None, "spec.orchRefs[0].orchestrator", "is required"),
    ({"interfaces": [{"name": "Eth_0"}]}, None, "spec.interfaces[0].name", "valid name"),
    ({"wireguard": {"interfaceIPv4Address": "fd00::1"}}, None,
     "spec.wireguard.interfaceIPv4Address", "IPv4"),
    ({}, {"wireguardPublicKey": "short"}, "status.wireguardPublicKey", "Wireguard public key"),
    ({}, {"podCIDRs": "10.0.0.0/24"}, "status.podCIDRs", "is not a list"),
])
def test_invalid_nodes(spec, status, path, reason):
    extra = {"status": status} if status is not None else {}
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc("Node", spec, "host-1", **extra))
    assert err.value.path == path
    assert reason in str(err.value)
    assert str(err.value).startswith(f'Node "host-1": {path}: ')


@pytest.mark.parametrize("kind", ["ClusterInformation", "KubeControllersConfiguration",
                                  "IPAMConfiguration"])
def test_singletons_must_be_named_default(kind):
    api.validate(doc(kind, {}))
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc(kind, {}, "mine"))
    assert err.value.path == "metadata.name"
    assert 'singleton named "default"' in str(err.value)


def test_kube_controllers_durations_are_canonical():
    kcc = api.validate(doc("KubeControllersConfiguration",
                           {"etcdV3CompactionPeriod": "600s",
                            "controllers": {"node": {"reconcilerPeriod": "5m"}}}))
    assert kcc.to_dict()["spec"] == {"etcdV3CompactionPeriod": "10m0s",
                                     "controllers": {"node": {"reconcilerPeriod": "5m0s"}}}


@pytest.mark.parametrize("kind, spec, path, reason", [
    ("ClusterInformation", {"datastoreReady": "yes"}, "spec.datastoreReady", "is not a boolean"),
    ("ClusterInformation", {"clusterUUID": "x"}, "spec.clusterUUID", "is not a known field"),
    ("KubeControllersConfiguration", {"logSeverityScreen": "Loud"}, "spec.logSeverityScreen",
     "is not one of"),
    ("KubeControllersConfiguration", {"healthChecks": "On"}, "spec.healthChecks", "is not one of"),
    ("KubeControllersConfiguration", {"prometheusMetricsPort": 70000},
     "spec.prometheusMetricsPort", "valid port"),
    ("KubeControllersConfiguration", {"etcdV3CompactionPeriod": "10 minutes"},
     "spec.etcdV3CompactionPeriod", "valid duration"),
    ("KubeControllersConfiguration",
     {"controllers": {"node": {"hostEndpoint": {"autoCreate": "Yes"}}}},
     "spec.controllers.node.hostEndpoint.autoCreate", "is not one of"),
    ("KubeControllersConfiguration",
     {"controllers": {"node": {"hostEndpoint": {"templates": [{"nodeSelector": "a =="}]}}}},
     "spec.controllers.node.hostEndpoint.templates[0].nodeSelector", "valid selector"),
    ("KubeControllersConfiguration",
     {"controllers": {"node": {"hostEndpoint": {"templates": [{"interfaceCIDRs": ["x"]}]}}}},
     "spec.controllers.node.hostEndpoint.templates[0].interfaceCIDRs[0]", "valid CIDR"),
    ("KubeControllersConfiguration", {"controllers": {"loadBalancer": {"assignIPs": "Some"}}},
     "spec.controllers.loadBalancer.assignIPs", "is not one of"),
    ("IPAMConfiguration", {"maxBlocksPerHost": -1}, "spec.maxBlocksPerHost", "between 0"),
    ("IPAMConfiguration", {"strictAffinity": "false"}, "spec.strictAffinity", "is not a boolean"),
    ("IPAMConfiguration", {"kubeVirtVMAddressPersistence": "On"},
     "spec.kubeVirtVMAddressPersistence", "is not one of"),
])
def test_invalid_singletons(kind, spec, path, reason):
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc(kind, spec))
    assert err.value.path == path
    assert reason in str(err.value)


@pytest.mark.parametrize("spec, path, reason", [
    ({"node": "n1", "cidr": "10.0.0.0/26"}, "spec.state", "is required"),
    ({"state": "lost", "node": "n1", "cidr": "10.0.0.0/26"}, "spec.state", "is not one of"),
    ({"state": "pending", "node": "N1", "cidr": "10.0.0.0/26"}, "spec.node", "valid name"),
    ({"state": "pending", "node": "n1", "cidr": "10.0.0.1/26"}, "spec.cidr", "host bits"),
    ({"state": "pending", "node": "n1", "cidr": "10.0.0.0/26", "deleted": True}, "spec.deleted",
     "cannot be set to true"),
    ({"state": "pending", "node": "n1", "cidr": "10.0.0.0/26", "deleted": "true"},
     "spec.deleted", "cannot be set to true"),
])
def test_invalid_block_affinities(spec, path, reason):
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc("BlockAffinity", spec, "n1-10-0-0-0-26"))
    assert err.value.path == path
    assert reason in str(err.value)


def test_fixture_manifests_load_and_round_trip():
    resources = api.load((INFRA / "cluster.yaml").read_text())
    resources.insert(1, *api.load((INFRA / "clusterinformation.yaml").read_text()))
    assert [r.kind for r in resources] == ["Node", "ClusterInformation",
                                           "KubeControllersConfiguration", "IPAMConfiguration",
                                           "BlockAffinity"]
    for res in resources:
        assert api.load(api.dump_yaml([res]))[0] == res
        assert api.validate(res.to_dict()).to_dict() == res.to_dict()
    node = resources[0]
    assert node.spec.bgp.ipv4Address == "10.244.0.1/24" and node.metadata.labels == {"rack":
                                                                                    "rack-1"}
