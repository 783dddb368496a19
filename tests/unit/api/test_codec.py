"""Manifest decoding: libyaml with Calico's scalar rules, and refusal of alias bombs."""

import resource

import pytest

from calico import api
from calico.api import codec

BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip([None, *"abcdefgh"], "abcdefghi", strict=True))


def test_the_loader_is_libyaml_with_calicos_resolvers():
    assert issubclass(codec._Loader, api.codec.yaml.CSafeLoader)
    docs = api.parse_documents("a: 80:90\nb: 2024-01-02T03:04:05Z\nc: 0x10\nd: 1.5\n")
    assert docs == [{"a": "80:90", "b": "2024-01-02T03:04:05Z", "c": 16, "d": 1.5}]


def test_an_alias_bomb_is_refused_at_once_with_bounded_memory():
    assert len(BOMB) < 600  # nine levels of nine: 387,420,489 values when expanded
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(api.ManifestError) as err:
        api.parse_documents(BOMB, "bomb.yaml")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert str(err.value).startswith("bomb.yaml: refused: its aliases expand")
    assert "excessive aliasing" in str(err.value)
    assert grown_kib < 50_000


def test_aliases_that_expand_modestly_still_load():
    text = "base: &b {a: 1, b: 2}\nitems: [*b, *b, *b]\n"
    assert api.parse_documents(text) == [{"base": {"a": 1, "b": 2}, "items": [{"a": 1, "b": 2}] * 3}]


def test_a_self_referencing_alias_is_refused():
    with pytest.raises(api.ManifestError, match="excessive aliasing"):
        api.parse_documents("a: &a [*a]\n")


def test_network_set_nets_are_checked_once_each_with_the_index_named():
    body = {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
            "metadata": {"name": "s"}, "spec": {"nets": ["10.0.0.1", "fd00::/64", "10.1.0.0/33"]}}
    with pytest.raises(api.ValidationError) as err:
        api.validate(body)
    assert str(err.value) == ('GlobalNetworkSet "s": spec.nets[2]: "10.1.0.0/33" is not a '
                              'valid CIDR')
    body["spec"]["nets"] = ["10.0.0.1", "10.0.0.5/24", "fd00::/64", "0.0.0.0/0"]
    assert api.validate(body).spec.nets == body["spec"]["nets"]
    for bad in ["010.0.0.1", "10.0.0.256", "10.0.0.1/", 7, ""]:
        body["spec"]["nets"] = [bad]
        with pytest.raises(api.ValidationError, match=r"spec\.nets\[0\]"):
            api.validate(body)


def test_dump_is_libyaml_and_round_trips():
    res = api.validate({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
                        "metadata": {"name": "p"},
                        "spec": {"ingress": [{"action": "Allow", "protocol": "TCP",
                                              "destination": {"ports": ["80:90", 443]}}]}})
    text = api.dump_yaml([res])
    assert api.load(text) == [res]


def test_a_key_twice_in_one_mapping_is_refused_as_calicos_strict_decoder_does():
    with pytest.raises(api.ManifestError) as err:
        api.parse_documents("kind: GlobalNetworkPolicy\nspec:\n  order: 1\n  order: 2\n",
                            "p.yaml")
    assert str(err.value) == ('p.yaml: invalid YAML/JSON at line 4, column 3: key "order" '
                              'already set in map')
    with pytest.raises(api.ManifestError, match='key "a" already set'):
        api.parse_documents('{"a": 1, "a": 2}')
    merged = api.parse_documents("base: &b {x: 1, y: 1}\nitem:\n  <<: *b\n  x: 2\n")
    assert merged[0]["item"] == {"x": 2, "y": 1}  # a merge key may still be overridden
