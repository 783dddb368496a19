"""BGP timings on a lab (root): session-up time, route propagation, withdrawal, reload cost.

    .venv/bin/python benchmarks/bgp_lab.py [--hosts 3] [--rounds 5]

Prints medians of:
- lab up (namespaces, datastore, calico-node on each host, every session Established);
- calico-node restart on one host -> its sessions Established again: the mesh sessions, and
  all of them (the GoBGP ToR's too); beside it the raw baseline, BIRD alone started on the same
  bird.conf in the same way (`-R`, after a graceful-restart stop) -> the same sessions.
  GoBGP holds a peer whose session dropped idle for a fixed 5 s (its `HoldTimeIdle`), so the
  ToR session needs about 5 s whoever restarts; the ToR keeps the host's routes meanwhile
  (graceful restart), so traffic does not notice;
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
import subprocess
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


def established(lab: Lab, host: str, mesh_only: bool) -> bool:
    peers = [p for p in lab.peers(host) if not mesh_only or p["type"] == "node-to-node mesh"]
    want = len(lab.state["hosts"]) - 1 + (0 if mesh_only else 1)
    return sum(1 for p in peers if p["established"]) >= want


def time_sessions(lab: Lab, host: str, start) -> tuple[float, float]:
    """(seconds until the mesh sessions, until all sessions are Established) after start()."""
    t = time.monotonic()
    start()
    wait(lambda: established(lab, host, True), 30, 0.01)
    mesh = time.monotonic() - t
    wait(lambda: established(lab, host, False), 30, 0.01)
    return mesh, time.monotonic() - t


def raw_bird_restart(lab: Lab, host: str) -> tuple[float, float]:
    """BIRD alone, on the host's bird.conf, as calico-node starts it: the baseline."""
    h = lab.host(host)
    lab.stop_node(host)
    run = h["run_dir"]
    sock = os.path.join(run, "bird.ctl")
    procs = []

    def start():
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", h["netns"], "bird", "-f", "-R", "-c",
             os.path.join(run, "bird.conf"), "-s", sock, "-P", os.path.join(run, "bird.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    try:
        return time_sessions(lab, host, start)
    finally:
        subprocess.run(["birdc", "-s", sock, "graceful", "restart"], capture_output=True)
        procs[0].wait(10)
        lab.start_node(host)
        lab.wait_established(30, hosts=[host])


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
        "restart_mesh", "restart", "raw_mesh", "raw", "cni_add", "new_block", "tor_add", "tor_del", "peer_change")}
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
            mesh, every = time_sessions(lab, last, lambda h=last: lab.start_node(h))
            figures["restart_mesh"].append(mesh)
            figures["restart"].append(every)
            mesh, every = raw_bird_restart(lab, last)
            figures["raw_mesh"].append(mesh)
            figures["raw"].append(every)

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
                # Remove it again: a BGPPeer nobody answers would hold back a restarted
                # node's announcements for the graceful-restart wait (README).
                ResourceClient(backend).delete("BGPPeer", f"bench{r}")
            finally:
                backend.close()
    finally:
        lab.down()

    def ms(k: str) -> str:
        return f"{statistics.median(figures[k]) * 1000:7.0f} ms"

    print(f"lab up, {args.hosts} hosts + GoBGP ToR, all Established: {up:.2f} s")
    print(f"calico-node restart -> mesh sessions Established (median): {ms('restart_mesh')}"
          f"   raw BIRD start -> the same: {ms('raw_mesh')}")
    print(f"calico-node restart -> all sessions (with the GoBGP ToR's): {ms('restart')}"
          f"   raw BIRD start -> the same: {ms('raw')}")
    print(f"new block: CNI ADD {ms('cni_add')}, then reachable after {ms('new_block')}")
    print(f"ToR route -> all {len(hosts)} kernels: {ms('tor_add')}; withdrawal: "
          f"{ms('tor_del')}  (GoBGP -> one BIRD: ~10 ms in the recipe)")
    print(f"BGPPeer change -> bird.conf rewritten on every host: {ms('peer_change')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
