"""BGP timings on a lab (root): session-up time, route propagation, withdrawal, reload cost.

    .venv/bin/python benchmarks/bgp_lab.py [--hosts 3] [--rounds 5] [--tor gobgp|bird]

Prints medians of:
- lab up (namespaces, datastore, calico-node on each host, every session Established);
- calico-node restart on one host -> its sessions Established again: the mesh sessions, and
  all of them (the GoBGP ToR's too); beside it the raw baseline, BIRD alone started on the same
  bird.conf the way calico-node starts it (`-R`, after the same stop) -> the same sessions.
  Both stop a node whose sessions have been up `SETTLE_BEFORE_STOP` at least, and start
  `PAUSE_AFTER_STOP` after the stop. GoBGP refuses a peer whose session dropped while it is
  idle: for `idle-hold-time-after-reset` (1 s in the lab's ToR) after a settled session, but
  for its default 5 s after one that dropped right after coming up; BIRD then retries only
  after its connect retry time (5 s). Without both waits the baseline, started right after
  the calico-node round (and with no Python start-up), measured GoBGP's hold (3.6-5.3 s)
  rather than BIRD. `--tor bird` measures the same with a BIRD ToR;
- a new block (a host's first workload): CNI ADD time, then time until another host's
  workload answers a ping;
- ToR (GoBGP only) `rib add` -> the route in every host's kernel, and `rib del` -> gone
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

PAUSE_AFTER_STOP = 1.5  # s: longer than the GoBGP ToR's idle hold after a reset (1 s)
SETTLE_BEFORE_STOP = 3.0  # s: sessions up this long are "settled" for GoBGP (above)


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
    time.sleep(SETTLE_BEFORE_STOP)  # the calico-node round has only just brought them up
    lab.stop_node(host)
    time.sleep(PAUSE_AFTER_STOP)
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


def restart_round(lab: Lab, host: str, figures: dict[str, list[float]]) -> None:
    time.sleep(SETTLE_BEFORE_STOP)
    lab.stop_node(host)
    time.sleep(PAUSE_AFTER_STOP)
    mesh, every = time_sessions(lab, host, lambda: lab.start_node(host))
    figures["restart_mesh"].append(mesh)
    figures["restart"].append(every)
    mesh, every = raw_bird_restart(lab, host)
    figures["raw_mesh"].append(mesh)
    figures["raw"].append(every)


def new_block_round(lab: Lab, host: str, name: str, figures: dict[str, list[float]]) -> None:
    t = time.monotonic()
    rec = lab.add_workload(host, name)
    figures["cni_add"].append(time.monotonic() - t)
    addr = rec["addresses"][0]
    figures["new_block"].append(wait(lambda: lab.ping("probe", addr, 0.2)))
    lab.remove_workload(name)


def tor_round(lab: Lab, hosts: list[str], r: int, figures: dict[str, list[float]]) -> None:
    def gobgp(*a):
        netns_exec(lab.state["tor"]["netns"], "gobgp", "-u", "127.0.0.1", "-p",
                   str(GOBGP_API_PORT), *a)

    prefix = f"203.0.113.{r * 16}/28"
    t = time.monotonic()
    gobgp("global", "rib", "add", prefix, "-a", "ipv4")
    wait(lambda: all(kernel_has(lab, h, prefix) for h in hosts))
    figures["tor_add"].append(time.monotonic() - t)
    t = time.monotonic()
    gobgp("global", "rib", "del", prefix, "-a", "ipv4")
    wait(lambda: not any(kernel_has(lab, h, prefix) for h in hosts))
    figures["tor_del"].append(time.monotonic() - t)


def peer_change_round(lab: Lab, hosts: list[str], r: int,
                      figures: dict[str, list[float]]) -> None:
    backend = lab.backend()
    try:
        confs = {h: os.path.join(lab.host(h)["run_dir"], "bird.conf") for h in hosts}
        before = {h: os.stat(c).st_mtime_ns for h, c in confs.items()}
        t = time.monotonic()
        ResourceClient(backend).apply({
            "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": f"bench{r}"},
            "spec": {"peerIP": f"198.18.0.{200 + r}", "asNumber": "64999"}})
        wait(lambda: all(os.stat(c).st_mtime_ns != before[h] for h, c in confs.items()))
        figures["peer_change"].append(time.monotonic() - t)
        # Remove it again: a BGPPeer nobody answers would hold back a restarted node's
        # announcements for the graceful-restart wait (README).
        ResourceClient(backend).delete("BGPPeer", f"bench{r}")
    finally:
        backend.close()


def report(args, up: float, figures: dict[str, list[float]]) -> None:
    def ms(k: str) -> str:
        return f"{statistics.median(figures[k]) * 1000:7.0f} ms" if figures[k] else "    n/a"

    tor = "GoBGP" if args.tor == "gobgp" else "BIRD"
    print(f"lab up, {args.hosts} hosts + {tor} ToR, all Established: {up:.2f} s")
    print(f"calico-node restart -> mesh sessions Established (median): {ms('restart_mesh')}"
          f"   raw BIRD start -> the same: {ms('raw_mesh')}")
    print(f"calico-node restart -> all sessions (with the {tor} ToR's): {ms('restart')}"
          f"   raw BIRD start -> the same: {ms('raw')}")
    print(f"new block: CNI ADD {ms('cni_add')}, then reachable after {ms('new_block')}")
    print(f"ToR route -> all {args.hosts} kernels: {ms('tor_add')}; withdrawal: "
          f"{ms('tor_del')}  (GoBGP -> one BIRD: ~10 ms in the recipe; GoBGP ToR only)")
    print(f"BGPPeer change -> bird.conf rewritten on every host: {ms('peer_change')}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tor", choices=("gobgp", "bird"), default="gobgp",
                        help="the ToR: GoBGP (announces routes; holds a dropped peer idle "
                        "5 s) or BIRD")
    args = parser.parse_args()
    lab = Lab(f"b{os.getpid()}"[:12])
    figures: dict[str, list[float]] = {k: [] for k in (
        "restart_mesh", "restart", "raw_mesh", "raw", "cni_add", "new_block", "tor_add",
        "tor_del", "peer_change")}
    try:
        start = time.monotonic()
        lab.up(hosts=args.hosts, tor=args.tor)
        up = time.monotonic() - start
        hosts = [h["name"] for h in lab.state["hosts"]]
        lab.add_workload(hosts[0], "probe")
        for r in range(args.rounds):
            restart_round(lab, hosts[-1], figures)
            new_block_round(lab, hosts[1 + r % (len(hosts) - 1)], f"nb{r}", figures)
            if args.tor == "gobgp":
                tor_round(lab, hosts, r, figures)
            peer_change_round(lab, hosts, r, figures)
    finally:
        lab.down()
    report(args, up, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
