"""Data path cost of Felix's ruleset (not a test; root): packets per second and TCP throughput
between two workloads on two hosts, with and without Calico's rules.

Topology, all in namespaces this benchmark makes (`cpt-<pid>-...`, deleted at the end):
two hosts joined by a veth (10.0.0.1 / 10.0.0.2), each with one workload attached as the CNI
plugin attaches it (a `cali` veth, the workload's /32 route on the host with proxy ARP, the
workload's default route via 169.254.1.1), plus 999 more local endpoints on real veths whose
peers sit in a throwaway namespace. Each host routes the other's workload block to it
(statically: BGP changes nothing on the data path). Three configurations, the same traffic:

  (a) no Calico ruleset at all;
  (b) conntrack only: one nftables table per host with a forward chain doing
      `ct state established,related accept; ct state invalid drop; accept`;
  (c) Felix's ruleset: the real calico-felix runs on each host, programmed from a local
      datastore holding 1,000 local endpoints per host (the workload among them), 10,000
      remote endpoints and 1,000 GlobalNetworkPolicies x 10 rules (benchmarks/felix_e2e.py's
      generator: the workload's `app` label is selected by 10 of them, whose 100 rules its
      packets walk), plus the policy allowing the benchmark's traffic, ordered after them.
      Felix's table is saved and Felix stopped (table and routes stay), so it takes no CPU
      from the traffic; the configurations are then applied in turn, round robin over
      --reps, (c) by reloading the saved table with `nft -f`. nft's listing is not always
      what was written (it folds `meta l4proto 6 ... th dport 80` into `tcp dport 80` and
      re-derives where the protocol test goes), so the reloaded table's bytecode is compared
      with Felix's, rule by rule, and the run stops if they differ: (c) measures the very
      bytecode Felix programmed.

Traffic: (1) 64-byte frames (18 bytes of UDP payload) from one sender that saturates one core
(a small C program using sendmmsg, compiled here with `cc`), counted as they arrive on the
receiving workload's interface; a one-way UDP flow stays conntrack state NEW, so every packet
walks the policy; (2) one TCP stream (`iperf3`, Debian's). Medians over --reps runs of
--seconds each; the ratios to (b) are the median (and range) of each rep's own ratio, the
three configurations of a rep having run back to back on a machine whose load moves.
Targets (issue 18): (c) >= 0.95 of (b) for packets per second, >= 0.98 for TCP throughput.

    sudo PYTHONPATH=. .venv/bin/python benchmarks/datapath.py [--seconds 3] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.felix_e2e import bulk_write, make_veths, policy, res  # noqa: E402
from calico.datastore.local import LocalBackend  # noqa: E402
from tests.fixtures.netns import Netns, netns_set, sh  # noqa: E402

FELIX = str(Path(sys.executable).with_name("calico-felix"))
UDP_PORT, TCP_PORT = 9000, 5201
PAYLOAD = 18  # + 8 UDP + 20 IPv4 + 14 Ethernet + 4 FCS = 64 bytes on the wire

SENDER_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#define BATCH 64
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (argc == 3 && !strcmp(argv[1], "sink")) {  /* bound so no ICMP; never reads */
        a.sin_port = htons(atoi(argv[2]));
        if (bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
        puts("ready"); fflush(stdout); pause(); return 0;
    }
    if (argc != 6) { fprintf(stderr, "usage: udpblast send IP PORT SECONDS PAYLOAD\n"); return 2; }
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    a.sin_port = htons(atoi(argv[3]));
    if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    static char buf[1500];
    struct iovec iov[BATCH]; struct mmsghdr m[BATCH];
    memset(m, 0, sizeof m);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = buf; iov[i].iov_len = atoi(argv[5]);
        m[i].msg_hdr.msg_iov = &iov[i]; m[i].msg_hdr.msg_iovlen = 1;
    }
    double start = now(), end = start + atof(argv[4]);
    unsigned long sent = 0;
    while (now() < end) { int n = sendmmsg(s, m, BATCH, 0); if (n > 0) sent += n; }
    struct rusage u; getrusage(RUSAGE_SELF, &u);
    double cpu = u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec
                 + u.ru_stime.tv_usec / 1e6;
    printf("%lu %.6f %.6f\n", sent, now() - start, cpu);
    return 0;
}
"""


def compile_sender(folder: str) -> str:
    src, binary = os.path.join(folder, "udpblast.c"), os.path.join(folder, "udpblast")
    Path(src).write_text(SENDER_C)
    sh("cc", "-O2", "-o", binary, src, timeout=120)
    return binary


# ---- topology ---------------------------------------------------------------------------------

def build(nets, n_local: int) -> dict:
    """Two hosts, a workload on each, n_local - 1 more local endpoints per host."""
    hosts = [nets.add("dphost"), nets.add("dphost")]
    wls = [nets.add("dpwl"), nets.add("dpwl")]
    spares = [nets.add("dpspare"), nets.add("dpspare")]  # the other endpoints' peers
    sh("ip", "link", "add", "eth0", "netns", hosts[0].name, "type", "veth", "peer", "name",
       "eth0", "netns", hosts[1].name)
    for i, (host, wl, spare) in enumerate(zip(hosts, wls, spares, strict=True)):
        me, other = 70 + i, 71 - i
        host.ip("addr", "add", f"10.0.0.{i + 1}/24", "dev", "eth0")
        host.ip("link", "set", "eth0", "up")
        host.sysctl("net.ipv4.ip_forward", "1")
        host.ip("route", "add", f"10.{other}.0.0/16", "via", f"10.0.0.{2 - i}")
        # Proxy ARP answers for 169.254.1.1 only if the host has a route to it.
        host.ip("route", "add", "default", "via", f"10.0.0.{2 - i}")
        sh("ip", "link", "add", "cali0", "netns", host.name, "address", "ee:ee:ee:ee:ee:ee",
           "type", "veth", "peer", "name", "eth0", "netns", wl.name)
        for key in ("conf.cali0.proxy_arp", "conf.cali0.forwarding", "neigh.cali0.proxy_delay"):
            host.sysctl(f"net.ipv4.{key}", "0" if "delay" in key else "1")
        host.ip("link", "set", "cali0", "up")
        host.ip("route", "add", f"10.{me}.0.1/32", "dev", "cali0", "scope", "link",
                "proto", "80")
        wl.ip("link", "set", "eth0", "up")
        wl.ip("addr", "add", f"10.{me}.0.1/32", "dev", "eth0")
        wl.ip("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        wl.ip("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        make_veths(host.name, spare.name, [f"cali{j}" for j in range(1, n_local)])
    return {"hosts": hosts, "wls": wls, "ips": ["10.70.0.1", "10.71.0.1"]}


def local_ip(host: int, j: int) -> str:
    return f"10.{70 + host}.{j // 250}.{j % 250 + 1}"


def endpoint_doc(node: str, j: int, ip: str) -> dict:
    labels = {"app": f"app{j % 100}", "tier": f"t{(j // 100) % 10}"}
    return res("WorkloadEndpoint", f"{node}-k8s-p{j}-eth0", {
        "orchestrator": "k8s", "node": node, "pod": f"p{j}", "endpoint": "eth0",
        "interfaceName": f"cali{j}", "ipNetworks": [f"{ip}/32"], "profiles": ["allow-all"]},
        namespace="bench", labels=labels)


def write_state(db: str, n_local: int, n_remote: int, n_policies: int) -> int:
    docs = [res("Profile", "allow-all", {"ingress": [{"action": "Allow"}],
                                         "egress": [{"action": "Allow"}]})]
    docs += [policy(j) for j in range(n_policies)]
    # The benchmark's own traffic, allowed after the 10 policies selecting app0 were walked.
    docs.append(res("GlobalNetworkPolicy", "bench-allow", {
        "selector": "app == 'app0' && tier == 't0'", "types": ["Ingress"], "order": 5000,
        "ingress": [{"action": "Allow", "protocol": proto,
                     "source": {"selector": "app == 'app0' && tier == 't0'"},
                     "destination": {"ports": [port]}}
                    for proto, port in (("UDP", UDP_PORT), ("TCP", TCP_PORT))]}))
    for h in range(2):
        docs += [endpoint_doc(f"dphost{h}", j, local_ip(h, j)) for j in range(n_local)]
    docs += [endpoint_doc(f"remote{r % 100}", 10_000 + r,
                          f"10.{80 + r // 60000}.{(r // 250) % 240}.{r % 250 + 1}")
             for r in range(n_remote - n_local)]  # the other host's locals are remote too
    backend = LocalBackend(db)
    try:
        bulk_write(backend, docs)
    finally:
        backend.close()
    return len(docs)


CONNTRACK_ONLY = """table inet cpbench {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ct state invalid drop
    accept
  }
}
"""


# ---- traffic ----------------------------------------------------------------------------------

def rx_packets(wl: Netns) -> int:
    doc = json.loads(sh("ip", "-n", wl.name, "-s", "-j", "link", "show", "dev", "eth0").stdout)
    return doc[0]["stats64"]["rx"]["packets"]


def udp_pps(topo: dict, blaster: str, seconds: float) -> tuple[float, float]:
    """(packets per second, packets per CPU-second of the sender). The second is the one a
    loaded machine disturbs less: the kernel charges the forwarding work done in the sender's
    context (both hosts' stacks, the veths being synchronous) to the sender, and a core it
    shares with other work gives it fewer seconds, not dearer packets."""
    sender, receiver = topo["wls"]
    before = rx_packets(receiver)
    out = sender.run(blaster, "send", topo["ips"][1], str(UDP_PORT), str(seconds),
                     str(PAYLOAD), timeout=seconds + 60).stdout.split()
    received = rx_packets(receiver) - before
    return received / float(out[1]), received / max(float(out[2]), 1e-3)


def tcp_gbps(topo: dict, seconds: float) -> float:
    sender, receiver = topo["wls"]
    server = receiver.popen("iperf3", "-s", "-1", "-p", str(TCP_PORT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if f":{TCP_PORT} " in receiver.run("ss", "-Hltn").stdout:
                break
            time.sleep(0.1)  # the server is not listening yet
        proc = sender.run("iperf3", "-c", topo["ips"][1], "-p", str(TCP_PORT), "-t",
                          str(seconds), "-J", check=False, timeout=seconds + 60)
        doc = json.loads(proc.stdout or "{}")
        if proc.returncode != 0 or "error" in doc or "end" not in doc:
            raise RuntimeError(f"iperf3 failed: {doc.get('error')} {proc.stderr[-500:]}")
        return doc["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        server.kill()
        server.wait()


def measure(topo: dict, blaster: str, seconds: float) -> tuple[float, float, float]:
    """One UDP run and one TCP run: (packets per second, Gbit/s, packets per CPU-second)."""
    sink = topo["wls"][1].popen(blaster, "sink", str(UDP_PORT), stdout=subprocess.PIPE)
    try:
        sink.stdout.readline()
        pps, per_cpu = udp_pps(topo, blaster, seconds)
    finally:
        sink.kill()
        sink.wait()
    return pps, tcp_gbps(topo, seconds), per_cpu


# ---- Felix ------------------------------------------------------------------------------------

def start_felix(topo: dict, db: str, tmp: str) -> list[subprocess.Popen]:
    env = {**os.environ, "DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": db,
           "FELIX_HEALTHENABLED": "true", "FELIX_LOGSEVERITYSCREEN": "Warning"}
    procs = []
    for i, host in enumerate(topo["hosts"]):
        log = open(os.path.join(tmp, f"felix{i}.log"), "w")  # noqa: SIM115
        procs.append(host.popen(FELIX, "--hostname", f"dphost{i}", env=env, stdout=log,
                                stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 600
    for i, host in enumerate(topo["hosts"]):
        while host.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                       "http://localhost:9099/readiness", check=False).stdout != "200":
            if procs[i].poll() is not None or time.monotonic() > deadline:
                log_text = Path(tmp, f"felix{i}.log").read_text()[-3000:]
                raise RuntimeError(f"felix on dphost{i} did not get ready: {log_text}")
            time.sleep(0.2)
    return procs


def ruleset_size(host: Netns) -> tuple[int, int]:
    """(rules, chains) in Felix's table on one host."""
    text = host.run("nft", "list", "table", "inet", "calico", timeout=300).stdout
    chains = text.count("\n\tchain ")
    rules = sum(1 for line in text.splitlines() if line.startswith("\t\t")
                and not line.strip().startswith(("type ", "policy ", "elements", "}")))
    return rules, chains


def bytecode(host: Netns) -> list[str]:
    """The expressions of every rule in our table, in order (`nft --debug=netlink`), without
    the handles and set ids that differ between two loads of the same text."""
    text = host.run("nft", "--debug=netlink", "list", "table", "inet", "calico",
                    timeout=600).stdout
    return [line.strip() for line in text.splitlines() if line.startswith("  [")]


def felix_tables(topo: dict, db: str, tmp: str) -> tuple[list[str], list[str], str]:
    """Run the real Felix on both hosts until programmed; return each host's `calico`
    table as Felix left it (`nft list` output, reloadable), the receiving host's bytecode and
    a line about it. Felix is then stopped (its table and routes stay), so it takes no CPU
    from the traffic on 2 cores."""
    t0 = time.perf_counter()
    felixes = start_felix(topo, db, tmp)
    took = time.perf_counter() - t0
    try:
        tables = [host.run("nft", "-s", "list", "table", "inet", "calico", timeout=300).stdout
                  for host in topo["hosts"]]
        code = bytecode(topo["hosts"][1])
    finally:
        for proc in felixes:
            proc.terminate()
            proc.wait(30)
    rules, chains = ruleset_size(topo["hosts"][1])
    return tables, code, (f"both Felixes programmed in {took:.1f}s; Felix's table on the receiving "
                    f"host: {rules} rules in {chains} chains")


def apply(topo: dict, config: str, tables: list[str]) -> None:
    """Put the hosts' nftables in `config` (each host holds at most one of our tables)."""
    for host, table in zip(topo["hosts"], tables, strict=True):
        for name in ("cpbench", "calico"):
            host.run("nft", "delete", "table", "inet", name, check=False)
        if config == "b":
            host.run("nft", "-f", "-", input=CONNTRACK_ONLY)
        elif config == "c":
            host.run("nft", "-f", "-", input=table, timeout=300)


def check_reload(topo: dict, tables: list[str], felix_code: list[str]) -> None:
    """Stop unless reloading the saved listing gives the bytecode Felix programmed."""
    apply(topo, "c", tables)
    reloaded = bytecode(topo["hosts"][1])
    if reloaded != felix_code:
        diff = next(i for i, (a, b) in enumerate(zip(reloaded, felix_code, strict=False))
                    if a != b) if len(reloaded) == len(felix_code) else None
        sys.exit(f"datapath: the reloaded table's bytecode differs from Felix's "
                 f"({len(reloaded)} vs {len(felix_code)} expressions; first difference at "
                 f"{diff}): (c) would not measure Felix's ruleset")
    print(f"setup: the reloaded table's bytecode is Felix's ({len(reloaded)} expressions)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--local", type=int, default=1000)
    ap.add_argument("--remote", type=int, default=10000)
    ap.add_argument("--policies", type=int, default=1000)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("datapath: needs root (network namespaces)")
    runs: dict[str, list[tuple[float, ...]]] = {"a": [], "b": [], "c": []}
    with tempfile.TemporaryDirectory() as tmp, netns_set() as nets:
        blaster = compile_sender(tmp)
        t0 = time.perf_counter()
        topo = build(nets, opts.local)
        for _ in range(10):  # the first may find no neighbour entry yet (ENOBUFS)
            if topo["wls"][0].run("ping", "-c", "1", "-W", "5", topo["ips"][1],
                                  check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            sys.exit("datapath: the two workloads cannot reach each other")
        print(f"setup: 2 hosts, 2 x {opts.local} local endpoints in "
              f"{time.perf_counter() - t0:.1f}s")
        db = os.path.join(tmp, "calico.db")
        count = write_state(db, opts.local, opts.remote, opts.policies)
        tables, code, about = felix_tables(topo, db, tmp)
        print(f"setup: {count} resources; {about}")
        check_reload(topo, tables, code)
        # Round robin, so that a change in the machine's load hits every configuration.
        for _ in range(opts.reps):
            for config in runs:
                apply(topo, config, tables)
                runs[config].append(measure(topo, blaster, opts.seconds))
    report(runs, opts)


def paired(runs: dict[str, list[tuple[float, ...]]], key: str, metric: int) -> list[float]:
    """Each rep's figure for `key` over (b)'s in the same rep: the configurations of one rep
    run back to back, so a change in the machine's load between reps cancels out."""
    return [r[metric] / b[metric] for r, b in zip(runs[key], runs["b"], strict=True)]


def report(runs: dict[str, list[tuple[float, ...]]], opts) -> None:
    labels = {"a": "(a) no Calico ruleset", "b": "(b) conntrack only",
              "c": "(c) Felix's ruleset"}
    print(f"Data path between two workloads on two hosts, medians of {opts.reps} x "
          f"{opts.seconds:g} s; ratio: median of each rep's ratio to (b) [lowest-highest]:")
    heads = ("64-byte UDP pps", "UDP per CPU-s", "TCP Gbit/s")
    print(f"  {'':24s}" + "".join(f" {h:>15s} {'ratio':>17s}" for h in heads))
    ratios = {}
    for key in "abc":
        ratios[key] = [paired(runs, key, i) for i in (0, 2, 1)]
        cells = [f" {statistics.median(r[i] for r in runs[key]):15,.{2 if i == 1 else 0}f} "
                 f"{statistics.median(x):5.2f} [{min(x):4.2f}-{max(x):4.2f}]"
                 for i, x in zip((0, 2, 1), ratios[key], strict=True)]
        print(f"  {labels[key]:24s}" + "".join(cells))
    print(f"  (c): Felix's ruleset for {opts.local} local, {opts.remote} remote endpoints, "
          f"{opts.policies} policies x 10 rules")
    print("targets: (c) >= 0.95 of (b) for pps ({:.2f}; per CPU-second {:.2f}), >= 0.98 for "
          "TCP ({:.2f})".format(*(statistics.median(x) for x in ratios["c"])))


if __name__ == "__main__":
    main()
