"""Load with continuous churn on a lab, then: does every host's dataplane equal what the
datastore says? Shared by `tests/faults/test_lab_load.py` (shortened) and
`benchmarks/faults/lab_report.py` (the issue's full size).

`run_load(lab, LoadSize(...))`:
1. `workloads` per host through the real CNI plugin (a few ADDs at a time), `policies`
   policies (half GlobalNetworkPolicy, half NetworkPolicy in `default`) whose selectors and
   rules pick workloads by an `app` label drawn from `apps` values, so IP sets churn too;
2. for `churn_seconds`, two writers at once: the CNI writer deletes a random workload and
   adds a new one (IPAM allocations and releases, endpoints, veths, routes); the datastore
   writer relabels workloads and edits, deletes and re-creates policies, `edit_rate` a second;
   Felix's RSS on every host is sampled throughout;
3. the checks (`LoadResult`):
   - convergence: seconds from the end of churn until every host's ruleset and Felix routes
     stop changing;
   - each host's Felix routes and `cali` interfaces equal the host's endpoints in the
     datastore, and its ruleset has exactly one from- and to-chain per endpoint;
   - a fresh Felix (kill -9; calico-node restarts it) computes the same dataplane: it writes
     0 nftables lines, changes no route, and the ruleset text is unchanged;
   - `calicoctl ipam check --grace 0`: no leaked address, stray handle or stale affinity;
   - Felix RSS growth between the first and the last window (a minute, or a quarter of the
     churn when shorter), per host.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceConflict, ResourceNotFound
from calico.lab import workloads as wl_mod
from calico.lab.lab import Lab
from calico.lab.proc import sh

from . import lab_traffic as lt

NAMESPACE = "default"


@dataclass
class LoadSize:
    hosts: int = 3
    workloads: int = 30  # per host
    policies: int = 60
    churn_seconds: float = 60.0
    apps: int = 10
    edit_rate: float = 10.0  # datastore edits per second during churn
    parallel: int = 4  # CNI ADDs in flight at set-up


@dataclass
class LoadResult:
    setup_seconds: float = 0.0
    workload_adds: int = 0
    workload_dels: int = 0
    relabels: int = 0
    policy_edits: int = 0
    cni_errors: list[str] = field(default_factory=list)
    convergence_seconds: float = 0.0
    mismatches: dict[str, list[str]] = field(default_factory=dict)  # host -> differences
    fresh_felix: dict[str, str] = field(default_factory=dict)  # host -> what it changed
    fresh_nft_lines: dict[str, int] = field(default_factory=dict)  # host -> lines it wrote
    ipam_check: str = ""
    ipam_ok: bool = False
    rss_kib: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    rss_growth: dict[str, float] = field(default_factory=dict)  # host -> fraction
    # second window -> last: the same, once the heap has grown to churn's working size
    rss_growth_after_first: dict[str, float] = field(default_factory=dict)

    @property
    def dataplane_ok(self) -> bool:
        return not any(self.mismatches.values()) and all(
            v == "nothing" for v in self.fresh_felix.values())


# ---- set-up ------------------------------------------------------------------------------


class Workloads:
    """Lab workloads added and removed from several threads (the lab's own state file is
    written under a lock)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.lock = threading.Lock()
        self.serial = 0

    def add(self, host: str, labels: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            self.serial += 1
            name = f"{host}-l{self.serial}"
        h = self.lab.host(host)
        rec = wl_mod.add(name, h, f"{self.lab.prefix}w-{name}",
                         self.lab.datastore_env(inside=True), self.lab.state["ipv6"],
                         os.path.join(h["run_dir"], "ipam.lock"), labels)
        with self.lock:
            self.lab.state["workloads"].append(rec)
            self.lab.save()
        return rec

    def remove(self, name: str) -> None:
        with self.lock:
            rec = self.lab.workload(name)
            self.lab.state["workloads"].remove(rec)
            self.lab.save()
        h = self.lab.host(rec["host"])
        wl_mod.remove(rec, h, self.lab.datastore_env(inside=True), self.lab.state["ipv6"],
                      os.path.join(h["run_dir"], "ipam.lock"))

    def names(self) -> list[str]:
        with self.lock:
            return [w["name"] for w in self.lab.state["workloads"]]


def _policy(i: int, apps: int, rng: random.Random) -> dict[str, Any]:
    app = f"a{i % apps}"
    peers = sorted({f"a{rng.randrange(apps)}" for _ in range(2)})
    port = 8000 + rng.randrange(100)
    rules = [{"action": "Allow", "protocol": "TCP",
              "source": {"selector": f"app in {{{', '.join(repr(p) for p in peers)}}}"},
              "destination": {"ports": [port]}},
             {"action": "Allow", "protocol": "ICMP"}]
    spec = {"order": float(i), "selector": f"app == '{app}'", "types": ["Ingress", "Egress"],
            "ingress": rules, "egress": [{"action": "Allow"}]}
    if i % 2:
        return {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                "metadata": {"name": f"load-{i}", "namespace": NAMESPACE}, "spec": spec}
    return {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
            "metadata": {"name": f"load-{i}"}, "spec": spec}


def setup(lab: Lab, size: LoadSize, rng: random.Random, res: LoadResult) -> Workloads:
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    backend = lab.backend()
    try:
        client = ResourceClient(backend)
        for i in range(size.policies):
            client.apply(_policy(i, size.apps, rng))
    finally:
        backend.close()
    wls = Workloads(lab)
    hosts = [h["name"] for h in lab.state["hosts"]]
    jobs = [(hosts[i % len(hosts)], {"app": f"a{rng.randrange(size.apps)}"})
            for i in range(size.workloads * len(hosts))]
    with ThreadPoolExecutor(size.parallel) as pool:
        for fut in [pool.submit(wls.add, h, labels) for h, labels in jobs]:
            fut.result()
    res.workload_adds += len(jobs)
    res.setup_seconds = time.monotonic() - started
    return wls


# ---- churn -------------------------------------------------------------------------------


def _cni_writer(wls: Workloads, hosts: list[str], size: LoadSize, rng: random.Random,
                stop: threading.Event, res: LoadResult) -> None:
    while not stop.is_set():
        names = wls.names()
        try:
            if names:
                wls.remove(rng.choice(names))
                res.workload_dels += 1
            wls.add(rng.choice(hosts), {"app": f"a{rng.randrange(size.apps)}"})
            res.workload_adds += 1
        except Exception as err:  # a failed ADD/DEL is a finding, not a crash of the run
            res.cni_errors.append(str(err)[:300])


def _edit_writer(lab: Lab, size: LoadSize, rng: random.Random, stop: threading.Event,
                 res: LoadResult) -> None:
    backend = lab.backend()
    client = ResourceClient(backend)
    try:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                if rng.random() < 0.5:
                    weps = client.list("WorkloadEndpoint").items
                    if weps:
                        wep = rng.choice(weps).to_dict()
                        wep["metadata"].setdefault("labels", {})["app"] = \
                            f"a{rng.randrange(size.apps)}"
                        client.update(wep)
                        res.relabels += 1
                else:
                    i = rng.randrange(size.policies)
                    pol = _policy(i, size.apps, rng)
                    kind, ns = pol["kind"], pol["metadata"].get("namespace")
                    if rng.random() < 0.2:
                        try:
                            client.delete(kind, pol["metadata"]["name"], ns)
                        except ResourceNotFound:
                            pass
                    client.apply(pol)
                    res.policy_edits += 1
            except (ResourceConflict, ResourceNotFound):
                pass  # raced with the CNI writer: a real orchestrator would retry
            stop.wait(max(0.0, 1.0 / size.edit_rate - (time.monotonic() - t0)))
    finally:
        backend.close()


def _rss_sampler(lab: Lab, stop: threading.Event, res: LoadResult, every: float = 2.0):
    start = time.monotonic()
    while not stop.is_set():
        for h in lab.state["hosts"]:
            rss = lt.felix_rss_kib(lab, h["name"])
            if rss is not None:
                res.rss_kib.setdefault(h["name"], []).append((time.monotonic() - start, rss))
        stop.wait(every)


def churn(lab: Lab, wls: Workloads, size: LoadSize, rng: random.Random,
          res: LoadResult) -> None:
    stop = threading.Event()
    hosts = [h["name"] for h in lab.state["hosts"]]
    threads = [threading.Thread(target=_cni_writer, args=(wls, hosts, size,
                                                          random.Random(rng.random()), stop,
                                                          res)),
               threading.Thread(target=_edit_writer, args=(lab, size,
                                                           random.Random(rng.random()), stop,
                                                           res)),
               threading.Thread(target=_rss_sampler, args=(lab, stop, res))]
    for t in threads:
        t.start()
    try:
        stop.wait(size.churn_seconds)
    finally:
        stop.set()
        for t in threads:
            t.join()
    window = min(60.0, size.churn_seconds / 4)
    for host, samples in res.rss_kib.items():
        first = [r for t, r in samples if t <= window]
        second = [r for t, r in samples if window < t <= 2 * window]
        last = [r for t, r in samples if t >= samples[-1][0] - window]
        if first and last:
            res.rss_growth[host] = statistics.median(last) / statistics.median(first) - 1
        if second and last and samples[-1][0] > 3 * window:
            res.rss_growth_after_first[host] = (statistics.median(last)
                                                / statistics.median(second) - 1)


# ---- checks ------------------------------------------------------------------------------


def ruleset(lab: Lab, host: str) -> str:
    return sh("ip", "netns", "exec", lab.host(host)["netns"], "nft", "list", "table", "inet",
              "calico", check=False).stdout


_ELEMENTS = re.compile(r"(type (ipv[46])_addr\s+flags interval\s+elements = \{)([^}]*)\}")


def normalized(text: str) -> str:
    """A ruleset with every address interval set's elements in one canonical form (the
    collapsed prefixes): nft keeps `10.0.0.4, 10.0.0.5` added one by one, but merges them into
    `10.0.0.4/31` when both come in one transaction — the same members either way."""
    import ipaddress

    def canon(m: re.Match) -> str:
        nets = []
        for item in (x.strip() for x in m.group(3).split(",")):
            if "-" in item:
                lo, hi = (ipaddress.ip_address(x.strip()) for x in item.split("-"))
                nets.extend(ipaddress.summarize_address_range(lo, hi))
            elif item:
                nets.append(ipaddress.ip_network(item, strict=False))
        return f"{m.group(1)} {', '.join(map(str, ipaddress.collapse_addresses(nets)))} }}"

    return _ELEMENTS.sub(canon, text)


def felix_routes(lab: Lab, host: str) -> set[str]:
    ns = lab.host(host)["netns"]
    out = sh("ip", "-n", ns, "route", "show", "proto", "80").stdout + \
        sh("ip", "-n", ns, "-6", "route", "show", "proto", "80").stdout
    return {" ".join(line.split()[:3]) for line in out.splitlines() if line.strip()}


def cali_links(lab: Lab, host: str) -> set[str]:
    out = sh("ip", "-n", lab.host(host)["netns"], "-o", "link", "show").stdout
    return {m.group(1) for m in re.finditer(r"^\d+: (cali[0-9a-f]+)[@:]", out, re.M)}


def _snapshot(lab: Lab) -> dict[str, tuple[str, frozenset[str]]]:
    return {h["name"]: (ruleset(lab, h["name"]), frozenset(felix_routes(lab, h["name"])))
            for h in lab.state["hosts"]}


def wait_converged(lab: Lab, quiet: float = 3.0, timeout: float = 300.0) -> float:
    """Seconds until no host's ruleset or Felix routes changed for `quiet` seconds (the
    quiet period itself not counted)."""
    start = time.monotonic()
    last, last_change = _snapshot(lab), time.monotonic()
    while time.monotonic() - last_change < quiet:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"dataplanes still changing after {timeout:g}s")
        time.sleep(0.25)
        now = _snapshot(lab)
        if now != last:
            last, last_change = now, time.monotonic()
    return last_change - start


def expected_from_datastore(lab: Lab) -> dict[str, tuple[set[str], set[str]]]:
    """host -> (Felix routes "addr dev iface", interfaces) its local endpoints call for."""
    backend = lab.backend()
    try:
        weps = ResourceClient(backend).list("WorkloadEndpoint").items
    finally:
        backend.close()
    out: dict[str, tuple[set[str], set[str]]] = {h["name"]: (set(), set())
                                                 for h in lab.state["hosts"]}
    for wep in weps:
        d = wep.to_dict()["spec"]
        routes, links = out.setdefault(d["node"], (set(), set()))
        links.add(d["interfaceName"])
        for net in d.get("ipNetworks") or []:
            addr, _, plen = net.partition("/")
            routes.add(f"{addr if plen in ('32', '128') else net} dev {d['interfaceName']}")
    return out


def check_against_datastore(lab: Lab, res: LoadResult) -> None:
    for host, (routes, links) in expected_from_datastore(lab).items():
        diffs = []
        got_routes, got_links = felix_routes(lab, host), cali_links(lab, host)
        if got_routes != routes:
            diffs.append(f"routes missing {sorted(routes - got_routes)[:5]}, "
                         f"extra {sorted(got_routes - routes)[:5]}")
        if got_links != links:
            diffs.append(f"cali links missing {sorted(links - got_links)[:5]}, "
                         f"extra {sorted(got_links - links)[:5]}")
        text = ruleset(lab, host)
        for prefix in ("fw", "tw"):
            chains = set(re.findall(rf"chain {prefix}-(cali[0-9a-f]+) ", text))
            if chains != links:
                diffs.append(f"{prefix}- chains missing {sorted(links - chains)[:5]}, "
                             f"extra {sorted(chains - links)[:5]}")
        res.mismatches[host] = diffs


def check_fresh_felix(lab: Lab, res: LoadResult) -> None:
    """kill -9 each host's Felix: the fresh one must find nothing to change — no route, and
    no rule or set member (the ruleset compared in `normalized` form; the nft lines it wrote
    are recorded: a set whose members are the same but written in another form is
    rewritten)."""
    for h in lab.state["hosts"]:
        host = h["name"]
        rules, routes = ruleset(lab, host), felix_routes(lab, host)
        log_before = len(lt.node_log(lab, host))
        lt.kill_felix(lab, host)
        new_log = lt.node_log(lab, host)[log_before:]
        m = re.search(r"Dataplane programmed .* nftables (\d+) lines", new_log)
        changed = []
        res.fresh_nft_lines[host] = int(m.group(1)) if m else -1
        for r in re.findall(r"Programming routes: (\d+) to add, (\d+) to delete", new_log):
            if r != ("0", "0"):
                changed.append(f"routes +{r[0]} -{r[1]}")
        time.sleep(0.5)
        after = ruleset(lab, host)
        if normalized(after) != normalized(rules):
            changed.append("ruleset differs")
        if felix_routes(lab, host) != routes:
            changed.append("Felix routes differ")
        res.fresh_felix[host] = ", ".join(changed) or "nothing"


def check_ipam(lab: Lab, res: LoadResult) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ETCD_", "DATASTORE_", "CALICO_DATASTORE"))}
    env.update(lab.datastore_env(inside=False))
    proc = subprocess.run([sys.executable, "-m", "calico.ctl.main", "ipam", "check", "-c",
                           "/nonexistent/calicoctl.cfg", "--grace", "0"], env=env,
                          capture_output=True, text=True, timeout=120)
    res.ipam_check = (proc.stdout + proc.stderr).strip()
    res.ipam_ok = proc.returncode == 0 and "No problems found." in proc.stdout


def run_load(lab: Lab, size: LoadSize, seed: int = 1) -> LoadResult:
    rng = random.Random(seed)
    res = LoadResult()
    wls = setup(lab, size, rng, res)
    churn(lab, wls, size, rng, res)
    res.convergence_seconds = wait_converged(lab)
    check_against_datastore(lab, res)
    check_ipam(lab, res)
    check_fresh_felix(lab, res)
    return res


def summary(res: LoadResult) -> list[str]:
    lines = [f"set-up {res.setup_seconds:.1f}s; churn: {res.workload_adds} CNI ADDs, "
             f"{res.workload_dels} DELs, {res.relabels} relabels, {res.policy_edits} policy "
             f"edits, {len(res.cni_errors)} CNI errors",
             f"convergence after churn: {res.convergence_seconds:.2f}s",
             "dataplane vs datastore: " + ("equal on every host" if not any(
                 res.mismatches.values()) else str(res.mismatches)),
             "fresh Felix changed: " + ", ".join(f"{h}: {v}"
                                                 for h, v in res.fresh_felix.items())
             + " (nft lines written: " + ", ".join(f"{h} {n}" for h, n in
                                                   res.fresh_nft_lines.items()) + ")",
             "ipam check: " + ("clean" if res.ipam_ok else res.ipam_check[-500:]),
             "Felix RSS growth (first vs last window): " + ", ".join(
                 f"{h} {g * 100:+.1f}% ({res.rss_kib[h][0][1] // 1024}->"
                 f"{res.rss_kib[h][-1][1] // 1024} MiB)"
                 for h, g in sorted(res.rss_growth.items()))]
    if res.rss_growth_after_first:
        lines.append("Felix RSS growth (second vs last window, a figure only): " + ", ".join(
            f"{h} {g * 100:+.1f}%" for h, g in sorted(res.rss_growth_after_first.items())))
    for h, samples in sorted(res.rss_kib.items()):
        by_minute = {}
        for t, r in samples:
            by_minute.setdefault(int(t // 60), []).append(r)
        lines.append(f"  {h} Felix RSS median per minute (MiB): " + ", ".join(
            f"{statistics.median(v) / 1024:.1f}" for _, v in sorted(by_minute.items())))
    if res.cni_errors:
        lines.append(f"CNI errors: {res.cni_errors[:3]}")
    return lines
