"""Felix under churn keeps no memory for what is gone (issue #10).

Two properties, checked on the calc graph driving the real nftables and host-network
managers (over fakes): churn leaves no cyclic garbage (Felix collects the old generation
rarely, see calico.felix.heap.tune_gc, so garbage in cycles piles up between collections),
and once the churned resources are back to what they were, every dict, set and list the graph
and the managers keep is back to its size.
"""

from __future__ import annotations

import gc
import random
from collections import deque
from typing import Any

from calico.felix.calc import CalcGraph
from calico.felix.dataplane.hostnet import HostNetworkManager
from calico.felix.dataplane.nft import NftDataplane
from tests.unit.felix.calc.support import HOST, np, profile, wep
from tests.unit.felix.dataplane.test_routes_fake_kernel import FakeKernel

APPS = 5


class NullRunner:
    def run(self, script: str) -> None:
        pass

    def list_table(self, family: str, name: str) -> dict | None:
        return None


class QuietKernel(FakeKernel):
    """The fake kernel without its record of route batches."""

    def __init__(self) -> None:
        super().__init__()
        self.route_batches = deque(maxlen=0)  # type: ignore[assignment]


def policy(i: int, rng: random.Random):
    """A NetworkPolicy as benchmarks/faults/lab_load.py writes them, plus a namespace
    selector and service accounts (every selector rewrite the calc graph does)."""
    peers = sorted({f"a{rng.randrange(APPS)}" for _ in range(2)})
    ingress = [{"action": "Allow", "protocol": "TCP",
                "source": {"selector": f"app in {{{', '.join(repr(p) for p in peers)}}}"},
                "destination": {"ports": [8000 + rng.randrange(100)]}},
               {"action": "Allow", "source": {"namespaceSelector": f"team == 't{i}'",
                                              "serviceAccounts": {"names": [f"sa{i}"]}}},
               {"action": "Allow", "protocol": "ICMP"}]
    return np(f"load-{i}", "default", f"app == 'a{i % APPS}'", ingress=ingress,
              egress=[{"action": "Allow"}], order=float(i), types=["Ingress", "Egress"])


class Felixish:
    """A calc graph feeding the dataplane managers, as the daemon's main loop does."""

    def __init__(self) -> None:
        self.graph = CalcGraph(HOST)
        self.kernel = QuietKernel()
        self.nft = NftDataplane(NullRunner())
        self.hostnet = HostNetworkManager(self.kernel, HOST)

    def update(self, kv: tuple[str, Any] | str) -> None:
        if isinstance(kv, str):
            self.graph.on_update(kv, None)
        else:
            self.graph.on_update(*kv)

    def flush(self) -> None:
        for msg in self.graph.flush():
            self.nft.on_message(msg)
            self.hostnet.on_message(msg)
        self.nft.apply()
        self.hostnet.apply()


def endpoint(n: int, node: str, app: str) -> tuple[str, Any]:
    return wep(f"p{n}", [f"10.65.{n >> 8}.{n & 255}/32"], labels={"app": app}, node=node,
               profiles=["net"])


def iface(n: int) -> str:
    return "cali" + f"p{n}"[:11]  # as support.wep names it


def sizes(*roots: object) -> dict[str, int]:
    """len() of every container reachable through attributes of `roots` (calico objects
    only, a few levels deep)."""
    out: dict[str, int] = {}
    seen: set[int] = set()

    def walk(path: str, obj: object, depth: int) -> None:
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        for name, value in vars(obj).items():
            if isinstance(value, dict | set | list | deque):
                out[f"{path}.{name}"] = len(value)
            elif hasattr(value, "__dict__") and type(value).__module__.startswith("calico"):
                walk(f"{path}.{name}", value, depth + 1)

    for i, root in enumerate(roots):
        walk(f"root{i}", root, 0)
    return out


def test_policy_churn_leaves_no_cyclic_garbage():
    rng = random.Random(1)
    f = Felixish()
    f.update(profile("net", ingress=[{"action": "Allow"}], egress=[{"action": "Allow"}]))
    for n in range(20):
        f.update(endpoint(n, HOST if n % 2 else "node-2", f"a{n % APPS}"))
    f.graph.on_status("in-sync")
    f.flush()
    edits = [policy(rng.randrange(10), rng) for _ in range(300)]
    gc.collect()
    gc.disable()
    try:
        for kv in edits:
            f.update(kv)
            f.flush()
        garbage = gc.collect()
    finally:
        gc.enable()
    # Before #10's fix every namespaced policy update compiled (and dropped) selector
    # functions, each a function <-> globals cycle: about 4 per edit here.
    assert garbage < 10


def test_churn_returns_every_structure_to_its_size():
    rng = random.Random(2)
    f = Felixish()
    f.update(profile("net", ingress=[{"action": "Allow"}], egress=[{"action": "Allow"}]))
    nodes = [HOST, "node-2", "node-3"]
    live: dict[int, tuple[str, str]] = {}  # n -> (node, app)
    for n in range(30):
        live[n] = (nodes[n % 3], f"a{n % APPS}")
        if live[n][0] == HOST:
            f.kernel.add_link(iface(n))
        f.update(endpoint(n, *live[n]))
    policies = {i: policy(i, rng) for i in range(10)}
    for kv in policies.values():
        f.update(kv)
    f.graph.on_status("in-sync")
    f.flush()
    baseline = sizes(f.graph, f.nft, f.hostnet)
    original = dict(live)

    serial = 1000
    for _ in range(200):
        # An endpoint goes, a new one comes (new name, new address, new link).
        gone = rng.choice(sorted(live))
        node, _ = live.pop(gone)
        f.update(endpoint(gone, node, "x")[0])
        if node == HOST:
            f.kernel.del_link(iface(gone))
        serial += 1
        live[serial] = (rng.choice(nodes), f"a{rng.randrange(APPS)}")
        if live[serial][0] == HOST:
            f.kernel.add_link(iface(serial))
        f.update(endpoint(serial, *live[serial]))
        # A relabel, a policy edit, sometimes a delete and re-create.
        n = rng.choice(sorted(live))
        live[n] = (live[n][0], f"a{rng.randrange(APPS)}")
        f.update(endpoint(n, *live[n]))
        i = rng.randrange(10)
        if rng.random() < 0.3:
            f.update(policies[i][0])
            f.flush()
        f.update(policy(i, rng))
        f.flush()

    # Back to the original resources: the original endpoints (same names, labels, links)
    # and the original policies.
    for n, (node, _) in list(live.items()):
        f.update(endpoint(n, node, "x")[0])
        if node == HOST:
            f.kernel.del_link(iface(n))
    f.flush()
    for n, (node, app) in original.items():
        if node == HOST:
            f.kernel.add_link(iface(n))
        f.update(endpoint(n, node, app))
    for kv in policies.values():
        f.update(kv)
    f.flush()
    after = sizes(f.graph, f.nft, f.hostnet)
    assert {k: (v, after.get(k)) for k, v in baseline.items() if after.get(k) != v} == {}
    assert set(after) == set(baseline)

