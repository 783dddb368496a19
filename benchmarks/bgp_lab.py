"""BGP timings on a lab (root): session-up time, route propagation, withdrawal, reload cost.

    .venv/bin/python benchmarks/bgp_lab.py [--hosts 3] [--rounds 5]

Prints medians of:
- lab up (namespaces, datastore, calico-node on each host, every session Established);
- calico-node restart on one host -> all its sessions Established again;
- a new block (a host's first workload): CNI ADD time, then time until another host's
  workload answers a ping;
- ToR (GoBGP) `rib add` -> the route in every host's kernel, and `rib del` -> gone
  (baseline: the same between GoBGP and one BIRD, as in shared/recipes/bgp-peers.md);
- a BGPPeer change -> new bird.conf written and `birdc configure` done on every host.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from calico.datastore.client import ResourceClient  # noqa: E402
from calico.lab.lab import Lab  # noqa: E402
from calico.lab.proc import netns_exec, sh  # noqa: E402
from calico.lab.tor import GOBGP_API_PORT  # noqa: E402


def wait(cond, timeout=10.0, interval=0.005) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise TimeoutError
        time.sleep(interval)
    return time.monotonic() - start


def kernel_has(lab: Lab, host: str, prefix: str) -> bool:
    out = sh("ip", "-n", lab.host(host)["netns"], "route", "show", prefix).stdout
    return bool(out.strip())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lab = Lab(f"b{os.getpid()}"[:12])
    figures: dict[str, list[float]] = {k: [] for k in (
        "restart", "cni_add", "new_block", "tor_add", "tor_del", "peer_change")}
    try:
        start = time.monotonic()
        lab.up(hosts=args.hosts, tor="gobgp")
        up = time.monotonic() - start
        hosts = [h["name"] for h in lab.state["hosts"]]
        lab.add_workload(hosts[0], "probe")
        probe_ns = lab.state["tor"]["netns"]

        def gobgp(*a):
            netns_exec(probe_ns, "gobgp", "-u", "127.0.0.1", "-p", str(GOBGP_API_PORT), *a)

        for r in range(args.rounds):
            last = hosts[-1]
            lab.stop_node(last)
            t = time.monotonic()
            lab.start_node(last)
            lab.wait_established(30, hosts=[last])
            figures["restart"].append(time.monotonic() - t)

            t = time.monotonic()
            rec = lab.add_workload(hosts[1 + r % (len(hosts) - 1)], f"nb{r}")
            figures["cni_add"].append(time.monotonic() - t)
            addr = rec["addresses"][0]
            figures["new_block"].append(wait(lambda a=addr: lab.ping("probe", a, 0.2)))
            lab.remove_workload(f"nb{r}")

            prefix = f"203.0.113.{r * 16}/28"
            t = time.monotonic()
            gobgp("global", "rib", "add", prefix, "-a", "ipv4")
            wait(lambda p=prefix: all(kernel_has(lab, h, p) for h in hosts))
            figures["tor_add"].append(time.monotonic() - t)
            t = time.monotonic()
            gobgp("global", "rib", "del", prefix, "-a", "ipv4")
            wait(lambda p=prefix: not any(kernel_has(lab, h, p) for h in hosts))
            figures["tor_del"].append(time.monotonic() - t)

            backend = lab.backend()
            try:
                confs = {h: os.path.join(lab.host(h)["run_dir"], "bird.conf") for h in hosts}
                before = {h: os.stat(c).st_mtime_ns for h, c in confs.items()}
                t = time.monotonic()
                ResourceClient(backend).apply({
                    "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                    "metadata": {"name": f"bench{r}"},
                    "spec": {"peerIP": f"198.18.0.{200 + r}", "asNumber": "64999"}})
                wait(lambda b=before, cs=confs: all(os.stat(c).st_mtime_ns != b[h]
                                                    for h, c in cs.items()))
                figures["peer_change"].append(time.monotonic() - t)
            finally:
                backend.close()
    finally:
        lab.down()

    def ms(k: str) -> str:
        return f"{statistics.median(figures[k]) * 1000:7.0f} ms"

    print(f"lab up, {args.hosts} hosts + GoBGP ToR, all Established: {up:.2f} s")
    print(f"calico-node restart -> sessions Established (median): {ms('restart')}")
    print(f"new block: CNI ADD {ms('cni_add')}, then reachable after {ms('new_block')}")
    print(f"ToR route -> all {len(hosts)} kernels: {ms('tor_add')}; withdrawal: "
          f"{ms('tor_del')}  (GoBGP -> one BIRD: ~10 ms in the recipe)")
    print(f"BGPPeer change -> bird.conf rewritten on every host: {ms('peer_change')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
