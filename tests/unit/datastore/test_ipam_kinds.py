"""IPAMConfiguration and BlockAffinity live at IPAM's keys, as in Calico's etcd layout."""

import pytest

from calico.datastore import ipamkinds
from calico.datastore.client import ResourceClient, parse_key
from calico.datastore.local import LocalBackend
from calico.ipam import IPAM
from calico.ipam import model as ipam_model


@pytest.fixture
def client(tmp_path):
    return ResourceClient(LocalBackend(str(tmp_path / "calico.db")))


def doc(kind, name, spec):
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name},
            "spec": spec}


def test_ipam_configuration_is_what_ipam_reads(client):
    client.apply(doc("IPAMConfiguration", "default",
                     {"strictAffinity": True, "maxBlocksPerHost": 3}))
    assert client.backend.get(ipam_model.CONFIG_KEY) is not None
    stored = [kv.key for kv in client.backend.list("/calico/resources/v3/")[0]]
    assert stored == ["/calico/resources/v3/projectcalico.org/clusterinformations/default"]
    cfg = IPAM(client.backend, "h1").get_config()
    assert (cfg.strict_affinity, cfg.max_blocks_per_host, cfg.auto_allocate_blocks) == (
        True, 3, True)
    got = client.get("IPAMConfiguration", "default")
    assert got.to_dict()["spec"] == {"strictAffinity": True, "maxBlocksPerHost": 3,
                                     "autoAllocateBlocks": True}
    assert parse_key(ipam_model.CONFIG_KEY) == ("IPAMConfiguration", None, "default")


def test_block_affinities_are_ipams(client):
    client.apply(doc("IPPool", "p", {"cidr": "10.70.0.0/24", "blockSize": 26}))
    client.apply(doc("Node", "h1", {}))
    IPAM(client.backend, "h1").auto_assign(1, 0, handle_id="w1")
    (aff,) = client.list("BlockAffinity").items
    spec = aff.to_dict()["spec"]
    assert spec["node"] == "h1" and spec["state"] == "confirmed"
    assert aff.name == ipamkinds.affinity_name("h1", spec["cidr"])
    assert client.get("BlockAffinity", aff.name).to_dict()["spec"] == spec


def test_block_affinity_name_must_match_node_and_cidr(client):
    with pytest.raises(ValueError, match='must be "h1-10-70-0-0-26"'):
        client.create(doc("BlockAffinity", "whatever",
                          {"state": "confirmed", "node": "h1", "cidr": "10.70.0.0/26"}))
