"""Benchmark: the real calico-felix process end to end, datastore write → kernel.

Load (defaults): 1,000 local workload endpoints (real veths `cali<N>` in a throwaway host
namespace), 10,000 remote endpoints, 1,000 GlobalNetworkPolicies × 10 rules, ~1,100 distinct
selectors (100 policy selectors, 1,000 source selectors, each matching ~11 endpoints, all
IPv4). Resources are written to a local
datastore in a temp dir before Felix starts.

Prints:
- cold start: process start → readiness (everything programmed), and Felix's RSS;
- one policy change, one label change (a remote endpoint joins a selector's IP set) and one
  endpoint add (route to a new local endpoint): p50/p99 over --runs, each timed from the
  datastore write returning to the kernel holding it (a netlink dump of the one chain or set,
  polled every 0.5 ms; `ip monitor` for routes);
- the raw kernel cost of the same work measured in the same run: `nft -f` of Felix's final
  table into an empty namespace, `ip -batch` of the same routes, and the one-chain /
  one-element / one-endpoint (2 chains, 2 map entries, 2 routes) incremental equivalents;
  and Felix's ratio to each.

    PYTHONPATH=. .venv/bin/python benchmarks/felix_e2e.py [--local 1000] [--remote 10000]
        [--policies 1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from calico.api import validate
from calico.datastore.client import ResourceClient, encode
from calico.datastore.kv import Put
from calico.datastore.local import LocalBackend
from calico.felix.dataplane.nft.names import policy_chain_name
from calico.felix.messages import PolicyID
from tests.fixtures.netns import netns_set, sh

HOST = "benchhost"
FELIX = str(Path(sys.executable).with_name("calico-felix"))


def res(kind: str, name: str, spec: dict, namespace: str | None = None,
        labels: dict | None = None) -> dict:
    meta: dict = {"name": name, "labels": labels or {}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}


def endpoint(i: int, node: str, local: bool) -> dict:
    ip = f"10.{64 + (0 if local else 1 + i // 60000)}.{(i // 250) % 240}.{i % 250 + 1}"
    # app and tier independent: each of the 1,000 (app, tier) source selectors matches ~11.
    labels = {"app": f"app{i % 100}", "tier": f"t{(i // 100) % 10}"}
    return res("WorkloadEndpoint", f"{node.replace('-', '--')}-k8s-p{i}-eth0", {
        "orchestrator": "k8s", "node": node, "pod": f"p{i}", "endpoint": "eth0",
        "interfaceName": f"cali{i}", "ipNetworks": [f"{ip}/32"], "profiles": ["allow-all"]},
        namespace="bench", labels=labels)


def policy(j: int, port_shift: int = 0) -> dict:
    rules = []
    for k in range(10):
        rules.append({"action": "Allow", "protocol": "TCP",
                      "source": {"selector": f"app == 'app{(j + k) % 100}' && tier == 't{k}'"},
                      "destination": {"ports": [1000 + (j * 10 + k + port_shift) % 60000]}})
    return res("GlobalNetworkPolicy", f"pol-{j}", {
        "selector": f"app == 'app{j % 100}'", "types": ["Ingress"], "ingress": rules,
        "order": j})


def bulk_write(backend: LocalBackend, docs: list[dict]) -> None:
    for i in range(0, len(docs), 500):
        ops = []
        for doc in docs[i:i + 500]:
            r = validate(doc)
            ops.append(Put(r.key(), encode(r)))
        backend.txn([], ops)


class Monitor:
    """Lines of `nft monitor` / `ip monitor route` in a namespace, timestamped on arrival."""

    def __init__(self, ns: str, *cmd: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put((time.perf_counter(), line))

    def drain(self) -> None:
        while not self.lines.empty():
            self.lines.get_nowait()

    def wait(self, needle: str, timeout: float = 60.0, ip: bool = False) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            at, line = self.lines.get(timeout=max(0.01, deadline - time.perf_counter()))
            if has_ip(line, needle) if ip else needle in line:
                return at

    def close(self) -> None:
        self.proc.kill()


def has_ip(text: str, ip: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d/])", text) is not None


class NftProbe:
    """Reads one chain's rules or one set's elements straight from nf_tables over netlink
    (a filtered dump: well under a millisecond), on a thread inside the host namespace, so
    a change is timed when the kernel holds it, not when a poll of `nft list` (which loads
    the whole table: ~120-250 ms here) comes round."""

    GETRULE, GETSETELEM, DONE = 7, 13, 3

    def __init__(self, ns: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from calico.felix.dataplane.netlink import enter_netns

        self._pool = ThreadPoolExecutor(1, initializer=enter_netns, initargs=(ns,))
        self._sock = self._pool.submit(
            socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 12).result()  # NETFILTER
        self._seq = 0

    def _dump(self, kind: int, obj: str) -> bytes:
        def attr(t: int, v: bytes) -> bytes:
            v += b"\0"
            return struct.pack("HH", len(v) + 4, t) + v + b"\0" * (-len(v) % 4)

        self._seq += 1
        body = struct.pack("BBH", 1, 0, 0) + attr(1, b"calico") + attr(2, obj.encode())
        msg = struct.pack("IHHII", 16 + len(body), (10 << 8) | kind, 0x301, self._seq, 0) + body

        def run() -> bytes:
            self._sock.send(msg)
            out = []
            while True:
                data = self._sock.recv(1 << 20)
                out.append(data)
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("IH", data, offset)
                    if kind in (self.DONE, 2):  # end of the dump, or an error
                        return b"".join(out)
                    offset += (length + 3) & ~3
        return self._pool.submit(run).result()

    def chain(self, name: str) -> tuple[bytes, ...]:
        """The chain's rule comments (NFTA_RULE_USERDATA), in order."""
        data, out, offset = self._dump(self.GETRULE, name), [], 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("IH", data, offset)
            if kind == (10 << 8) | 6:  # NFT_MSG_NEWRULE
                pos = offset + 20
                while pos + 4 <= offset + length:
                    alen, atype = struct.unpack_from("HH", data, pos)
                    if atype & 0x7fff == 7:
                        out.append(data[pos + 4:pos + alen])
                    pos += (alen + 3) & ~3
            offset += (length + 3) & ~3
        return tuple(out)

    def set(self, name: str) -> bytes:
        return self._dump(self.GETSETELEM, name)

    def wait(self, read, done, timeout: float = 60.0) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if done(read()):
                return time.perf_counter()
            time.sleep(0.0005)
        raise TimeoutError("change never reached the kernel")


def timed(cmd: list[str], stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{cmd[:5]} failed: {proc.stderr[:500]}")
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_veths(host: str, wls: str, names: list[str]) -> None:
    batch = "".join(f"link add {n} address ee:ee:ee:ee:ee:ee type veth peer name w{n[4:]} "
                    f"netns {wls}\nlink set {n} up\n" for n in names)
    sh("ip", "-n", host, "-batch", "-", input=batch, timeout=600)
    sh("ip", "-n", wls, "-batch", "-", input="".join(f"link set w{n[4:]} up\n" for n in names),
       timeout=600)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--local", type=int, default=1000)
    ap.add_argument("--remote", type=int, default=10000)
    ap.add_argument("--policies", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--profile", metavar="FILE", help="run Felix under cProfile, write FILE")
    ap.add_argument("--log", metavar="FILE", help="keep Felix's log in FILE")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, netns_set() as nets:
        host, wls, scratch = nets.add("bhost"), nets.add("bwls"), nets.add("bscr")
        sh("ip", "link", "add", "eth0", "netns", host.name, "type", "veth", "peer", "name",
           "uplink", "netns", wls.name)
        host.ip("link", "set", "eth0", "up")
        wls.ip("link", "set", "uplink", "up")
        host.ip("addr", "add", "10.0.0.1/24", "dev", "eth0")
        host.ip("route", "add", "default", "via", "10.0.0.2")
        t0 = time.perf_counter()
        make_veths(host.name, wls.name,
                   [f"cali{i}" for i in range(args.local + args.runs)])
        print(f"setup: {args.local + args.runs} veths in {time.perf_counter() - t0:.1f}s")

        db = str(Path(tmp) / "calico.db")
        backend = LocalBackend(db)
        client = ResourceClient(backend)
        t0 = time.perf_counter()
        docs = [res("Profile", "allow-all", {"ingress": [{"action": "Allow"}],
                                             "egress": [{"action": "Allow"}]})]
        docs += [policy(j) for j in range(args.policies)]
        docs += [endpoint(i, HOST, True) for i in range(args.local)]
        docs += [endpoint(i, f"remote{i % 100}", False) for i in range(args.remote)]
        bulk_write(backend, docs)
        print(f"setup: {len(docs)} resources written in {time.perf_counter() - t0:.1f}s")

        env = {**os.environ, "DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": db,
               "FELIX_HEALTHENABLED": "true", "FELIX_LOGSEVERITYSCREEN": os.environ.get("FELIX_LOGSEVERITYSCREEN", "Warning"),
               "FELIX_ROUTEREFRESHINTERVAL": "0", "FELIX_NFTABLESREFRESHINTERVAL": "0"}
        log = open(Path(tmp) / "felix.log", "w")  # noqa: SIM115
        t0 = time.perf_counter()
        felix = ([sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "calico.felix"]
                 if args.profile else [FELIX])
        proc = subprocess.Popen(["ip", "netns", "exec", host.name, *felix, "--hostname", HOST],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while host.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "http://localhost:9099/readiness", check=False).stdout != "200":
                if proc.poll() is not None:
                    sys.exit(f"felix exited: {(Path(tmp) / 'felix.log').read_text()}")
                time.sleep(0.1)
            cold = time.perf_counter() - t0
            rss = rss_mb(proc.pid)
            print(f"cold start to programmed: {cold:.2f}s, Felix RSS {rss:.0f} MB")
            try:
                measure_changes(args, host.name, client, scratch.name, cold)
            except Exception:
                print((Path(tmp) / "felix.log").read_text()[-3000:])
                raise
            print(f"Felix RSS after the changes: {rss_mb(proc.pid):.0f} MB")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
            if args.log:
                shutil.copy(Path(tmp) / "felix.log", args.log)
            backend.close()


def measure_changes(args, host: str, client: ResourceClient, scratch: str, cold: float) -> None:
    # The set of selector "app == 'app10' && tier == 't0'": the one holding endpoint 10's IP.
    ip10 = endpoint(10, "remote10", False)["spec"]["ipNetworks"][0].split("/")[0]
    table = sh("ip", "netns", "exec", host, "nft", "list", "table", "inet", "calico",
               timeout=600).stdout
    current = ""
    for line in table.splitlines():
        if line.strip().startswith("set "):
            current = line.split()[1]
        if has_ip(line, ip10) and current.startswith("s4-"):
            target_set = current
            break
    else:
        raise SystemExit(f"no IP set holds {ip10}")
    route_mon = Monitor(host, "ip", "monitor", "route")
    for k in range(600):  # wait until the monitor is listening
        sh("ip", "-n", host, "route", "add", f"192.0.2.{k % 250 + 1}/32", "dev", "eth0")
        try:
            route_mon.wait(f"192.0.2.{k % 250 + 1}", timeout=0.5, ip=True)
            break
        except queue.Empty:
            continue
        finally:
            sh("ip", "-n", host, "route", "del", f"192.0.2.{k % 250 + 1}/32", "dev", "eth0")
    probe = NftProbe(host)
    lat: dict[str, list[float]] = {"policy change": [], "label change": [], "endpoint add": []}
    for r in range(args.runs):
        doc = policy(r % args.policies, port_shift=7 + r)
        chain = policy_chain_name(PolicyID(doc["metadata"]["name"]), inbound=True)
        before = probe.chain(chain)
        t0 = time.perf_counter()
        client.apply(doc)
        lat["policy change"].append(probe.wait(lambda c=chain: probe.chain(c),
                                               lambda now, b=before: now != b) - t0)

        i = 20 * r + 1  # an existing remote endpoint (not app10) relabelled into app10/t0's set
        doc = endpoint(i, f"remote{i % 100}", False)
        doc["metadata"]["labels"] = {"app": "app10", "tier": "t0"}
        ip = doc["spec"]["ipNetworks"][0].split("/")[0]
        packed = socket.inet_aton(ip)
        t0 = time.perf_counter()
        client.apply(doc)
        lat["label change"].append(probe.wait(lambda: probe.set(target_set),
                                              lambda now, p=packed: p in now) - t0)

        route_mon.drain()
        i = args.local + r
        doc = endpoint(i, HOST, True)
        ip = doc["spec"]["ipNetworks"][0].split("/")[0]
        t0 = time.perf_counter()
        client.apply(doc)
        lat["endpoint add"].append(route_mon.wait(ip, ip=True) - t0)
    route_mon.close()

    # The raw kernel cost of the same work, measured now.
    table = sh("ip", "netns", "exec", host, "nft", "list", "table", "inet", "calico",
               timeout=600).stdout
    raw_cold = timed(["ip", "netns", "exec", scratch, "nft", "-f", "-"], table)
    routes = sh("ip", "-n", host, "route", "show", "proto", "80").stdout.splitlines()
    batch = "".join(f"route add {line.strip()} proto 80\n" for line in routes)
    devs = sorted({line.split(" dev ")[1].split()[0] for line in routes})
    sh("ip", "-n", scratch, "-batch", "-", timeout=600, input="".join(
        f"link add {d} type veth peer name x{d[4:]}\nlink set {d} up\nlink set x{d[4:]} up\n"
        for d in devs))
    raw_routes = timed(["ip", "-n", scratch, "-batch", "-"], batch)
    chain = policy_chain_name(PolicyID("pol-0"), inbound=True)
    body = sh("ip", "netns", "exec", scratch, "nft", "list", "chain", "inet", "calico",
              chain).stdout
    rules = [ln.strip() for ln in body.splitlines()[2:-2] if ln.strip()]
    one_chain = f"flush chain inet calico {chain}\n" + "".join(
        f"add rule inet calico {chain} {rule}\n" for rule in rules)
    raw_policy = [timed(["ip", "netns", "exec", scratch, "nft", "-f", "-"], one_chain)
                  for _ in range(args.runs)]
    a_set = next(line.split()[1] for line in table.splitlines()
                 if line.strip().startswith("set s4-"))
    nft_f = ["ip", "netns", "exec", scratch, "nft", "-f", "-"]
    raw_label_cli = [timed(["ip", "netns", "exec", scratch, "nft", "add", "element", "inet",
                            "calico", a_set, f"{{ 10.99.0.{k + 1} }}"]) for k in range(5)]
    raw_label = [timed(nft_f, f"add set inet calico {a_set} {{ type ipv4_addr; flags interval; "
                              f"elements = {{ 10.99.1.{k + 1} }} }}\n") for k in range(args.runs)]
    # An endpoint add: its two chains (cali0's rules), its two map entries, its two routes.
    ep_rules = {}
    for kind in ("fw", "tw"):
        listing = sh("ip", "netns", "exec", scratch, "nft", "list", "chain", "inet", "calico",
                     f"{kind}-{devs[0]}").stdout
        ep_rules[kind] = [ln.strip() for ln in listing.splitlines()[2:-2] if ln.strip()]
    raw_ep = []
    for k in range(args.runs):
        script = "".join(f"add chain inet calico {kind}-raw{k}\n" + "".join(
            f"add rule inet calico {kind}-raw{k} {rule}\n" for rule in rules)
            for kind, rules in ep_rules.items())
        script += "".join(f'add map inet calico wl-{d} {{ type ifname : verdict; elements = '
                          f'{{ "raw{k}" : goto {kind}-raw{k} }} }}\n'
                          for d, kind in (("from", "fw"), ("to", "tw")))
        raw_ep.append(timed(nft_f, script) + timed(
            ["ip", "-n", scratch, "-batch", "-"],
            f"route add 10.98.0.{k + 1}/32 dev {devs[0]} proto 80\n"
            f"route add fd98::{k + 1}/128 dev {devs[0]} proto 80\n"))

    reads = []
    for _ in range(20):
        t0 = time.perf_counter()
        probe.chain(chain)
        reads.append(time.perf_counter() - t0)
    print(f"(changes are detected by a netlink dump of the one chain / set: "
          f"{statistics.median(reads) * 1000:.2f} ms per read)")
    print(f"raw: nft -f of Felix's final table {raw_cold:.2f}s; ip -batch of its "
          f"{len(routes)} routes {raw_routes:.3f}s; cold start / (nft + ip) = "
          f"{cold / (raw_cold + raw_routes):.1f}x")
    print(f"raw: one address into a set: `nft add element` "
          f"{statistics.median(raw_label_cli) * 1000:.1f} ms (nft dumps every interval set "
          f"first); `nft -f` of add set {{ elements }} {statistics.median(raw_label) * 1000:.1f} ms")
    raws = {"policy change": raw_policy, "label change": raw_label, "endpoint add": raw_ep}
    for name, values in lat.items():
        p50, p99 = pct(values, 50) * 1000, pct(values, 99) * 1000
        r50 = statistics.median(raws[name]) * 1000
        print(f"{name:14s} write->kernel p50 {p50:7.1f} ms  p99 {p99:7.1f} ms   "
              f"raw p50 {r50:6.1f} ms   ratio {p50 / r50:5.1f}x")
    print("(raw: policy = nft -f of one policy chain rewritten; label = nft -f of one address "
          "into one set; endpoint add = nft -f of its 2 chains + 2 map entries, then ip -batch "
          "of its 2 routes)")


if __name__ == "__main__":
    main()
