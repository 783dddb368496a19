"""Policy kinds: Calico's defaults (types, tier, order), names, spec-level checks, staged
policies, tiers, and the round trip through to_dict / YAML / JSON."""

import pytest

from calico import api
from calico.api.policy import GlobalNetworkPolicy, NetworkPolicy, default_policy_types


def _doc(kind, spec, name="p1", **meta):
    return {"apiVersion": "projectcalico.org/v3", "kind": kind,
            "metadata": {"name": name, **meta}, "spec": spec}


def _error(doc) -> api.ValidationError:
    with pytest.raises(api.ValidationError) as err:
        api.validate(doc)
    return err.value


ALLOW = {"action": "Allow"}


# ---- defaults ------------------------------------------------------------------------------

@pytest.mark.parametrize("ingress, egress, types", [
    (None, None, ["Ingress"]),            # no rules at all: ingress (Calico's rule)
    ([], [], ["Ingress"]),
    ([ALLOW], None, ["Ingress"]),
    (None, [ALLOW], ["Egress"]),
    ([], [ALLOW], ["Egress"]),
    ([ALLOW], [ALLOW], ["Ingress", "Egress"]),
])
@pytest.mark.parametrize("kind", ["NetworkPolicy", "GlobalNetworkPolicy"])
def test_types_inferred_like_calico(kind, ingress, egress, types):
    spec = {k: v for k, v in (("ingress", ingress), ("egress", egress)) if v is not None}
    assert api.validate(_doc(kind, spec)).spec.types == types
    assert default_policy_types(ingress, egress) == types


def test_explicit_types_are_kept():
    spec = {"types": ["Egress"], "ingress": [ALLOW]}
    assert api.validate(_doc("NetworkPolicy", spec)).spec.types == ["Egress"]
    assert api.validate(_doc("NetworkPolicy", {"types": []})).spec.types == ["Ingress"]


def test_tier_defaults_and_order_stays_unset():
    pol = api.validate(_doc("GlobalNetworkPolicy", {}))
    assert pol.spec.tier == "default"
    assert pol.spec.order is None
    assert "order" not in pol.to_dict()["spec"]


def test_order_is_a_number_written_like_go():
    pol = api.validate(_doc("NetworkPolicy", {"order": 100}))
    assert pol.spec.order == 100.0 and pol.to_dict()["spec"]["order"] == 100
    assert api.validate(_doc("NetworkPolicy", {"order": 10.5})).to_dict()["spec"]["order"] == 10.5
    assert _error(_doc("NetworkPolicy", {"order": "first"})).path == "spec.order"
    assert _error(_doc("NetworkPolicy", {"order": True})).path == "spec.order"


def test_namespace_defaults_and_key():
    pol = api.validate(_doc("NetworkPolicy", {}))
    assert pol.namespace == "default"
    assert pol.key() == "/calico/resources/v3/projectcalico.org/networkpolicies/default/p1"
    gnp = api.validate(_doc("GlobalNetworkPolicy", {}, name="security.p1"))
    assert gnp.key() == "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/security.p1"


def test_false_flags_are_omitted_like_go():
    spec = api.validate(_doc("GlobalNetworkPolicy", {"doNotTrack": False, "preDNAT": False,
                                                     "applyOnForward": True})).to_dict()["spec"]
    assert "doNotTrack" not in spec and "preDNAT" not in spec and spec["applyOnForward"] is True


# ---- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, name", [
    ("NetworkPolicy", "allow-dns"),
    ("NetworkPolicy", "default.allow-dns"),      # kept as written, not stripped
    ("NetworkPolicy", "security.allow-dns"),     # no tier check on the prefix (Calico #11232)
    ("NetworkPolicy", "knp.default.allow.all.v2"),
    ("NetworkPolicy", "ossg.default.0f5d-11aa"),
    ("GlobalNetworkPolicy", "allow-dns"),
    ("GlobalNetworkPolicy", "security.allow-dns"),
    ("StagedNetworkPolicy", "x.y"),
    ("StagedGlobalNetworkPolicy", "x"),
])
def test_valid_policy_names_are_kept_as_written(kind, name):
    assert api.validate(_doc(kind, {"tier": "other"}, name=name)).name == name


@pytest.mark.parametrize("kind, name", [
    ("NetworkPolicy", "a.b.c"),
    ("NetworkPolicy", "Allow"),
    ("NetworkPolicy", "allow_dns"),
    ("NetworkPolicy", "-allow"),
    ("GlobalNetworkPolicy", "knp.default.x"),
    ("GlobalNetworkPolicy", "a.b.c"),
    ("StagedGlobalNetworkPolicy", "a.b.c"),
    ("Tier", "sec.urity"),
    ("Tier", "x" * 64),
])
def test_invalid_policy_names(kind, name):
    err = _error(_doc(kind, {}, name=name))
    assert err.path == "metadata.name" and f"is not a valid {kind} name" in err.reason


def test_policy_name_too_long():
    name = "knp.default." + ".".join(["a" * 60] * 5)
    err = _error(_doc("NetworkPolicy", {}, name=name))
    assert "at most 253" in err.reason


# ---- spec-level checks ---------------------------------------------------------------------

SVC = {"services": {"name": "kube-dns", "namespace": "kube-system"}}
INVALID_SPECS = [
    ("NetworkPolicy", {"selector": "a =="}, "spec.selector", "is not a valid selector"),
    ("NetworkPolicy", {"selector": "global()"}, "spec.selector", "global() can only be used"),
    ("NetworkPolicy", {"serviceAccountSelector": "has(a) && global()"},
     "spec.serviceAccountSelector", "global() can only be used"),
    ("GlobalNetworkPolicy", {"namespaceSelector": "global()"},
     "spec.namespaceSelector", "global() can only be used"),
    ("NetworkPolicy", {"namespaceSelector": "all()"}, "spec.namespaceSelector",
     "is not a known field"),
    ("NetworkPolicy", {"doNotTrack": True}, "spec.doNotTrack", "is not a known field"),
    ("NetworkPolicy", {"types": ["Ingress", "Ingress"]}, "spec.types[1]",
     '"Ingress" is listed more than once'),
    ("NetworkPolicy", {"types": ["ingress"]}, "spec.types[0]",
     '"ingress" is not a valid policy type (Ingress, Egress)'),
    ("NetworkPolicy", {"performanceHints": ["Fast"]}, "spec.performanceHints[0]",
     "is not a valid performance hint (AssumeNeededOnEveryNode)"),
    ("NetworkPolicy", {"performanceHints": ["AssumeNeededOnEveryNode"] * 2},
     "spec.performanceHints[1]", "is listed more than once"),
    ("NetworkPolicy", {"tier": "Bad_Tier"}, "spec.tier", "is not a valid name"),
    ("NetworkPolicy", {"ingress": [{"action": "Allow", "destination": SVC}]},
     "spec.ingress[0].destination.services", "is not allowed in an ingress rule destination"),
    ("NetworkPolicy", {"egress": [ALLOW, {"action": "Allow", "source": SVC}]},
     "spec.egress[1].source.services", "is not allowed in an egress rule source"),
    ("NetworkPolicy", {"egress": [{"action": "Allow", "http": {"methods": ["GET"]}}]},
     "spec.egress[0].http", "is not allowed in egress rules"),
    ("GlobalNetworkPolicy", {"egress": [{"action": "Allow",
                                         "destination": {"services": {"name": "dns"}}}]},
     "spec.egress[0].destination.services", "must name a namespace in a global policy"),
    ("GlobalNetworkPolicy", {"ingress": [{"action": "Allow",
                                          "source": {"services": {"name": "dns"}}}]},
     "spec.ingress[0].source.services", "must name a namespace in a global policy"),
    ("GlobalNetworkPolicy", {"ingress": [{"action": "Allow", "destination": {"ports": [80]},
                                          "protocol": "TCP"}] * 1025},
     "spec.ingress", "has too many rules (1025, at most 1024)"),
    # preDNAT / doNotTrack / applyOnForward (validateGlobalNetworkPolicySpec, CRD CEL rules)
    ("GlobalNetworkPolicy", {"preDNAT": True, "doNotTrack": True, "applyOnForward": True},
     "spec.preDNAT", "cannot be combined with doNotTrack"),
    ("GlobalNetworkPolicy", {"preDNAT": True, "applyOnForward": True, "egress": [ALLOW]},
     "spec.egress", "is not allowed in a preDNAT policy"),
    ("GlobalNetworkPolicy", {"preDNAT": True, "applyOnForward": True, "types": ["Egress"]},
     "spec.types", "no Egress type"),
    ("GlobalNetworkPolicy", {"preDNAT": True, "ingress": [ALLOW]},
     "spec.applyOnForward", "false must be true when doNotTrack or preDNAT is true"),
    ("GlobalNetworkPolicy", {"doNotTrack": True, "applyOnForward": False},
     "spec.applyOnForward", "must be true"),
    ("GlobalNetworkPolicy", {"doNotTrack": "yes", "applyOnForward": True},
     "spec.doNotTrack", "is not a boolean"),
    # staged policies
    ("StagedNetworkPolicy", {"stagedAction": "Remove"}, "spec.stagedAction",
     "is not a valid stagedAction (Set, Delete, Learn, Ignore)"),
    ("StagedNetworkPolicy", {"stagedAction": "Delete", "selector": "all()"}, "spec.selector",
     "must be empty when stagedAction is Delete"),
    ("StagedGlobalNetworkPolicy", {"stagedAction": "Delete", "order": 1}, "spec.order",
     "must be empty when stagedAction is Delete"),
    ("StagedGlobalNetworkPolicy", {"preDNAT": True}, "spec.applyOnForward", "must be true"),
    ("StagedNetworkPolicy", {"egress": [{"action": "Allow", "source": SVC}]},
     "spec.egress[0].source.services", "is not allowed in an egress rule source"),
    # tiers
    ("Tier", {"order": 5}, "spec.order", "must be 1000000 for the default tier"),
    ("Tier", {"defaultAction": "Allow"}, "spec.defaultAction",
     "is not a valid defaultAction (Deny or Pass)"),
]


@pytest.mark.parametrize("kind, spec, path, reason", INVALID_SPECS)
def test_invalid_specs_name_exact_field(kind, spec, path, reason):
    name = "default" if kind == "Tier" and "order" in spec else "p1"
    err = _error(_doc(kind, spec, name=name))
    assert (err.kind, err.name, err.path) == (kind, name, path), str(err)
    assert reason in err.reason, str(err)


def test_services_in_the_right_places_are_valid():
    spec = {"ingress": [{"action": "Allow", "source": SVC}],
            "egress": [{"action": "Allow", "destination": {"services": {"name": "dns"}}}]}
    api.validate(_doc("NetworkPolicy", spec))   # namespace optional in a namespaced policy
    api.validate(_doc("GlobalNetworkPolicy", {"ingress": [{"action": "Allow", "source": SVC}]}))


def test_prednat_and_donottrack_policies():
    gnp = api.validate(_doc("GlobalNetworkPolicy", {"preDNAT": True, "applyOnForward": True,
                                                    "ingress": [ALLOW]}))
    assert gnp.spec.types == ["Ingress"]
    api.validate(_doc("GlobalNetworkPolicy", {"doNotTrack": True, "applyOnForward": True,
                                              "ingress": [ALLOW], "egress": [ALLOW]}))


def test_staged_delete_keeps_types_unset():
    staged = api.validate(_doc("StagedNetworkPolicy", {"stagedAction": "Delete"}))
    assert staged.spec.types is None and staged.spec.tier == "default"
    staged = api.validate(_doc("StagedNetworkPolicy", {"egress": [ALLOW]}))
    assert staged.spec.types == ["Egress"]


def test_tiers():
    tier = api.validate(_doc("Tier", {"order": 300}, name="security"))
    assert tier.to_dict()["spec"] == {"order": 300, "defaultAction": "Deny"}
    assert api.validate(_doc("Tier", {"order": 1000000}, name="default")).spec.order == 1e6
    assert api.validate(_doc("Tier", {"order": 1000}, name="kube-admin"))
    assert api.validate(_doc("Tier", {}, name="last")).spec.order is None


# ---- round trip ----------------------------------------------------------------------------

FULL_GNP = _doc("GlobalNetworkPolicy", {
    "tier": "security", "order": 10, "selector": "role == 'db'",
    "namespaceSelector": "has(projectcalico.org/name)", "serviceAccountSelector": "app == 'x'",
    "types": ["Ingress", "Egress"], "performanceHints": ["AssumeNeededOnEveryNode"],
    "ingress": [{"action": "Allow", "protocol": "TCP", "ipVersion": 4,
                 "metadata": {"annotations": {"why": "db access"}},
                 "source": {"selector": "role == 'web'", "nets": ["10.0.0.0/8"],
                            "notNets": ["10.1.0.0/16"], "notSelector": "has(bad)",
                            "namespaceSelector": "global()",
                            "serviceAccounts": {"names": ["web"], "selector": "a == 'b'"}},
                 "destination": {"ports": [5432, "6000:6010", "pg"], "notPorts": [5433]},
                 "http": {"methods": ["GET"], "paths": [{"exact": "/x"}]}},
                {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 0},
                 "notICMP": {"type": 3}, "notProtocol": 17},
                {"action": "Allow", "source": {"services": {"name": "web", "namespace": "n"}}}],
    "egress": [{"action": "Log"}, {"action": "Pass", "destination": {"selector": "all()"}}],
    "doNotTrack": True, "applyOnForward": True,
}, name="security.db")


@pytest.mark.parametrize("doc", [
    FULL_GNP,
    _doc("NetworkPolicy", {"selector": "a == 'b'", "egress": [ALLOW]}, namespace="prod"),
    _doc("StagedNetworkPolicy", {"stagedAction": "Learn", "ingress": [ALLOW]}),
    _doc("StagedGlobalNetworkPolicy", {"stagedAction": "Delete", "tier": "x"}),
    _doc("Tier", {"order": 100.25, "defaultAction": "Pass"}, name="platform"),
])
def test_round_trip(doc):
    first = api.validate(doc)
    dumped = first.to_dict()
    again = api.validate(dumped)
    assert again == first and again.to_dict() == dumped
    assert api.load(api.dump_yaml([first])) == [first]
    assert api.load(api.dump_json([first])) == [first]


def test_to_dict_is_calicos_json_form():
    out = api.validate(FULL_GNP).to_dict()
    assert out["apiVersion"] == "projectcalico.org/v3" and out["kind"] == "GlobalNetworkPolicy"
    spec = out["spec"]
    assert spec["order"] == 10 and spec["tier"] == "security"
    assert spec["ingress"][0]["destination"] == {"ports": [5432, "6000:6010", "pg"],
                                                 "notPorts": [5433]}
    assert spec["ingress"][1]["notProtocol"] == 17
    assert "preDNAT" not in spec


def test_models_are_importable_types():
    assert isinstance(api.validate(_doc("NetworkPolicy", {})), NetworkPolicy)
    assert isinstance(api.validate(_doc("GlobalNetworkPolicy", {})), GlobalNetworkPolicy)
    assert api.KINDS["Tier"].PLURAL == "tiers"
