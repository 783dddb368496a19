"""Every manifest under tests/fixtures/manifests/policy applies, and survives a dump/load."""

from pathlib import Path

import pytest

from calico import api

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "manifests" / "policy"
FILES = sorted(FIXTURES.glob("*.yaml"))


def test_fixtures_exist():
    kinds = {r.KIND for path in FILES for r in api.load(path.read_text(), str(path))}
    assert kinds >= {"NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy",
                     "StagedGlobalNetworkPolicy", "Tier", "Profile", "NetworkSet",
                     "GlobalNetworkSet", "HostEndpoint", "WorkloadEndpoint"}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_fixture_applies_and_round_trips(path):
    resources = api.load(path.read_text(), str(path))
    assert resources
    assert api.load(api.dump_yaml(resources)) == resources
    assert api.load(api.dump_json(resources)) == resources
    for res in resources:
        assert api.validate(res.to_dict()) == res


def test_fixture_defaults():
    by_name = {r.name: r for path in FILES for r in api.load(path.read_text(), str(path))}
    assert by_name["allow-ping"].spec.types == ["Ingress"]
    assert by_name["allow-egress-to-db-and-dns"].spec.types == ["Egress"]
    assert by_name["allow-egress-to-db-and-dns"].spec.tier == "default"
    assert by_name["memcached-server"].spec.types == ["Ingress", "Egress"]
    assert by_name["allow-http-get"].spec.ingress[0].destination.ports == ["http", 8080,
                                                                           "9000:9100"]
    assert by_name["platform"].spec.defaultAction == "Pass"
    assert by_name["security"].spec.defaultAction == "Deny"
