"""Bad inputs the generated tests found, pinned: each once gave a traceback, a stored value
other tools cannot read, or an error message that was not one readable line."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from calico import api
from calico.datastore.client import decode, kind_prefix
from calico.datastore.errors import CorruptResource
from calico.datastore.local import LocalBackend
from calico.datastore.syncer import Syncer, SyncStatus
from tests.fixtures.calicoctl import calicoctl

V3 = "projectcalico.org/v3"
DEEP = "[" * 100_000 + "]" * 100_000


def gnp(name="p", **spec):
    return {"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": name},
            "spec": {"selector": "all()", **spec}}


@pytest.mark.parametrize("order", [10**400, -(10**400), float("nan"), float("inf")])
def test_order_must_be_a_finite_float64(order):
    # Was: OverflowError (a traceback in calicoctl) for 10**400; NaN and infinity accepted and
    # stored as `NaN` / `Infinity`, which is not JSON.
    with pytest.raises(api.ValidationError, match=r'GlobalNetworkPolicy "p": spec.order: '):
        api.validate(gnp(order=order))


@pytest.mark.parametrize("peer_ip", ["1" * 5000, "1" * 3000 + ":1", "9" * 64 + ":179"])
def test_a_long_run_of_digits_as_peer_ip_is_rejected_at_once(peer_ip):
    # Was: Calico's unescaped `(\d+).(\d+).(\d+).(\d+):(\d+)` backtracked for ever on it,
    # and a syncer thread decoding such a stored BGPPeer never reached in-sync.
    doc = {"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": "p"},
           "spec": {"peerIP": peer_ip, "asNumber": 64512}}
    with pytest.raises(api.ValidationError, match="peerIP"):
        api.validate(doc)


def test_a_huge_or_multiline_name_gives_a_short_single_line():
    # Was: the whole 1 MB name, and raw newlines, in the message.
    for name in ["a" * 1_000_000, "bad\nname", "bad\u2028name"]:
        with pytest.raises(api.ValidationError) as err:
            api.validate(gnp(name=name))
        assert len(str(err.value).splitlines()) == 1 and len(str(err.value)) < 400
        assert "metadata.name" in str(err.value)


def test_unknown_keys_are_named_on_one_line():
    for key in ["x-a\nb", "x-a\rb", "x-" + "k" * 10_000, "x-unknown-[", "x-[0"]:
        doc = gnp()
        doc["spec"][key] = 1
        with pytest.raises(api.ValidationError) as err:
            api.validate(doc)
        msg = str(err.value)
        assert len(msg.splitlines()) == 1 and len(msg) < 400, msg
        assert err.value.path.startswith("spec.") and "is not a known field" in msg, msg


@pytest.mark.parametrize("text", ['{"kind": "\x7f"}', "a: [\n b", "\t- x"])
def test_manifest_syntax_errors_are_one_line(text):
    # Was: PyYAML's reader error went out with its "\n  in <unicode string>" line.
    with pytest.raises(api.ManifestError) as err:
        api.parse_documents(text)
    assert len(str(err.value).splitlines()) == 1, str(err.value)


def test_deeply_nested_manifest_is_a_clear_error():
    with pytest.raises(api.ManifestError, match="nested too deeply"):
        api.parse_documents(DEEP)


@pytest.mark.parametrize("text", [
    DEEP,
    "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"
    "spec: {order: 1" + "0" * 400 + "}\n",
    "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"
    "spec: {order: .nan}\n",
    # Was: TypeError (unhashable list) while printing the summary line.
    "apiVersion: projectcalico.org/v3\nkind: [IPPool]\nmetadata: {name: p}\n",
    "apiVersion: projectcalico.org/v3\nkind: {a: b}\nmetadata: {name: p}\n",
    # Was: the raw kind / name (with a carriage return) in calicoctl's failure lines.
    'apiVersion: projectcalico.org/v3\nkind: "\\r"\nmetadata: {name: p}\n',
    'apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: "a\\rb"}\n',
])
def test_calicoctl_rejects_without_a_traceback(tmp_path, text):
    env = {"DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": str(tmp_path / "c.db")}
    proc = calicoctl(["apply", "-f", "-"], env, input=text)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("Failed to"), proc.stderr
    # One line for the document, then Calico's summary line ("failed to apply ...").
    assert all(line.startswith(("Failed to", "failed to apply"))
               for line in proc.stderr.splitlines()), proc.stderr
    backend = LocalBackend(str(tmp_path / "c.db"))
    assert backend.list("/calico/")[0] == []
    backend.close()


def test_deeply_nested_stored_value_is_corrupt_not_a_crash():
    key = kind_prefix("GlobalNetworkPolicy") + "p"
    with pytest.raises(CorruptResource):
        decode(key, DEEP, 1)


def test_syncer_skips_deeply_nested_values_and_carries_on(tmp_path, caplog):
    # Was: RecursionError escaped the parser and stopped the syncer thread.
    backend = LocalBackend(str(tmp_path / "c.db"))
    pool_key = kind_prefix("GlobalNetworkPolicy") + "deep"
    backend.put(pool_key, DEEP)
    backend.put("/calico/other/deep", DEEP)
    good = kind_prefix("GlobalNetworkPolicy") + "p"
    backend.put(good, json.dumps(gnp()))
    got, in_sync = {}, threading.Event()

    class Callbacks:
        def on_status(self, status):
            if status is SyncStatus.IN_SYNC:
                in_sync.set()

        def on_updates(self, updates):
            got.update({u.key: u.value for u in updates})

    with caplog.at_level(logging.WARNING):
        syncer = Syncer(backend, ["GlobalNetworkPolicy", "/calico/other/"], Callbacks()).start()
        try:
            assert in_sync.wait(5)
            assert list(got) == [good]
            assert pool_key in caplog.text and "/calico/other/deep" in caplog.text
            assert syncer._thread.is_alive()
        finally:
            syncer.stop()
            backend.close()
