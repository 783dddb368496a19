"""Documents read as Calico's Go decoder reads them (calico.api.decode)."""

import pytest

from calico import api
from calico.api.decode import go_text

WEP = """\
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-pod1-eth0
  namespace: prod
  labels: {version: 1, canary: yes, ratio: 0.5}
  annotations: {rev: 2}
  selfLink: /apis/projectcalico.org/v3/workloadendpoints/x
  generation: 4
  finalizers: [example.com/keep]
spec:
  node: node1
  orchestrator: k8s
  pod: pod1
  endpoint: eth0
  containerID: 1234567
  interfaceName: cali1234
  ipNetworks: [10.0.0.1/32]
"""


def test_field_names_match_without_regard_to_case():
    doc = api.parse_documents("""
APIVersion: projectcalico.org/v3
Kind: GlobalNetworkPolicy
Metadata: {Name: p}
spec:
  Order: 10000
  ingress:
  - ACTION: Allow
    protocol: TCP
    Destination: {ports: [80]}
""")[0]
    res = api.validate(doc)
    assert res.name == "p" and res.spec.order == 10000
    assert res.spec.ingress[0].destination.ports == [80]


def test_exact_names_win_and_keys_of_maps_are_kept():
    res = api.validate({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                        "metadata": {"name": "p", "labels": {"Order": "x"}},
                        "spec": {"Order": 1}})
    assert res.spec.order == 1 and res.metadata.labels["Order"] == "x"


def test_numbers_and_booleans_in_string_fields_are_their_text():
    res = api.load(WEP)[0]
    labels = res.metadata.labels
    assert (labels["version"], labels["canary"], labels["ratio"]) == ("1", "true", "0.5")
    assert res.metadata.annotations == {"rev": "2"}
    assert res.spec.containerID == "1234567"


def test_metadata_calico_does_not_keep_is_dropped():
    meta = api.load(WEP)[0].to_dict()["metadata"]
    assert not {"selfLink", "generation", "finalizers"} & meta.keys()
    res = api.validate({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                        "metadata": {"name": "p", "SelfLink": "/x"},
                        "spec": {"cidr": "10.0.0.0/16"}})
    assert "selfLink" not in res.to_dict()["metadata"]


def test_a_number_where_a_number_or_string_is_allowed_stays_a_number():
    res = api.validate({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                        "metadata": {"name": "p", "labels": {"v": 1}},
                        "spec": {"ingress": [{"action": "Allow", "protocol": "TCP",
                                              "destination": {"ports": [80, "81:82"]}}]}})
    assert res.spec.ingress[0].destination.ports == [80, "81:82"]


def test_what_is_still_wrong_is_named_after_conforming():
    with pytest.raises(api.ValidationError) as err:
        api.validate({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                      "metadata": {"name": "p", "labels": {"v": 1}},
                      "spec": {"Order": "high"}})
    assert str(err.value) == 'GlobalNetworkPolicy "p": spec.order: "high" is not a number'
    with pytest.raises(api.ValidationError, match=r'spec.selectr: is not a known field'):
        api.validate({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                      "metadata": {"name": "p"}, "spec": {"selectr": "all()"}})


@pytest.mark.parametrize("value, text", [
    (True, "true"), (False, "false"), (7, "7"), (-3, "-3"), (1.0, "1"), (1.5, "1.5"),
    (100000.0, "100000"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (0.0001, "0.0001"),
    (0.00001, "1e-05"), (-2.5, "-2.5"), ("x", "x"), (None, None),
])
def test_go_text(value, text):
    assert go_text(value) == text
