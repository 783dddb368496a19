"""Node registration and default pools against the local datastore."""

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from calico.node.autodetect import Interface
from calico.node.startup import (
    StartupConfig,
    StartupError,
    ensure_default_pools,
    register_node,
)


def ifaces():
    return [Interface("eth0", ("10.0.0.5/24", "fd00::5/64"))]


def reach(dest, version):
    return None


@pytest.fixture
def client(tmp_path):
    b = LocalBackend(str(tmp_path / "calico.db"))
    yield ResourceClient(b)
    b.close()


def cfg(**env):
    return StartupConfig.from_env({"NODENAME": "Node-1", **env})


def register(client, **env):
    return register_node(client, cfg(**env), ifaces, reach)


def test_autodetects_ipv4_by_default_and_ipv6_only_when_asked(client):
    node = register(client)
    assert node["metadata"]["name"] == "node-1"
    assert node["spec"]["bgp"] == {"ipv4Address": "10.0.0.5/24"}
    node = register(client, IP6="autodetect")
    assert node["spec"]["bgp"] == {"ipv4Address": "10.0.0.5/24", "ipv6Address": "fd00::5/64"}


def test_explicit_address_and_as(client):
    node = register(client, IP="10.0.0.5", AS="64600")
    # The prefix length comes from the interface holding the address.
    assert node["spec"]["bgp"]["ipv4Address"] == "10.0.0.5/24"
    assert node["spec"]["bgp"]["asNumber"] == 64600
    node = register(client, IP="192.0.2.7/26")
    assert node["spec"]["bgp"]["ipv4Address"] == "192.0.2.7/26"


def test_unset_keeps_the_current_address(client):
    register(client, IP="192.0.2.7/26")
    node = register(client)
    assert node["spec"]["bgp"]["ipv4Address"] == "192.0.2.7/26"


def test_none_removes_the_family(client):
    register(client, IP6="fd00::5/64")
    node = register(client, IP6="none")
    assert "ipv6Address" not in node["spec"]["bgp"]


def test_other_labels_and_fields_kept(client):
    client.create({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                   "metadata": {"name": "node-1", "labels": {"rack": "a"}},
                   "spec": {"bgp": {"routeReflectorClusterID": "1.0.0.1"}}})
    node = register(client)
    assert node["metadata"]["labels"] == {"rack": "a"}
    assert node["spec"]["bgp"]["routeReflectorClusterID"] == "1.0.0.1"


def test_address_used_by_another_node_is_refused(client):
    register_node(client, StartupConfig.from_env({"NODENAME": "other", "IP": "10.0.0.5/24"}),
                  ifaces, reach)
    with pytest.raises(StartupError, match="Calico node 'other' is already using"):
        register(client)


@pytest.mark.parametrize("env,match", [({"IP": "banana"}, "is not an IPv4"),
                                       ({"IP": "fd00::1"}, "is not an IPv4"),
                                       ({"IP6": "10.0.0.1"}, "is not an IPv6")])
def test_bad_settings(client, env, match):
    with pytest.raises(StartupError, match=match):
        register(client, **env)


def test_autodetection_failure_is_a_clear_error(client):
    with pytest.raises(StartupError, match="Couldn't autodetect an IPv4"):
        register_node(client, cfg(IP_AUTODETECTION_METHOD="interface=wlan.*"), ifaces, reach)


def test_default_pools(client):
    c = cfg(CALICO_IPV4POOL_CIDR="10.65.0.0/16", CALICO_IPV4POOL_BLOCK_SIZE="28")
    node = register_node(client, c, ifaces, reach)
    assert ensure_default_pools(client, c, node) == ["10.65.0.0/16"]  # no IPv6 address
    pool = client.get("IPPool", "default-ipv4-ippool")
    assert pool.spec.blockSize == 28 and pool.spec.ipipMode == "Never"
    assert pool.spec.natOutgoing is True
    c = cfg(CALICO_IPV6POOL_CIDR="fd00:65::/48")  # an explicit CIDR is enough
    assert ensure_default_pools(client, c, node) == ["fd00:65::/48"]
    assert ensure_default_pools(client, c, node) == []  # both exist now


def test_no_default_pools(client):
    c = cfg(NO_DEFAULT_POOLS="true")
    assert ensure_default_pools(client, c, register_node(client, c, ifaces, reach)) == []
    assert client.list("IPPool").items == []


def test_random_ula_for_ipv6_default(client):
    c = cfg(IP6="autodetect")
    created = ensure_default_pools(client, c, register_node(client, c, ifaces, reach))
    assert created[0] == "192.168.0.0/16" and created[1].startswith("fd")
    assert created[1].endswith("/48")
