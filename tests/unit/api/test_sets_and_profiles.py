"""Profiles, NetworkSets and GlobalNetworkSets."""

import pytest

from calico import api


def _doc(kind, spec, name="s1", **meta):
    return {"apiVersion": "projectcalico.org/v3", "kind": kind,
            "metadata": {"name": name, **meta}, "spec": spec}


def _error(doc) -> api.ValidationError:
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc)
    return err.value


@pytest.mark.parametrize("kind", ["NetworkSet", "GlobalNetworkSet"])
def test_network_sets_accept_addresses_and_unmasked_cidrs(kind):
    nets = ["10.0.0.1", "11.0.0.0/8", "12.1.2.3/16", "dead:beef::", "dead:beef::/96"]
    res = api.validate(_doc(kind, {"nets": nets}, labels={"role": "db"}))
    assert res.spec.nets == nets          # kept as written
    assert api.validate(res.to_dict()) == res


@pytest.mark.parametrize("kind", ["NetworkSet", "GlobalNetworkSet"])
def test_network_set_errors(kind):
    err = _error(_doc(kind, {"nets": ["10.0.0.0/8", "garbage"]}))
    assert (err.kind, err.path) == (kind, "spec.nets[1]") and "is not a valid CIDR" in err.reason
    err = _error(_doc(kind, {}, labels={"projectcalico.org/namespace": "x"}))
    assert err.path == "metadata.labels.projectcalico.org/namespace"
    assert "reserved label" in err.reason


def test_network_set_namespacing():
    ns = api.validate(_doc("NetworkSet", {}, namespace="staging"))
    assert ns.key() == "/calico/resources/v3/projectcalico.org/networksets/staging/s1"
    assert api.validate(_doc("NetworkSet", {})).namespace == "default"
    assert _error(_doc("GlobalNetworkSet", {}, namespace="x")).path == "metadata.namespace"
    gns = api.validate(_doc("GlobalNetworkSet", {}))
    assert gns.key() == "/calico/resources/v3/projectcalico.org/globalnetworksets/s1"


def test_profile_valid_and_round_trip():
    spec = {"ingress": [{"action": "Deny", "source": {"nets": ["10.0.20.0/24"]}},
                        {"action": "Allow", "source": {"selector": "stage == 'development'"}}],
            "egress": [{"action": "Allow"}],
            "labelsToApply": {"stage": "development", "pcns.projectcalico.org/name": "x"}}
    prof = api.validate(_doc("Profile", spec, name="kns.development"))
    assert prof.to_dict()["spec"] == spec
    assert api.validate(prof.to_dict()) == prof
    assert prof.key() == "/calico/resources/v3/projectcalico.org/profiles/kns.development"


@pytest.mark.parametrize("spec, path, reason", [
    ({"labelsToApply": {"bad key!": "v"}}, "spec.labelsToApply.bad key!", "valid label key"),
    ({"labelsToApply": {"k": "x" * 64}}, "spec.labelsToApply.k", "valid label value"),
    ({"ingress": [{"action": "Allow", "protocol": "TCP",
                   "destination": {"ports": [0]}}]},
     "spec.ingress[0].destination.ports[0]", "0 is not a valid port (1-65535)"),
    ({"egress": [{"action": "Allow"}] * 1025}, "spec.egress", "has too many rules"),
    ({"types": ["Ingress"]}, "spec.types", "is not a known field"),
])
def test_profile_errors(spec, path, reason):
    err = _error(_doc("Profile", spec, name="p"))
    assert (err.kind, err.path) == ("Profile", path), str(err)
    assert reason in err.reason, str(err)


def test_profile_rules_have_no_placement_restrictions():
    svc = {"services": {"name": "dns", "namespace": "kube-system"}}
    api.validate(_doc("Profile", {"egress": [{"action": "Allow", "source": svc}]}))
