"""Bad input, hypothesis-generated from the valid fixture manifests (see mutations.py).

(a) Through `calico.api.validate` and `calicoctl apply -f -` (in process for the bulk, as a
    subprocess for a sample): an invalid document is rejected with one line naming its kind,
    name and the field to blame, exit code 1, no traceback, and nothing of it is written; a
    valid one is stored exactly as validated.
(b) Junk written straight at resource keys (as a buggy orchestrator would): the syncer, Felix's
    calc graph and the BGP daemon's renderer skip each invalid value with a log line naming
    its key, and still serve every valid resource.

Sizes: VALIDATE_EXAMPLES + CTL_EXAMPLES + SUBPROCESS_EXAMPLES + the junk values of (b) make
the 10,000+ inputs of the issue in about a minute of CI.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from calico import api
from calico.bgp.daemon import BGPDaemon, SecretStore
from calico.ctl.guards import check_write
from calico.datastore import DatastoreConfig, connect
from calico.datastore.builtins import CLUSTER_INFO_KEY, DEFAULT_ALLOW_PROFILE
from calico.datastore.client import ResourceClient, decode, encode, kind_prefix, storage_key
from calico.datastore.errors import OperationNotSupported
from calico.datastore.kv import Backend, Delete
from calico.datastore.local import LocalBackend
from calico.datastore.syncer import Syncer, SyncStatus
from calico.felix import messages as m
from calico.felix.calc import CalcGraph
from calico.felix.daemon import SYNC_KINDS
from tests.faults.conftest import add_figure
from tests.faults.mutations import MUST_REJECT, Mutant, format_path, mutants
from tests.fixtures.calicoctl import calicoctl

VALIDATE_EXAMPLES = int(os.environ.get("FAULTS_VALIDATE", 7000))
CTL_EXAMPLES = int(os.environ.get("FAULTS_CTL", 3000))
SUBPROCESS_EXAMPLES = 12
JUNK_EXAMPLES = int(os.environ.get("FAULTS_JUNK", 8))  # pipelines per backend, each with 45-115 junk values

BULK = settings(deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
CTL = ["apply", "-c", "/nonexistent/calicoctl.cfg", "-f", "-"]
VOLATILE_META = ("uid", "creationTimestamp", "resourceVersion")


# ---- what a good rejection looks like ------------------------------------------------------


def check_rejection(err: api.ValidationError, doc: dict[str, Any], mutant: Mutant) -> None:
    """One short line naming the kind, the name and the field to blame."""
    msg = str(err)
    assert len(msg.splitlines()) == 1, f"{mutant.describe()}: not one line: {msg!r}"
    assert len(msg) <= 1024, f"{mutant.describe()}: a {len(msg)}-character message"
    assert err.path and err.path in msg, f"{mutant.describe()}: names no field: {msg}"
    kind = doc.get("kind")
    if isinstance(kind, str) and kind in api.KINDS:
        assert msg.startswith(kind), f"{mutant.describe()}: does not name {kind}: {msg}"
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(name, str) and name.isprintable() and 0 < len(name) <= 253:
        assert f'"{name}"' in msg, f"{mutant.describe()}: does not name {name!r}: {msg}"
    assert blames_the_mutation(err, mutant), f"{mutant.describe()}: blames {err.path}: {msg}"


CROSS_REFERENCES = [("spec.communities", "spec.prefixAdvertisements")]


def blames_the_mutation(err: api.ValidationError, mutant: Mutant) -> bool:
    """The blamed field is the changed one, one of its parents, or a sibling (a cross-field
    rule such as "ports need a protocol")."""
    changed, parent = format_path(mutant.path), format_path(mutant.path[:-1])
    if changed.startswith(err.path) or err.path.startswith(parent):
        return True
    # Some rules tie the name and the spec: a WorkloadEndpoint's name encodes its node, pod
    # and interface; only the BGPConfiguration "default" may set the cluster-wide fields.
    if mutant.path == ("metadata", "name"):
        return True
    # Fields that refer to each other by name (a community must be defined and used).
    for a, b in CROSS_REFERENCES + [(b, a) for a, b in CROSS_REFERENCES]:
        if changed.startswith(a) and err.path.startswith(b):
            return True
    return err.path == "metadata.name" and mutant.source.get("kind") == "WorkloadEndpoint"


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in data.get("metadata", {}).items() if k not in VOLATILE_META}
    return {**data, "metadata": meta}


# ---- (a) validate ------------------------------------------------------------------------------


@settings(BULK, max_examples=VALIDATE_EXAMPLES)
@given(mutants())
def test_validate_rejects_with_one_line_naming_the_field(mutant):
    add_figure("validate: mutants tried", 1)
    try:
        res = api.validate(mutant.doc)
    except api.ValidationError as err:
        add_figure("validate: mutants rejected", 1)
        check_rejection(err, mutant.doc, mutant)
        return
    assert not (mutant.op in MUST_REJECT and not mutant.under_freeform), (
        f"{mutant.describe()}: accepted")
    # What validate returns is what gets stored: it must validate again, unchanged.
    again = api.validate(res.to_dict())
    assert again.to_dict() == res.to_dict(), mutant.describe()


# ---- (a) calicoctl apply, in process and as a subprocess --------------------------------------


def as_text(doc: dict[str, Any], as_json: bool) -> str:
    if as_json:
        try:
            return json.dumps(doc, ensure_ascii=False, allow_nan=False)
        except ValueError:
            pass  # NaN / infinity: YAML has them
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


class Store:
    """A local datastore file that calicoctl writes and the test reads and empties."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.env = {"DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": path}
        self.backend = LocalBackend(path)

    def items(self) -> dict[str, Any]:
        """What calicoctl wrote, less the ClusterInformation every first write creates."""
        kvs, _ = self.backend.list("/calico/")
        return {kv.key: kv for kv in kvs if kv.key != CLUSTER_INFO_KEY}

    def clear(self) -> None:
        kvs, _ = self.backend.list("/calico/")
        if kvs:
            self.backend.txn([], [Delete(kv.key) for kv in kvs])



@pytest.fixture(scope="module")
def store():
    with tempfile.TemporaryDirectory(prefix="calico-faults-") as tmp:
        s = Store(os.path.join(tmp, "calico.db"))
        yield s
        s.backend.close()


# calico/datastore/ipamkinds.py requires a BlockAffinity's name to be "<node>-<cidr>";
# calico.api.validate does not check it, so validate accepts what the store then refuses.
# A WorkloadEndpoint's name is checked against its spec by the client when it writes, not by
# validate: as in Calico (its validator accepts an endpoint without node; its client does not).
STORE_RULES = {"BlockAffinity", "WorkloadEndpoint"}


def refused_by_calicoctl(res: Any) -> bool:
    """calicoctl/guards.py's rules, and the built-in profile changed (calico/datastore)."""
    try:
        check_write("apply", res.KIND, res.name, res.namespace)
    except OperationNotSupported:
        return True
    return res.KIND == "Profile" and res.name == DEFAULT_ALLOW_PROFILE


def check_apply(mutant: Mutant, text: str, exit_code: int, stdout: str, stderr: str,
                store: Store) -> None:
    """calicoctl's answer to `text` agrees with validate, and the store with both."""
    assert "Traceback" not in stdout + stderr, f"{mutant.describe()}:\n{stderr}"
    stored = store.items()
    try:
        docs = api.parse_documents(text, "stdin")
        assert len(docs) == 1, mutant.describe()
        expected = api.validate(docs[0])
    except (api.ValidationError, api.ManifestError) as err:
        add_figure("calicoctl: mutants rejected", 1)
        assert exit_code == 1, f"{mutant.describe()}: exit {exit_code}: {stdout}{stderr}"
        # A document that does not parse fails the whole input ("Failed to execute
        # command"); one that parses but is invalid fails alone ("Failed to apply").
        first = stderr.splitlines()[0] if stderr else ""
        opening = "Failed to execute command: " if isinstance(err, api.ManifestError) \
            else "Failed to apply "
        assert len(str(err).splitlines()) == 1 and first.startswith(opening) \
            and str(err) in first, f"{mutant.describe()}: expected {err}, got {stderr!r}"
        assert stored == {}, f"{mutant.describe()}: rejected but wrote {list(stored)}"
        return
    if refused_by_calicoctl(expected):
        # Calico's calicoctl refuses these before writing ("... is not supported on ...").
        add_figure("calicoctl: valid, refused as Calico's calicoctl refuses it", 1)
        assert exit_code == 1 and "is not supported on" in stderr, stderr
        assert stored == {}, f"{mutant.describe()}: refused but wrote {list(stored)}"
        return
    if exit_code == 1 and expected.KIND in STORE_RULES:
        # A rule the datastore enforces but validate does not (reported as a bug): it must
        # still be one clean line, and nothing written.
        add_figure(f"calicoctl: valid to validate, refused by the store ({expected.KIND})", 1)
        assert len(stderr.splitlines()) == 2 and stderr.startswith("Failed to apply"), stderr
        assert stored == {}, f"{mutant.describe()}: refused but wrote {list(stored)}"
        return
    assert exit_code == 0, f"{mutant.describe()}: valid but exit {exit_code}: {stderr}"
    key = storage_key(expected)
    assert list(stored) == [key], f"{mutant.describe()}: wrote {list(stored)}, not {key}"
    kv = stored[key]
    got = decode(key, kv.value, kv.mod_revision).to_dict()
    # Through the store's codec (IPAM's kinds are kept in IPAM's own form, defaults filled).
    want = decode(key, encode(expected), kv.mod_revision).to_dict()
    assert comparable(got) == comparable(want), mutant.describe()
    store.clear()


@settings(BULK, max_examples=CTL_EXAMPLES)
@given(mutants(huge_max=65_537), st.booleans())
def test_calicoctl_apply_in_process(store, mutant, as_json):
    add_figure("calicoctl: mutants tried", 1)
    store.clear()
    text = as_text(mutant.doc, as_json)
    result = CliRunner().invoke(_cli(), CTL, input=text, env=store.env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{mutant.describe()}: {result.exception!r}")
    check_apply(mutant, text, result.exit_code, result.stdout, result.stderr, store)


@settings(BULK, max_examples=SUBPROCESS_EXAMPLES)
@given(mutants(ops=("wrong_type", "out_of_range", "bad_cidr", "bad_selector", "unknown_field",
                    "unicode", "nesting", "missing"), huge_max=65_537), st.booleans())
def test_calicoctl_apply_subprocess(store, mutant, as_json):
    add_figure("calicoctl subprocess: mutants tried", 1)
    store.clear()
    text = as_text(mutant.doc, as_json)
    proc = calicoctl(CTL, store.env, input=text)
    check_apply(mutant, text, proc.returncode, proc.stdout, proc.stderr, store)


def _cli():
    from calico.ctl.main import _register_optional_groups, cli

    _register_optional_groups()
    return cli


# ---- (b) junk at resource keys, consumed by syncer + calc graph + BGP renderer ------------------

HOST = "hosta"
V3 = "projectcalico.org/v3"


def valid_resources() -> list[dict[str, Any]]:
    """A small, complete world for host node-a: nodes, pools, a peer, a policy, endpoints."""
    def res(kind, name, spec, namespace=None, labels=None):
        meta = {"name": name, **({"namespace": namespace} if namespace else {}),
                **({"labels": labels} if labels else {})}
        return {"apiVersion": V3, "kind": kind, "metadata": meta, "spec": spec}
    out = [
        res("Node", HOST, {"bgp": {"ipv4Address": "10.0.0.1/24", "ipv6Address": "fd00::1/64"}}),
        res("Node", "hostb", {"bgp": {"ipv4Address": "10.0.0.2/24"}}),
        res("IPPool", "pool-v4", {"cidr": "10.65.0.0/16"}),
        res("IPPool", "pool-v6", {"cidr": "fd10::/48"}),
        res("BGPPeer", "tor", {"peerIP": "10.0.0.254", "asNumber": 65001}),
        res("BGPConfiguration", "default", {"asNumber": 64512}),
        res("Profile", "kns.default", {"labelsToApply": {"team": "red"}}),
        res("GlobalNetworkPolicy", "allow-red", {
            "selector": "team == 'red'",
            "ingress": [{"action": "Allow", "source": {"selector": "team == 'red'"}}]}),
        res("NetworkPolicy", "allow-web", {
            "selector": "app == 'web'", "ingress": [{"action": "Allow", "protocol": "TCP",
                                                     "destination": {"ports": [80]}}]},
            namespace="default"),
        res("GlobalNetworkSet", "outside", {"nets": ["192.0.2.0/24"]}, labels={"ext": "y"}),
        res("HostEndpoint", "hosta-eth0", {"node": HOST, "interfaceName": "eth0",
                                            "expectedIPs": ["10.0.0.1"]}),
        res("FelixConfiguration", "default", {"logSeverityScreen": "Info"}),
    ]
    for i in range(3):
        out.append(res("WorkloadEndpoint", f"{HOST}-k8s-web{i}-eth0", {
            "orchestrator": "k8s", "node": HOST, "pod": f"web{i}", "endpoint": "eth0",
            "interfaceName": f"cali{i:011d}", "ipNetworks": [f"10.65.0.{i + 2}/32"],
            "profiles": ["kns.default"]}, namespace="default", labels={"app": "web"}))
    return out


def junk_key(kind: str, name: str, namespaced: bool) -> str:
    return kind_prefix(kind) + (f"default/{name}" if namespaced else name)


RAW_JUNK = ["", "not json", "{", "null", "[]", "42", '"a string"', "{}", "\u202e\u0000",
            "[" * 100_000 + "]" * 100_000,
            '{"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy", '
            '"metadata": {"name": "x"}, "spec": {"order": NaN}}']


@st.composite
def junk_values(draw: st.DrawFn, valid: list[dict[str, Any]], huge: int
                ) -> list[tuple[str, str]]:
    """(key, stored text) pairs: raw junk (one of `huge` characters), invalid resources, and
    valid resources stored at another resource's key; every key a real resource key that no
    valid resource uses."""
    out: dict[str, str] = {}
    for i, mutant in enumerate(draw(st.lists(mutants(valid, huge_max=65_537), min_size=40,
                                             max_size=100))):
        try:
            api.validate(mutant.doc)
            continue  # still valid: not junk
        except api.ValidationError:
            pass
        kind = mutant.source["kind"]
        out[junk_key(kind, f"junk-m{i}", api.KINDS[kind].NAMESPACED)] = json.dumps(mutant.doc)
    kinds = sorted({d["kind"] for d in valid})
    raw = RAW_JUNK + ["x" * huge]
    for i, text in enumerate(draw(st.lists(st.sampled_from(raw), min_size=5,
                                           max_size=len(raw), unique=True))):
        kind = draw(st.sampled_from(kinds))
        out[junk_key(kind, f"junk-r{i}", api.KINDS[kind].NAMESPACED)] = text
    for i, doc in enumerate(draw(st.lists(st.sampled_from(valid), min_size=5, max_size=20))):
        kind = draw(st.sampled_from(kinds))  # maybe the right plural, never the right name
        out[junk_key(kind, f"junk-w{i}", api.KINDS[kind].NAMESPACED)] = json.dumps(doc)
    return sorted(out.items())


class Consumer:
    """Felix's calc graph fed by a syncer, as calico-felix wires it (same kinds)."""

    def __init__(self, backend: Backend) -> None:
        self.graph = CalcGraph(HOST)
        self.lock = threading.Lock()
        self.in_sync = threading.Event()
        self.syncer = Syncer(backend, SYNC_KINDS, self, retry_delay=0.2)

    def on_status(self, status: SyncStatus) -> None:
        with self.lock:
            self.graph.on_status(status)
        if status is SyncStatus.IN_SYNC:
            self.in_sync.set()

    def on_updates(self, updates) -> None:
        with self.lock:
            for up in updates:
                self.graph.on_update(up.key, up.value)

    def flush(self) -> list[m.Message]:
        with self.lock:
            return self.graph.flush()


def served(messages: list[m.Message]) -> dict[str, set[str]]:
    """What the calc graph told the dataplane: endpoint, policy, profile and pool names."""
    out: dict[str, set[str]] = {"endpoints": set(), "policies": set(), "profiles": set(),
                                "pools": set(), "hosts": set()}
    for msg in messages:
        if isinstance(msg, m.WorkloadEndpointUpdate | m.HostEndpointUpdate):
            out["endpoints"].add(str(msg.id))
        elif isinstance(msg, m.ActivePolicyUpdate):
            out["policies"].add(str(msg.id))
        elif isinstance(msg, m.ActiveProfileUpdate):
            out["profiles"].add(str(msg.id))
        elif isinstance(msg, m.IPAMPoolUpdate):
            out["pools"].add(msg.id)
        elif isinstance(msg, m.HostMetadataUpdate):
            out["hosts"].add(msg.hostname)
    return out


def wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


EXPECTED = {
    "endpoints": {f"default/{HOST}-k8s-web{i}-eth0" for i in range(3)} | {"hosta-eth0"},
    "policies": {"allow-red", "default/allow-web"},
    "profiles": {"kns.default"},
    "pools": {"pool-v4", "pool-v6"},
    "hosts": {HOST, "hostb"},
}


@pytest.fixture(params=["local", "etcdv3"])
def junk_config(request, tmp_path_factory):
    if request.param == "local":
        return DatastoreConfig(type="local",
                               path=str(tmp_path_factory.mktemp("junk") / "calico.db"))
    server = request.getfixturevalue("module_etcd")
    return DatastoreConfig(type="etcdv3", etcd_endpoints=(server.endpoint,))


def test_junk_at_resource_keys_is_skipped_and_valid_data_still_served(junk_config, caplog,
                                                                      tmp_path):
    backend = connect(junk_config)
    client = ResourceClient(backend)
    valid = valid_resources()
    tried = [0]

    # etcd refuses a request over --max-request-bytes (1.5 MiB): keep every value under it.
    huge = 1_000_000

    # No shrinking: each example is a whole pipeline, and the failure names the key.
    @settings(BULK, max_examples=JUNK_EXAMPLES, phases=[Phase.explicit, Phase.generate])
    @given(junk_values(valid, huge))
    def run(junk):
        tried[0] += len(junk)
        _clear(backend)
        for doc in valid:
            client.create(doc)
        for key, text in junk:
            backend.put(key, text)
        caplog.clear()
        check_pipeline(backend, junk, caplog, tmp_path)

    with caplog.at_level(logging.WARNING):
        run()
    add_figure(f"junk values at resource keys ({junk_config.type})", tried[0])
    backend.close()


def _clear(backend: Backend) -> None:
    kvs, _ = backend.list("/calico/")
    for start in range(0, len(kvs), 500):
        backend.txn([], [Delete(kv.key) for kv in kvs[start:start + 500]])


def check_pipeline(backend: Backend, junk: list[tuple[str, str]], caplog, tmp_path) -> None:
    consumer = Consumer(backend)
    conf = tmp_path / "bird.conf"
    if conf.exists():
        conf.unlink()
    bgp = BGPDaemon(backend, HOST, str(conf), str(tmp_path / "no-bird.ctl"),
                    secrets=SecretStore(str(tmp_path / "secrets")),
                    reload=lambda sock: (True, "Reconfigured"))
    bgp_thread = threading.Thread(target=bgp.run, daemon=True)
    consumer.syncer.start()
    bgp_thread.start()
    try:
        assert consumer.in_sync.wait(15), "the syncer never reached in-sync"
        wait_for(conf.exists, what="bird.conf")
        got = served(consumer.flush())
        for what, names in EXPECTED.items():
            assert names <= got[what], f"{what}: {sorted(names - got[what])} not served"
            assert not any("junk" in n for n in got[what]), got[what]
        bird = conf.read_text()
        assert "protocol bgp Global_10_0_0_254" in bird and "Mesh_10_0_0_2" in bird, bird
        assert "10.65.0.0/16" in bird and "fd10::/48" in bird
        assert "junk" not in bird
        # Each invalid value was logged, naming its key (every kind here has a consumer).
        logged = "\n".join(r.getMessage() for r in caplog.records)
        for key, _text in junk:
            assert key in logged, f"{key} was skipped without a log line naming it"
        assert consumer.syncer._thread.is_alive() and bgp_thread.is_alive()
        # A valid resource overwritten by junk is withdrawn; written again, it comes back.
        key = kind_prefix("GlobalNetworkPolicy") + "allow-red"
        good = backend.get(key)
        backend.put(key, "{junk")
        wait_for(lambda: any(isinstance(x, m.ActivePolicyRemove) and x.id.name == "allow-red"
                             for x in consumer.flush()), what="allow-red withdrawn")
        backend.put(key, good.value)
        wait_for(lambda: "allow-red" in served(consumer.flush())["policies"],
                 what="allow-red served again")
    finally:
        consumer.syncer.stop()
        bgp.stop()
        bgp_thread.join(5)

