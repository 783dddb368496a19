"""The resource base: error messages, document parsing, the YAML loader's Calico-safe rules."""

import pytest

from calico import api
from calico.api.base import CalicoModel, Resource


class _Spec(CalicoModel):
    size: int | None = None


class _Thing(Resource, kind="TestThing", plural="testthings"):
    spec: _Spec = _Spec()


def _doc(**spec):
    return {"apiVersion": "projectcalico.org/v3", "kind": "TestThing",
            "metadata": {"name": "t1"}, "spec": spec}


def test_error_names_kind_name_field_and_value():
    with pytest.raises(api.ValidationError) as err:
        api.validate(_doc(size="big"))
    assert str(err.value) == 'TestThing "t1": spec.size: "big" is not an integer'


def test_unknown_field_rejected():
    with pytest.raises(api.ValidationError, match=r"spec.colour: is not a known field"):
        api.validate(_doc(colour="red"))


def test_wrong_api_version_and_kind():
    with pytest.raises(api.ValidationError, match="apiVersion"):
        api.validate({**_doc(), "apiVersion": "v1"})
    with pytest.raises(api.ValidationError, match='"Nope" is not a known'):
        api.validate({**_doc(), "kind": "Nope"})


def test_bad_name_and_labels():
    bad = _doc()
    bad["metadata"] = {"name": "Upper_Case"}
    with pytest.raises(api.ValidationError, match=r"metadata.name: \"Upper_Case\" is not a valid"):
        api.validate(bad)
    bad["metadata"] = {"name": "ok", "labels": {"k": "bad value!"}}
    with pytest.raises(api.ValidationError, match=r"metadata.labels.k: \"bad value!\""):
        api.validate(bad)


def test_to_dict_omits_unset():
    assert api.validate(_doc()).to_dict() == {
        "apiVersion": "projectcalico.org/v3", "kind": "TestThing",
        "metadata": {"name": "t1"}, "spec": {}}


def test_yaml_keeps_port_ranges_and_timestamps_as_strings():
    docs = api.parse_documents("a: 80:90\nb: 2024-01-02T03:04:05Z\nc: 8080\nd: 1.5\n")
    assert docs == [{"a": "80:90", "b": "2024-01-02T03:04:05Z", "c": 8080, "d": 1.5}]


def test_list_kinds_expand():
    text = """
apiVersion: projectcalico.org/v3
kind: TestThingList
items:
- metadata: {name: a}
- metadata: {name: b}
---
kind: List
apiVersion: projectcalico.org/v3
items:
- {apiVersion: projectcalico.org/v3, kind: TestThing, metadata: {name: c}}
"""
    names = [r.name for r in api.load(text)]
    assert names == ["a", "b", "c"]


def test_syntax_error_is_one_line():
    with pytest.raises(api.ManifestError, match="invalid YAML/JSON at line 2"):
        api.parse_documents("a: b\n  c: : d\n")


def test_annotation_keys_are_checked_lower_cased_as_kubernetes_does():
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
           "metadata": {"name": "s", "annotations": {"Example.COM/Owner": "x", "Rev": "1"}}}
    assert api.validate(doc).metadata.annotations["Example.COM/Owner"] == "x"
    doc["metadata"]["labels"] = {"Example.COM/Owner": "x"}
    with pytest.raises(api.ValidationError, match="label key"):
        api.validate(doc)
