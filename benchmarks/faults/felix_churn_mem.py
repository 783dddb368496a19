"""Felix's memory under churn, in one process and without a lab (issue #10).

    PYTHONPATH=. .venv/bin/python benchmarks/faults/felix_churn_mem.py [--cycles 6000]
        [--every 500] [--workloads 100] [--hosts 3] [--policies 200] [--etcd]
        [--nft-netns [--nft-refresh SECONDS]] [--collect] [--tracemalloc [--base 0]]
        [--trim] [--types 15] [--no-tune-gc]

The real Felix main loop (calico.felix.daemon.Felix: syncer, calc graph, the real dataplane
driver with NftDataplane and HostNetworkManager) over a local datastore, with a fake nft
runner that keeps nothing and the unit tests' fake kernel. The load mirrors
benchmarks/faults/lab_load.py: `--hosts` nodes x `--workloads` endpoints (host1 is local),
`--policies` policies selecting on an `app` label, then `--cycles` churn cycles, each:
delete a random endpoint and create a new one (new name, new addresses; a link in the fake
kernel when local), relabel an endpoint, edit a policy (a fifth of the time deleted first).

Every `--every` cycles, once Felix has caught up: RSS, the gc-tracked objects (all of them,
and with `--collect` only the live ones after a full collection, with how many were
unreachable), the Python heap (`--tracemalloc`; the largest growth by line against sample
`--base` at the end), and the sizes of Felix's long-lived structures and functools caches.
A leak shows as a live count or structure that keeps rising with cycles; garbage in
reference cycles as "gc objects" rising between Felix's rare full collections (see
calico.felix.heap.tune_gc) while the live count stays flat; allocator behaviour as RSS
that rises while everything else is flat. `--etcd` runs a real etcd (Felix's syncer then
speaks HTTP/JSON as in the lab); `--trim` calls malloc_trim(0) before each sample.

Issue #10, 3000 cycles with --etcd, RSS from cycle 250 to 3000: +6.2% before the fix in
calico/felix/calc/selectors.py (about 8 unreachable objects per NetworkPolicy edit, ~18k
gc objects piling up until a full collection), +2.5% after it (+2.0% with --trim).
With --nft-netns (real libnftables) RSS rose ~15 MiB within the first 250 cycles and then
stayed flat: free glibc heap left by libnftables' parse trees for churn-sized scripts
(40-250 KB), which calico/felix/dataplane/nft/libnft.py now trims after each such call
(RSS 91-92 -> 80 MiB at cycle 500; its docstring has the latency cost).
With calico.felix.heap.compact (sets and dicts rebuilt when churn left them sparse), 3000
cycles with --etcd: RSS at cycle 3000 66.7 MiB (68.5 before), +0.8% from cycle 500 (+1.3%).
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))))

from calico.datastore.client import ResourceClient  # noqa: E402
from calico.datastore.errors import ResourceNotFound  # noqa: E402
from calico.datastore.local import LocalBackend  # noqa: E402
from calico.felix.config import ConfigLoader  # noqa: E402
from calico.felix.daemon import Felix  # noqa: E402
from calico.felix.dataplane.driver import DataplaneDriver  # noqa: E402
from calico.felix.dataplane.hostnet import HostNetworkManager  # noqa: E402
from calico.felix.dataplane.nft import NftDataplane  # noqa: E402
from calico.felix.heap import tune_gc  # noqa: E402
from tests.unit.felix.dataplane.test_routes_fake_kernel import FakeKernel  # noqa: E402

LOCAL = "host1"
NETWORK = "labnet"
API = "projectcalico.org/v3"


class QuietKernel(FakeKernel):
    """The unit tests' fake kernel without its record of every route batch."""

    def __init__(self) -> None:
        super().__init__()
        self.route_batches = collections.deque(maxlen=0)  # type: ignore[assignment]


class NullRunner:
    """nft that accepts every script and keeps none of them."""

    def __init__(self) -> None:
        self.runs = 0

    def run(self, script: str) -> None:
        self.runs += 1

    def list_table(self, family: str, name: str) -> dict | None:
        return None


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def policy(i: int, apps: int, rng: random.Random) -> dict:
    app = f"a{i % apps}"
    peers = sorted({f"a{rng.randrange(apps)}" for _ in range(2)})
    rules = [{"action": "Allow", "protocol": "TCP",
              "source": {"selector": f"app in {{{', '.join(repr(p) for p in peers)}}}"},
              "destination": {"ports": [8000 + rng.randrange(100)]}},
             {"action": "Allow", "protocol": "ICMP"}]
    spec = {"order": float(i), "selector": f"app == '{app}'", "types": ["Ingress", "Egress"],
            "ingress": rules, "egress": [{"action": "Allow"}]}
    if i % 2:
        return {"apiVersion": API, "kind": "NetworkPolicy",
                "metadata": {"name": f"load-{i}", "namespace": "default"}, "spec": spec}
    return {"apiVersion": API, "kind": "GlobalNetworkPolicy",
            "metadata": {"name": f"load-{i}"}, "spec": spec}


class Cluster:
    """The datastore side: endpoints created and deleted as the CNI plugin would."""

    def __init__(self, client: ResourceClient, kernel: FakeKernel, hosts: list[str],
                 apps: int, rng: random.Random) -> None:
        self.client, self.kernel, self.hosts, self.apps, self.rng = \
            client, kernel, hosts, apps, rng
        self.serial = 0
        self.live: dict[str, dict] = {}  # name -> doc

    def add(self, host: str) -> None:
        self.serial += 1
        n = self.serial
        cid = f"{n:064x}"
        iface = f"cali{n:011x}"
        name = f"{host}-cni-{cid}-eth0"
        doc = {"apiVersion": API, "kind": "WorkloadEndpoint",
               "metadata": {"name": name, "namespace": "default",
                            "labels": {"app": f"a{self.rng.randrange(self.apps)}"}},
               "spec": {"node": host, "orchestrator": "cni", "containerID": cid,
                        "endpoint": "eth0", "interfaceName": iface,
                        "mac": f"02:00:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:"
                               f"{n >> 8 & 255:02x}:{n & 255:02x}",
                        "ipNetworks": [f"10.{64 + (n >> 16 & 63)}.{n >> 8 & 255}.{n & 255}/32",
                                       f"fd00:65::{n:x}/128"],
                        "profiles": [NETWORK]}}
        if host == LOCAL:
            self.kernel.add_link(iface)
        self.client.create(doc)
        self.live[name] = doc

    def remove(self, name: str) -> None:
        doc = self.live.pop(name)
        self.client.delete("WorkloadEndpoint", name, "default")
        if doc["spec"]["node"] == LOCAL:
            self.kernel.del_link(doc["spec"]["interfaceName"])

    def relabel(self) -> None:
        name = self.rng.choice(list(self.live))
        cur = self.client.get("WorkloadEndpoint", name, "default").to_dict()
        cur["metadata"]["labels"]["app"] = f"a{self.rng.randrange(self.apps)}"
        self.client.update(cur)


def felix_sizes(felix: Felix, driver: DataplaneDriver) -> dict[str, int]:
    """len() of every dict/set/list reachable as an attribute (two levels deep) of Felix, its
    calc graph and its dataplane: the structures that would grow with a leak."""
    out: dict[str, int] = {}
    seen: set[int] = set()

    def walk(prefix: str, obj, depth: int) -> None:
        if id(obj) in seen or depth > 3:
            return
        seen.add(id(obj))
        attrs = getattr(obj, "__dict__", None)
        if attrs is None and hasattr(obj, "__slots__"):
            attrs = {s: getattr(obj, s, None) for s in obj.__slots__}
        for k, v in (attrs or {}).items():
            if isinstance(v, dict | set | list | collections.deque | frozenset):
                out[f"{prefix}.{k}"] = len(v)
            elif hasattr(v, "__dict__") and type(v).__module__.startswith("calico"):
                walk(f"{prefix}.{k}", v, depth + 1)

    walk("felix", felix, 0)
    walk("driver", driver, 0)
    return out


def cache_sizes() -> dict[str, int]:
    """functools caches across calico modules."""
    out = {}
    for modname, mod in list(sys.modules.items()):
        if not modname.startswith("calico"):
            continue
        for k, v in vars(mod).items():
            info = getattr(v, "cache_info", None)
            if callable(info):
                out[f"{modname}.{k}"] = info().currsize
    return out


def type_counts() -> collections.Counter:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=6000)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--workloads", type=int, default=100)
    p.add_argument("--policies", type=int, default=200)
    p.add_argument("--apps", type=int, default=10)
    p.add_argument("--tracemalloc", action="store_true")
    p.add_argument("--types", type=int, default=15, help="object types shown per report")
    p.add_argument("--no-tune-gc", action="store_true")
    p.add_argument("--collect", action="store_true",
                   help="a full gc.collect() before each sample (counts only what is live)")
    p.add_argument("--base", type=int, default=1,
                   help="the sample the last is compared with (0: before any churn)")
    p.add_argument("--etcd", action="store_true",
                   help="a real etcd (as the lab) instead of the local SQLite datastore")
    p.add_argument("--trim", action="store_true", help="malloc_trim(0) before each sample")
    p.add_argument("--nft-netns", action="store_true",
                   help="real nftables (libnftables, as Felix runs it) in a temporary netns "
                        "calab-mem<pid> instead of the null runner (root)")
    p.add_argument("--nft-refresh", type=float, default=0.0, metavar="SECONDS",
                   help="Felix's periodic nftables re-read (nftablesRefreshInterval; "
                        "default 0: off)")
    args = p.parse_args()
    if args.tracemalloc:
        import tracemalloc
        tracemalloc.start(1)
    rng = random.Random(1)
    etcd = None
    if args.etcd:
        from calico.datastore.etcd import EtcdBackend
        from tests.fixtures.etcd import EtcdServer

        etcd = EtcdServer().start()
        backend = EtcdBackend([etcd.endpoint])  # Felix's
        writer = EtcdBackend([etcd.endpoint])
    tmp = None
    if not args.etcd:
        tmp = tempfile.mkdtemp(prefix="felix-churn-")
        backend = writer = LocalBackend(os.path.join(tmp, "calico.db"))
    client = ResourceClient(writer)
    kernel = QuietKernel()
    hosts = [f"host{i + 1}" for i in range(args.hosts)]
    cluster = Cluster(client, kernel, hosts, args.apps, rng)
    client.create({"apiVersion": API, "kind": "Profile", "metadata": {"name": NETWORK},
                   "spec": {"ingress": [{"action": "Allow",
                                         "source": {"selector": f"has({NETWORK})"}}],
                            "egress": [{"action": "Allow"}],
                            "labelsToApply": {NETWORK: ""}}})
    for i in range(args.policies):
        client.apply(policy(i, args.apps, rng))
    for i in range(args.workloads * len(hosts)):
        cluster.add(hosts[i % len(hosts)])

    holder: dict[str, DataplaneDriver] = {}

    netns = None
    if args.nft_netns:  # real libnftables in a namespace of our own
        import subprocess

        from calico.felix.dataplane.nft import make_runner

        netns = f"calab-mem{os.getpid()}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
    runner = make_runner(netns) if netns else NullRunner()

    def factory(hostname, config, wake):
        holder["d"] = DataplaneDriver(NftDataplane(runner),
                                      HostNetworkManager(kernel, LOCAL),
                                      nft_refresh_interval=config.nftablesRefreshInterval)
        return holder["d"]

    env = {"FELIX_NFTABLESREFRESHINTERVAL": str(args.nft_refresh), "FELIX_LOGSEVERITYSCREEN": "warning"}
    felix = Felix(LOCAL, ConfigLoader(LOCAL, env=env), backend, driver_factory=factory)
    import logging
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    if not args.no_tune_gc:
        tune_gc()
    result: dict[str, int] = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", felix.run()),
                              daemon=True)
    thread.start()
    while not felix._programmed:
        time.sleep(0.05)

    def settle() -> None:
        # Felix has caught up when its queue is empty twice in a row with a pause between.
        quiet = 0
        while quiet < 3:
            time.sleep(0.1)
            quiet = quiet + 1 if felix._queue.empty() else 0

    def sample(cycle: int) -> None:
        settle()
        if args.trim:
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        before = len(gc.get_objects())
        freed = gc.collect() if args.collect else 0
        counts = type_counts()
        line = [f"cycle {cycle:6d}: RSS {rss_kib() / 1024:7.1f} MiB, gc objects "
                f"{before:8d} -> {sum(counts.values()):8d} live ({freed} unreachable)"]
        if args.tracemalloc:
            import tracemalloc
            cur, peak = tracemalloc.get_traced_memory()
            line.append(f"traced {cur / 2**20:6.1f} MiB (peak {peak / 2**20:6.1f})")
        print(", ".join(line), flush=True)
        keep = args.tracemalloc and len(samples) in (0, args.base)
        samples.append((cycle, rss_kib(), counts, felix_sizes(felix, holder["d"]),
                        cache_sizes(), None))
        if keep or (args.tracemalloc and cycle == args.cycles):
            import tracemalloc
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)])
            samples[-1] = samples[-1][:5] + (snap,)

    samples: list = []
    sample(0)
    for cycle in range(1, args.cycles + 1):
        cluster.remove(rng.choice(list(cluster.live)))
        cluster.add(rng.choice(hosts))
        cluster.relabel()
        i = rng.randrange(args.policies)
        doc = policy(i, args.apps, rng)
        if rng.random() < 0.2:
            try:
                client.delete(doc["kind"], doc["metadata"]["name"],
                              doc["metadata"].get("namespace"))
            except ResourceNotFound:
                pass
        client.apply(doc)
        if cycle % args.every == 0:
            sample(cycle)

    felix.stop(0)
    thread.join(timeout=30)
    backend.close()
    if etcd is not None:
        writer.close()
        etcd.stop()
    if netns is not None:
        subprocess.run(["ip", "netns", "delete", netns], check=False)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)

    first = samples[args.base] if len(samples) > args.base + 1 else samples[0]
    last = samples[-1]
    print(f"\nfrom cycle {first[0]} to {last[0]}: RSS {first[1] / 1024:.1f} -> "
          f"{last[1] / 1024:.1f} MiB ({last[1] / first[1] - 1:+.1%})")
    grew = {t: (first[2][t], last[2][t]) for t in last[2]
            if last[2][t] - first[2].get(t, 0) > 0}
    print("object types that grew:", sorted(grew.items(), key=lambda kv: kv[1][0] - kv[1][1])
          [:args.types])
    for label, a, b in (("structures", first[3], last[3]), ("caches", first[4], last[4])):
        diff = {k: (a.get(k, 0), v) for k, v in b.items() if v != a.get(k, 0)}
        print(f"{label} whose size changed:", diff or "none")
    if args.tracemalloc and first[5] is not None:
        print("tracemalloc, largest growth by line:")
        for stat in last[5].compare_to(first[5], "lineno")[:25]:
            print("  ", stat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
