"""How the cluster's costs grow with the number of hosts (root): labs of 10, 25 and 50 hosts.

    .venv/bin/python benchmarks/scale_lab.py [--sizes 10,25,50] [--modes mesh,rr]
        [--workloads 10] [--policies 200] [--rounds 10] [--size-timeout 900] [--idle 30]
        [--results FILE] [--markdown]

`--results FILE` keeps every size's raw figures in a JSON file: sizes run now replace the
same size and mode there, and all of them are printed and fitted together (so a 50-host run
can be made apart from the smaller ones). `--markdown` also prints one table of it all.

Each size and mode gets a fresh 3-member etcd cluster (on loopback) and a fresh lab
(calico/lab) whose hosts each run the real calico-node (supervisor, BGP daemon, BIRD, Felix,
tunnel-address allocator). Before the lab starts, the datastore holds `--policies`
GlobalNetworkPolicies (policy i selects `app == 'a<i mod 10>'` and allows TCP port 10000+i
from `app == 'a<i+1 mod 10>'`) and one that allows ICMP to every workload; in mode `rr`
also host1 and host2 as route reflectors (Node label `route-reflector`, spec.bgp.
routeReflectorClusterID 224.0.0.1), one BGPPeer (every node peers with the reflectors) and the
mesh turned off in BGPConfiguration `default`, as Calico's route reflector guide does. Then
`--workloads` per host are added through the CNI plugin (labels app=a0..a9), so every host
uses every policy. Printed per size and mode:

- up: `Lab.up` called -> every host's BGP sessions Established (mesh: N-1 per host; rr: the
  reflectors N-1, every other host 2);
- new workload: CNI ADD started on one host -> an ICMP echo reply from the new workload, sent
  from the first workload of every other host (real packets: a raw socket opened inside that
  workload's namespace, a request every 20 ms); p50/p99 over all rounds x other hosts. The new
  address falls in the host's existing block (the usual case): the path is CNI, then Felix
  on that host programming the endpoint; remote hosts already route the block;
- policy change: a GlobalNetworkPolicy update (policy 0's port set to a new marker port) ->
  "programmed" on a host, meaning the host's kernel has committed the nftables transaction
  that holds a rule with the new port: seen by `nft monitor rules` running in every host's
  namespace (the kernel's own ruleset notification, sent at commit; from then on packets meet
  the new rule); p50/p99 over rounds x hosts;
- memory: RSS of each daemon per host (mean and max over hosts);
- etcd (sum over the 3 members' /metrics; our clients speak etcd's gRPC gateway, whose calls
  etcd counts as gRPC): with the lab idle for `--idle` s, gRPC messages received/s (unary
  calls and stream messages) and unary requests/s; unary requests/s while the benchmark
  works (workloads added, the rounds below); watchers (etcd_debugging_mvcc_watcher_total)
  and watch streams;
- BGP: Established sessions (total, per host mean/max) and routes per host (`birdc show
  route count`: the routes in BIRD's table master4, so with two reflectors a block learnt
  from both counts twice).

Then, per mode, the exponent b of a least-squares fit y ~ N^b of each figure over the sizes
that completed. Targets: policy change on every host <= 1 s p99 at 50 hosts; per-host memory
flat in N (b ~ 0) except the route table; total mesh sessions b ~ 2, reflector sessions b ~ 1.

Each size runs under `--size-timeout`; before it starts, the memory it needs (measured per
host at the previous size, 200 MB per host before that) is checked against MemAvailable. A
size that cannot run or fails is reported with the reason and the larger sizes of its mode
are skipped. Everything (monitors, probes, lab, etcd) is torn down after every size, also on
failure, timeout, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import scale_report as report  # noqa: E402
from benchmarks.scale_figures import (  # noqa: E402
    metric_sum,
    parse_prometheus,
    parse_route_count,
)
from benchmarks.scale_probe import PingProber, RuleMonitor  # noqa: E402
from calico.datastore.client import ResourceClient  # noqa: E402
from calico.lab.lab import Lab  # noqa: E402
from calico.lab.proc import sh  # noqa: E402
from tests.fixtures.etcd import EtcdCluster  # noqa: E402

RR_HOSTS = ("host1", "host2")


class SizeTimeout(Exception):
    pass


# ---- datastore seed -------------------------------------------------------------------------


def policy(i: int, port: int | None = None) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
            "metadata": {"name": f"scale-p{i:03d}"},
            "spec": {"order": 100 + i, "selector": f"app == 'a{i % 10}'",
                     "types": ["Ingress"],
                     "ingress": [{"action": "Allow", "protocol": "TCP",
                                  "source": {"selector": f"app == 'a{(i + 1) % 10}'"},
                                  "destination": {"ports": [port or 10000 + i]}}]}}


def seed(endpoints: list[str], policies: int, mode: str) -> None:
    docs = [{"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
             "metadata": {"name": "scale-allow-icmp"},
             "spec": {"order": 10, "selector": "has(app)", "types": ["Ingress"],
                      "ingress": [{"action": "Allow", "protocol": "ICMP"}]}}]
    docs += [policy(i) for i in range(policies)]
    if mode == "rr":
        docs += [{"apiVersion": "projectcalico.org/v3", "kind": "Node",
                  "metadata": {"name": h, "labels": {"route-reflector": "true"}},
                  "spec": {"bgp": {"routeReflectorClusterID": "224.0.0.1"}}}
                 for h in RR_HOSTS]
        docs += [{"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                  "metadata": {"name": "peer-with-reflectors"},
                  "spec": {"nodeSelector": "all()",
                           "peerSelector": "route-reflector == 'true'"}},
                 {"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                  "metadata": {"name": "default"},
                  "spec": {"nodeToNodeMeshEnabled": False}}]
    from calico.datastore import DatastoreConfig, connect

    backend = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "etcdv3",
                                                "ETCD_ENDPOINTS": ",".join(endpoints)}))
    try:
        client = ResourceClient(backend)
        for doc in docs:
            client.apply(doc)
    finally:
        backend.close()


# ---- measurements -----------------------------------------------------------------------------


def expected_sessions(host: str, n: int, mode: str) -> int:
    if mode == "mesh" or host in RR_HOSTS:
        return n - 1
    return len(RR_HOSTS)


def wait_sessions(lab: Lab, n: int, mode: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = [h["name"] for h in lab.state["hosts"]]
    while pending:
        pending = [h for h in pending if sum(p["established"] for p in lab.peers(h))
                   < expected_sessions(h, n, mode)]
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"BGP sessions not all Established within {timeout:g}s on "
                               f"{len(pending)} hosts (e.g. {pending[0]})")
        time.sleep(0.2)


def add_workloads(lab: Lab, per_host: int, parallel: int = 4) -> float:
    start = time.monotonic()
    jobs = [(h["name"], j) for j in range(per_host) for h in lab.state["hosts"]]

    def one(job: tuple[str, int]) -> None:
        host, j = job
        Lab(lab.name).load().add_workload(host, f"{host}-w{j}", {"app": f"a{j % 10}"})

    pool = ThreadPoolExecutor(parallel)
    try:
        list(pool.map(one, jobs))
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C: no new ADDs, the running ones end
    lab.load()
    return time.monotonic() - start


def daemon_of(cmdline: str) -> str | None:
    if "calico-felix" in cmdline:
        return "felix"
    if "calico.bgp.daemon" in cmdline:
        return "bgp daemon"
    if "calico.node.tunneladdr" in cmdline:
        return "tunnel addr"
    if cmdline.split(" ", 1)[0].endswith("bird"):
        return "bird"
    return None


def _proc(pid: int) -> tuple[str, int]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return cmd, rss * 1024


def host_rss(node_pid: int) -> dict[str, int]:
    """RSS in bytes of calico-node (the supervisor) and each daemon it runs."""
    rss = {"supervisor": _proc(node_pid)[1]}
    with open(f"/proc/{node_pid}/task/{node_pid}/children") as f:
        children = [int(p) for p in f.read().split()]
    for pid in children:
        try:
            cmd, size = _proc(pid)
        except (OSError, StopIteration):
            continue
        name = daemon_of(cmd)
        if name:
            rss[name] = rss.get(name, 0) + size
    return rss


def etcd_metrics(endpoints: list[str]) -> dict[str, float]:
    totals = {"msgs": 0.0, "unary": 0.0, "watchers": 0.0, "streams": 0.0}
    for ep in endpoints:
        with urllib.request.urlopen(f"{ep}/metrics", timeout=5) as resp:
            s = parse_prometheus(resp.read().decode())
        totals["msgs"] += metric_sum(s, "grpc_server_msg_received_total")
        totals["unary"] += metric_sum(s, "grpc_server_handled_total", grpc_type="unary")
        totals["watchers"] += metric_sum(s, "etcd_debugging_mvcc_watcher_total")
        totals["streams"] += metric_sum(s, "etcd_debugging_mvcc_watch_stream_total")
    return totals


def etcd_rates(endpoints: list[str], window: float) -> dict[str, float]:
    before = etcd_metrics(endpoints)
    time.sleep(window)
    after = etcd_metrics(endpoints)
    return {"msgs/s": (after["msgs"] - before["msgs"]) / window,
            "unary/s": (after["unary"] - before["unary"]) / window,
            "watchers": after["watchers"], "streams": after["streams"]}


def bgp_figures(lab: Lab) -> dict[str, list[int]]:
    sessions, routes = [], []
    for h in lab.state["hosts"]:
        sessions.append(sum(p["established"] for p in lab.peers(h["name"])))
        out = sh("birdc", "-s", os.path.join(h["run_dir"], "bird.ctl"), "show", "route",
                 "count", check=False).stdout
        routes.append(parse_route_count(out).get("master4", 0))
    return {"sessions": sessions, "routes": routes}


def reach_round(lab: Lab, prober: PingProber, r: int, timeout: float
                ) -> tuple[float, list[float | None]]:
    """(CNI ADD's duration, seconds from ADD's start to each other host's first reply)."""
    hosts = lab.state["hosts"]
    target = hosts[r % len(hosts)]["name"]
    start = time.monotonic()
    rec = lab.add_workload(target, f"nw{r}", {"app": "new"})
    added = time.monotonic() - start
    others = [h["name"] for h in hosts if h["name"] != target]
    got = prober.reach(others, rec["addresses"][0], timeout)
    lab.remove_workload(f"nw{r}")
    return added, [t - start for t in got.values()] + [None] * (len(others) - len(got))


def policy_round(lab: Lab, monitor: RuleMonitor, r: int, timeout: float) -> list:
    marker = 20000 + r
    backend = lab.backend()
    try:
        start = time.monotonic()
        ResourceClient(backend).apply(policy(0, marker))
    finally:
        backend.close()
    got = monitor.wait(marker, timeout)
    return [t - start for t in got.values()] + [None] * (len(lab.state["hosts"]) - len(got))


# ---- one size -------------------------------------------------------------------------------


def measure(lab: Lab, n: int, args, fig: dict[str, Any], etcd: EtcdCluster) -> None:
    busy_from, busy_start = etcd_metrics(etcd.endpoints), time.monotonic()
    fig["workloads_s"] = add_workloads(lab, args.workloads)
    print(f"  {n * args.workloads} workloads added in {fig['workloads_s']:.1f} s", flush=True)
    fig["bgp"] = bgp_figures(lab)
    fig["rss"] = [host_rss(h["node"]["pid"]) for h in lab.state["hosts"]]
    fig["etcd"] = etcd_rates(etcd.endpoints, args.idle)
    hosts = lab.state["hosts"]
    probes = {h["name"]: lab.workload(f"{h['name']}-w0")["netns"] for h in hosts}
    with PingProber(probes) as prober:
        fig["add"], fig["reach"], fig["after_add"] = [], [], []
        for r in range(args.rounds):
            added, delays = reach_round(lab, prober, r, 30.0)
            fig["add"].append(added)
            fig["reach"] += delays
            fig["after_add"] += [None if d is None else d - added for d in delays]
    print(f"  reachability rounds done ({args.rounds})", flush=True)
    with RuleMonitor({h["name"]: h["netns"] for h in hosts}) as monitor:
        fig["policy"] = []
        for r in range(args.rounds):
            fig["policy"] += policy_round(lab, monitor, r, 30.0)
            time.sleep(0.5)
    busy_to = etcd_metrics(etcd.endpoints)
    fig["etcd"]["busy unary/s"] = ((busy_to["unary"] - busy_from["unary"])
                                   / (time.monotonic() - busy_start))


def run_size(n: int, mode: str, args) -> dict[str, Any]:
    fig: dict[str, Any] = {"n": n, "mode": mode, "workloads": args.workloads,
                           "policies": args.policies, "idle": args.idle,
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    etcd = EtcdCluster(3)
    lab = Lab(f"sc{os.getpid() % 10000}")

    def alarm(*_):
        raise SizeTimeout(f"size {n} ({mode}) ran out of its {args.size_timeout:g} s")

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(int(args.size_timeout))
    try:
        etcd.start()
        seed(etcd.endpoints, args.policies, mode)
        start = time.monotonic()
        lab.up(hosts=n, datastore="etcdv3", etcd_endpoints=",".join(etcd.endpoints),
               wait=None)
        wait_sessions(lab, n, mode, args.size_timeout)
        fig["up_s"] = time.monotonic() - start
        print(f"  up, every session Established: {fig['up_s']:.1f} s", flush=True)
        measure(lab, n, args, fig, etcd)
        fig["ok"] = True
    except (Exception, KeyboardInterrupt) as e:
        fig["ok"], fig["why"] = False, f"{type(e).__name__}: {e or 'interrupted'}"
        if isinstance(e, KeyboardInterrupt):
            fig["interrupted"] = True
    finally:
        signal.alarm(0)
        teardown(lab, etcd)
    return fig


def teardown(lab: Lab, etcd: EtcdCluster) -> None:
    # a second Ctrl-C or SIGTERM must not stop the clean-up half-way
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            lab.down()
        finally:
            etcd.stop()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


NEIGH = "/proc/sys/net/{}/neigh/default/gc_thresh{}"
NEIGH_LIMITS = {2: 8192, 3: 16384}


def raise_neighbour_limits() -> dict[str, str]:
    """The kernel's neighbour (ARP/NDP) table is one for all namespaces, 1,024 entries at most
    by default (gc_thresh3), and a 50-host mesh needs 50 x 49 for the hosts alone, plus two per
    workload: past it, sends fail with ENOBUFS ("neighbor table overflow") and BGP sessions
    hang in Connect. Raise the limits; returns the old values for `restore`."""
    old = {}
    for family in ("ipv4", "ipv6"):
        for level, want in NEIGH_LIMITS.items():
            path = NEIGH.format(family, level)
            with open(path) as f:
                old[path] = f.read().strip()
            if int(old[path]) < want:
                with open(path, "w") as f:
                    f.write(str(want))
    return old


def restore(values: dict[str, str]) -> None:
    for path, value in values.items():
        with open(path, "w") as f:
            f.write(value)


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def per_host_bytes(fig: dict[str, Any] | None) -> int:
    if not fig or not fig.get("rss"):
        return 200 << 20
    return max(sum(r.values()) for r in fig["rss"]) + 16 * (1 << 20)  # + workloads' share


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,25,50")
    parser.add_argument("--modes", default="mesh,rr")
    parser.add_argument("--workloads", type=int, default=10, help="per host")
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--size-timeout", type=float, default=900.0)
    parser.add_argument("--results", metavar="FILE",
                        help="JSON file of earlier results: sizes run now replace the same "
                        "size and mode in it, the rest are printed and fitted with them")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the figures as one markdown table")
    parser.add_argument("--idle", type=float, default=30.0,
                        help="seconds of idle lab over which etcd's request rate is taken")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    modes = [m for m in args.modes.split(",") if m]
    if os.geteuid() != 0 or any(m not in ("mesh", "rr") for m in modes):
        parser.error("run as root; --modes is a list of mesh and rr")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    results: list[dict[str, Any]] = []
    neighbour_limits = raise_neighbour_limits()
    try:
        run_all(sizes, modes, args, results)
    finally:
        restore(neighbour_limits)
    ok = all(r["ok"] for r in results)
    if args.results:
        results = merge_results(args.results, [])
    report.print_all(results, args)
    if args.markdown:
        print("\n" + report.markdown(results))
    return 0 if ok else 1


def run_all(sizes: list[int], modes: list[str], args, results: list[dict[str, Any]]) -> None:
    for mode in modes:
        last = None
        for n in sizes:
            need, avail = n * per_host_bytes(last), mem_available()
            if need > 0.8 * avail:
                results.append({"n": n, "mode": mode, "ok": False, "why": (
                    f"needs about {need >> 20} MB, {avail >> 20} MB available")})
                break
            print(f"{mode}, {n} hosts ({time.strftime('%H:%M:%S')})", flush=True)
            last = run_size(n, mode, args)
            results.append(last)
            if args.results:  # kept as each size ends: a later size may not
                merge_results(args.results, [last])
            if not last["ok"]:
                print(f"  stopped: {last['why']}", flush=True)
                break
        if results and results[-1].get("interrupted"):
            break


def merge_results(path: str, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        with open(path) as f:
            old = json.load(f)
    except FileNotFoundError:
        old = []
    done = {(r["mode"], r["n"]) for r in new}
    merged = [r for r in old if (r["mode"], r["n"]) not in done] + new
    merged.sort(key=lambda r: (r["mode"], r["n"]))
    with open(path, "w") as f:
        json.dump(merged, f, indent=1)
    return merged


if __name__ == "__main__":
    sys.exit(main())
