"""CNI plugin latency (not a test; root): what one ADD and one DEL cost, and why.

Measured on the same machine in the same run, medians over --rounds:
- `VERSION`: an interpreter start plus the skeleton (the floor of any plugin call);
- `ADD` and `DEL` of the `calico` binary into a fresh namespace (local datastore, calico-ipam
  in-process, IPv4 + IPv6);
- the raw kernel baseline: the same veth, addresses, routes and sysctls made with iproute2
  commands (`ip link add ... netns`, `ip addr`, `ip route`, `sysctl`), no datastore;
- --parallel ADDs started at once (wall time until all answered, and per ADD).

    sudo .venv/bin/python benchmarks/cni_add_del.py [--rounds 10] [--parallel 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.unit.cni.driver import CALICO, make_store, netconf, run  # noqa: E402


def _netns() -> str:
    name = f"cpb-cni-{uuid.uuid4().hex[:6]}"  # not cpt-: test tiers reap those at start
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def _del_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _baseline(ns: str, i: int) -> None:
    host = f"calib{i:07d}"
    cmds = [
        ["ip", "link", "add", host, "address", "ee:ee:ee:ee:ee:ee", "type", "veth", "peer",
         "name", "eth0", "netns", ns],
        ["sysctl", "-qw", f"net.ipv4.conf.{host}.proxy_arp=1",
         f"net.ipv4.neigh.{host}.proxy_delay=0", f"net.ipv4.conf.{host}.forwarding=1"],
        ["ip", "link", "set", host, "up"],
        ["ip", "route", "add", f"10.78.0.{i + 1}/32", "dev", host, "scope", "link"],
        ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ["ip", "-n", ns, "addr", "add", f"10.78.0.{i + 1}/32", "dev", "eth0"],
        ["ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"],
        ["ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
    ]
    for cmd in cmds:
        subprocess.run(cmd, check=True)
    subprocess.run(["ip", "link", "del", host], check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=10)
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("cni_add_del: needs root (network namespaces)")
    tmp = tempfile.mkdtemp(prefix="cpt-bench-cni-")
    store = os.path.join(tmp, "calico.db")
    make_store(store)
    conf = netconf(store, tmp, ipam={"type": "calico-ipam", "assign_ipv6": "true"})
    spaces: list[str] = []
    try:
        version = [_timed(lambda: run(CALICO, "VERSION", {"cniVersion": "1.0.0"}))
                   for _ in range(opts.rounds)]
        adds, dels, base = [], [], []
        for i in range(opts.rounds):
            ns = _netns()
            spaces.append(ns)
            kw = {"container_id": f"bench{i}", "netns": f"/run/netns/{ns}"}
            adds.append(_timed(lambda kw=kw: run(CALICO, "ADD", conf, **kw)))
            dels.append(_timed(lambda kw=kw: run(CALICO, "DEL", conf, **kw)))
            base.append(_timed(lambda ns=ns, i=i: _baseline(ns, i)))
        par_spaces = [_netns() for _ in range(opts.parallel)]
        spaces += par_spaces

        def add(i: int) -> float:
            return _timed(lambda: run(CALICO, "ADD", conf, container_id=f"par{i}",
                                      netns=f"/run/netns/{par_spaces[i]}"))

        start = time.perf_counter()
        with ThreadPoolExecutor(opts.parallel) as pool:
            each = list(pool.map(add, range(opts.parallel)))
        wall = time.perf_counter() - start
    finally:
        for ns in spaces:
            _del_netns(ns)
    med = statistics.median
    print(f"CNI plugin latency, medians of {opts.rounds} (s):")
    print(f"  VERSION (interpreter + skeleton)      {med(version):.3f}")
    print(f"  ADD  (veth, v4+v6, endpoint, IPAM)     {med(adds):.3f}")
    print(f"  DEL                                    {med(dels):.3f}")
    print(f"  raw kernel baseline (iproute2, v4)     {med(base):.3f}")
    print(f"  ratio ADD / baseline                   {med(adds) / med(base):.1f}x")
    print(f"  ADD minus VERSION (the plugin's work)  {med(adds) - med(version):.3f}")
    print(f"{opts.parallel} ADDs at once: {wall:.2f} s wall, {med(each):.2f} s median each, "
          f"{opts.parallel / wall:.1f} ADD/s")


if __name__ == "__main__":
    main()
