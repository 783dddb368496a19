"""WorkloadEndpoint and HostEndpoint: Calico's name derivation, stored labels and checks."""

import pytest

from calico import api
from calico.api.base import FieldError
from calico.api.endpoints import check_workload_endpoint_name, workload_endpoint_name


def _doc(kind, spec, name, **meta):
    return {"apiVersion": "projectcalico.org/v3", "kind": kind,
            "metadata": {"name": name, **meta}, "spec": spec}


def _error(doc) -> api.ValidationError:
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc)
    return err.value


WEP = {"node": "node-1", "orchestrator": "k8s", "pod": "web-0", "endpoint": "eth0",
       "interfaceName": "cali0ef24ba", "ipNetworks": ["10.65.0.5/32", "fd00::5"],
       "profiles": ["kns.prod"], "mac": "ee:ee:ee:ee:ee:ee", "serviceAccountName": "web",
       "ipv4Gateway": "169.254.1.1", "ipv6Gateway": "fe80::1",
       "ipNATs": [{"internalIP": "10.65.0.5", "externalIP": "172.16.0.5"}],
       "ports": [{"name": "http", "protocol": "TCP", "port": 8080},
                 {"protocol": "UDP", "port": 53, "hostPort": 5353, "hostIP": "10.0.0.1"}],
       "allowSpoofedSourcePrefixes": ["192.0.2.0/24"]}
WEP_NAME = "node--1-k8s-web--0-eth0"


def _wep(name=WEP_NAME, **changes):
    spec = {k: v for k, v in {**WEP, **changes}.items() if v is not None}
    return _doc("WorkloadEndpoint", spec, name, namespace="prod")


@pytest.mark.parametrize("ids, name", [
    ({"node": "node1", "orchestrator": "k8s", "pod": "my-nginx-b1337a", "endpoint": "eth0"},
     "node1-k8s-my--nginx--b1337a-eth0"),
    ({"node": "h", "orchestrator": "cni", "containerID": "abc123", "endpoint": "eth0"},
     "h-cni-abc123-eth0"),
    ({"node": "h", "orchestrator": "libnetwork", "endpoint": "ep-1"},
     "h-libnetwork-libnetwork-ep--1"),
    ({"node": "compute-1", "orchestrator": "openstack", "workload": "vm-1", "endpoint": "tap1"},
     "compute--1-openstack-vm--1-tap1"),
])
def test_workload_endpoint_name(ids, name):
    assert workload_endpoint_name({**ids, "interfaceName": "x"}) == name


def test_workload_endpoint_name_needs_every_identifier():
    with pytest.raises(FieldError) as err:
        workload_endpoint_name({"node": "h", "orchestrator": "k8s", "endpoint": "e",
                                "interfaceName": "x"})
    assert err.value.field == ("spec", "pod")


def test_valid_workload_endpoint_gets_calicos_labels():
    wep = api.validate(_wep())
    assert wep.metadata.labels == {"projectcalico.org/namespace": "prod",
                                   "projectcalico.org/orchestrator": "k8s"}
    assert wep.key() == ("/calico/resources/v3/projectcalico.org/workloadendpoints/prod/"
                         + WEP_NAME)
    ports = wep.to_dict()["spec"]["ports"]
    assert ports[0] == {"name": "http", "protocol": "TCP", "port": 8080, "hostPort": 0,
                        "hostIP": ""}
    assert api.validate(wep.to_dict()) == wep


def test_user_labels_are_kept_and_calicos_win():
    doc = _wep()
    doc["metadata"]["labels"] = {"app": "web", "projectcalico.org/namespace": "other"}
    labels = api.validate(doc).metadata.labels
    assert labels["app"] == "web" and labels["projectcalico.org/namespace"] == "prod"


NAME_CHECKS = [
    (_wep(name="node-1-k8s-web-0-eth0"), "metadata.name",
     'does not match the identifiers in spec (expected "node--1-k8s-web--0-eth0")'),
    (_wep(pod=None), "spec.pod", "must be set: a WorkloadEndpoint's name is "
                                 "<node>-<orchestrator>-<pod>-<endpoint>"),
    (_wep(node=None), "spec.node", "must be set"),
]


@pytest.mark.parametrize("doc, path, reason", NAME_CHECKS)
def test_names_are_the_clients_check_not_the_validators(doc, path, reason):
    """Calico's validator accepts these (its tests say a WorkloadEndpoint without node is
    valid); its client refuses to write them, and so does ours."""
    res = api.validate(doc)
    with pytest.raises(api.ValidationError) as err:
        check_workload_endpoint_name(res)
    assert (err.value.kind, err.value.path) == ("WorkloadEndpoint", path), str(err.value)
    assert reason in err.value.reason


INVALID_WEPS = [
    (_wep(pod="-web", name="node--1-k8s---web-eth0"), "spec.pod", "is not a valid name"),
    (_wep(interfaceName=None), "spec.interfaceName", "is required"),
    (_wep(interfaceName="a-very-long-interface"), "spec.interfaceName",
     "is not a valid interface name"),
    (_wep(node="Node_1"), "spec.node", "is not a valid name"),
    (_wep(containerID="-abc"), "spec.containerID", "is not a valid container ID"),
    (_wep(ipNetworks=["10.65.0.0/24"]), "spec.ipNetworks[0]",
     "is not a single address: workload ipNetworks must be /32"),
    (_wep(ipNetworks=["10.65.0.5/32", "fd00::/64"]), "spec.ipNetworks[1]", "must be /128"),
    (_wep(ipNetworks=["10.65.0.300"]), "spec.ipNetworks[0]", "is not a valid CIDR"),
    (_wep(ipNATs=[{"internalIP": "10.65.0.6", "externalIP": "172.16.0.1"}]),
     "spec.ipNATs[0].internalIP", "is not one of the endpoint's ipNetworks"),
    (_wep(ipNATs=[{"internalIP": "10.65.0.5", "externalIP": "fd00::1"}]),
     "spec.ipNATs[0].externalIP", "is not of the same IP version as internalIP"),
    (_wep(ipNATs=[{"internalIP": "10.65.0.5", "externalIP": "nope"}]),
     "spec.ipNATs[0].externalIP", "is not a valid IP address"),
    (_wep(ipv4Gateway="fe80::1"), "spec.ipv4Gateway", "is not a valid IPv4 address"),
    (_wep(ipv6Gateway="169.254.1.1"), "spec.ipv6Gateway", "is not a valid IPv6 address"),
    (_wep(mac="ee:ee:ee:ee:ee"), "spec.mac", "is not a valid MAC address"),
    (_wep(mac="zz:ee:ee:ee:ee:ee"), "spec.mac", "is not a valid MAC address"),
    (_wep(profiles=["Bad Profile"]), "spec.profiles[0]", "is not a valid name"),
    (_wep(ports=[{"name": "http", "protocol": "ICMP", "port": 80}]), "spec.ports[0].protocol",
     "is not a protocol with ports (TCP, UDP or SCTP)"),
    (_wep(ports=[{"name": "http", "protocol": "TCP", "port": 0}]), "spec.ports[0].port",
     "0 is not a valid port (1-65535)"),
    (_wep(ports=[{"name": "http", "protocol": "TCP"}]), "spec.ports[0].port", "is required"),
    (_wep(ports=[{"protocol": "TCP", "port": 80}]), "spec.ports[0].name",
     "must not be empty when no hostPort is set"),
    (_wep(ports=[{"name": "HTTP", "protocol": "TCP", "port": 80}]), "spec.ports[0].name",
     "is not a valid port name"),
    (_wep(ports=[{"name": "h", "protocol": "TCP", "port": 80, "hostPort": 70000}]),
     "spec.ports[0].hostPort", "is not a valid port (0-65535)"),
    (_wep(allowSpoofedSourcePrefixes=["x"]), "spec.allowSpoofedSourcePrefixes[0]",
     "is not a valid CIDR"),
]


@pytest.mark.parametrize("doc, path, reason", INVALID_WEPS)
def test_invalid_workload_endpoints(doc, path, reason):
    err = _error(doc)
    assert (err.kind, err.path) == ("WorkloadEndpoint", path), str(err)
    assert reason in err.reason, str(err)


HEP = {"node": "myhost", "interfaceName": "eth0", "expectedIPs": ["192.168.0.1", "fd00::1"],
       "profiles": ["profile1"], "ports": [{"name": "some-port", "port": 1234,
                                            "protocol": "TCP"}]}


@pytest.mark.parametrize("spec", [
    HEP,
    {"node": "myhost", "interfaceName": "*"},
    {"node": "myhost", "expectedIPs": ["10.0.0.1"]},
    {"node": "myhost", "interfaceName": "eth0", "ports": [{"name": "p", "protocol": 132,
                                                           "port": 9}]},
])
def test_valid_host_endpoints(spec):
    hep = api.validate(_doc("HostEndpoint", spec, "some.name"))
    assert api.validate(hep.to_dict()) == hep
    assert hep.key() == "/calico/resources/v3/projectcalico.org/hostendpoints/some.name"


@pytest.mark.parametrize("spec, path, reason", [
    ({"interfaceName": "eth0"}, "spec.node", "must be set: the node this host endpoint is on"),
    ({"node": "myhost"}, "spec.interfaceName", "must be set when expectedIPs is empty"),
    ({"node": "myhost", "expectedIPs": []}, "spec.interfaceName", "must be set"),
    ({"node": "myhost", "interfaceName": "eth 0"}, "spec.interfaceName",
     "is not a valid interface name"),
    ({**HEP, "expectedIPs": ["192.168.0.1", "192.168.0.0/24"]}, "spec.expectedIPs[1]",
     "is not a valid IP address"),
    ({**HEP, "profiles": ["ok", "Not_OK"]}, "spec.profiles[1]", "is not a valid name"),
    ({**HEP, "ports": [{"name": "p", "protocol": "TCP"}]}, "spec.ports[0].port", "is required"),
    ({**HEP, "ports": [{"protocol": "TCP", "port": 1}]}, "spec.ports[0].name", "is required"),
    ({**HEP, "ports": [{"name": "p", "protocol": 123, "port": 1}]}, "spec.ports[0].protocol",
     "is not a protocol with ports"),
    ({**HEP, "ports": [{"name": "p", "protocol": "TCP", "port": 65536}]}, "spec.ports[0].port",
     "is not a valid port (1-65535)"),
    ({**HEP, "node": "My_Host"}, "spec.node", "is not a valid name"),
])
def test_invalid_host_endpoints(spec, path, reason):
    err = _error(_doc("HostEndpoint", spec, "hep1"))
    assert (err.kind, err.name, err.path) == ("HostEndpoint", "hep1", path), str(err)
    assert reason in err.reason, str(err)


def test_host_endpoint_is_not_namespaced():
    err = _error(_doc("HostEndpoint", HEP, "hep1", namespace="prod"))
    assert err.path == "metadata.namespace"
