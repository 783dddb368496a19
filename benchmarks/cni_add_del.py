"""CNI plugin latency (not a test; root): what one ADD and one DEL cost, and why.

Measured on the same machine in the same run, medians over --rounds, through the wrappers
`calico.cni.install` writes into a CNI bin directory (what a runtime executes):
- the raw kernel baseline: the same veth, addresses, routes and sysctls made with iproute2
  commands (`ip link add ... netns`, `ip addr`, `ip route`, `sysctl`), no datastore;
- the plugin alone (no calico-node: it does the work in its own process): VERSION (interpreter
  start plus the skeleton), ADD (veth, IPv4 + IPv6, endpoint, calico-ipam in-process; local
  datastore) and DEL;
- the same with the host's calico-node running (`--no-felix --no-bgp`, its CNI socket in a temp
  run dir): the plugin hands the request over (calico.cni.client);
- --parallel ADDs started at once, then as many DELs, with calico-node (wall time until all
  answered), and for scale the same number of bare starts of the client's interpreter
  (`python -S -c pass`): on a loaded machine, process starts alone bound the rate.
Targets (issue 18): ADD <= 3x the baseline, DEL <= 3x, >= 20 parallel ADDs per second.

    sudo .venv/bin/python benchmarks/cni_add_del.py [--rounds 10] [--parallel 10]
"""

from __future__ import annotations

import argparse
import contextlib
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

from calico.cni import install  # noqa: E402
from tests.unit.cni.driver import make_store, netconf, run  # noqa: E402

NODE = os.path.join(os.path.dirname(sys.executable), "calico-node")


def _netns() -> str:
    name = f"cpb-cni-{uuid.uuid4().hex[:6]}"  # not cpt-: test tiers reap those at start
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def _del_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _timed(fn) -> float:
    start = time.perf_counter()
    answer = fn()
    if answer is not None and getattr(answer, "rc", 0) != 0:
        raise RuntimeError(f"plugin failed: {answer.stdout} {answer.stderr}")
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


@contextlib.contextmanager
def calico_node(tmp: str, store: str):
    """The real calico-node (no Felix, no BGP) serving <tmp>/run/cni.sock."""
    run_dir = os.path.join(tmp, "run")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALICO_", "ETCD_"))}
    env.update(DATASTORE_TYPE="local", CALICO_DATASTORE_PATH=store, NODENAME="node-1",
               IP="none", NO_DEFAULT_POOLS="true", CALICO_RUN_DIR=run_dir)
    log = open(os.path.join(tmp, "calico-node.log"), "w")
    proc = subprocess.Popen([NODE, "--no-felix", "--no-bgp"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    sock = os.path.join(run_dir, "cni.sock")
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"calico-node did not serve {sock} (see {log.name})")
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _series(binary: str, conf: dict, rounds: int, tag: str, spaces: list[str],
            baseline: list[float] | None = None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"VERSION": [], "ADD": [], "DEL": []}
    version = {"cniVersion": "1.0.0", "calico_node_socket": conf["calico_node_socket"]}
    for _ in range(rounds):
        out["VERSION"].append(_timed(lambda: run(binary, "VERSION", version)))
    for i in range(rounds):
        ns = _netns()
        spaces.append(ns)
        kw = {"container_id": f"{tag}{i}", "netns": f"/run/netns/{ns}"}
        out["ADD"].append(_timed(lambda kw=kw: run(binary, "ADD", conf, **kw)))
        out["DEL"].append(_timed(lambda kw=kw: run(binary, "DEL", conf, **kw)))
        if baseline is not None:
            baseline.append(_timed(lambda ns=ns, i=i: _baseline(ns, i)))
    return out


def _parallel(binary: str, conf: dict, n: int, spaces: list[str]) -> tuple[float, float]:
    """Wall seconds for n ADDs started at once, then for their n DELs."""
    names = [_netns() for _ in range(n)]
    spaces += names

    def call(command: str, i: int) -> float:
        return _timed(lambda: run(binary, command, conf, container_id=f"par{i}",
                                  netns=f"/run/netns/{names[i]}"))

    walls = []
    for command in ("ADD", "DEL"):
        start = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda i, c=command: call(c, i), range(n)))
        walls.append(time.perf_counter() - start)
    return walls[0], walls[1]


def _floor(binary: str, n: int) -> float:
    """Wall seconds for n bare starts, at once, of the interpreter the plugin's wrapper starts
    (`-S -c pass`): the most ADDs per second any Python client could give right now."""
    starter = Path(binary).read_text().splitlines()[0][2:].split()[0]
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(lambda _: subprocess.run([starter, "-S", "-c", "pass"], check=True),
                      range(n)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=10)
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("cni_add_del: needs root (network namespaces)")
    tmp = tempfile.mkdtemp(prefix="cpb-bench-cni-")
    store = os.path.join(tmp, "calico.db")
    make_store(store)
    binary = install(os.path.join(tmp, "bin"))[0]
    sock = os.path.join(tmp, "run", "cni.sock")
    conf = netconf(store, tmp, ipam={"type": "calico-ipam", "assign_ipv6": "true"},
                   calico_node_socket=sock)
    spaces: list[str] = []
    base: list[float] = []
    try:
        alone = _series(binary, conf, opts.rounds, "alone", spaces, base)
        with calico_node(tmp, store):
            served = _series(binary, conf, opts.rounds, "served", spaces, base)
            par_add, par_del = _parallel(binary, conf, opts.parallel, spaces)
            floor = statistics.median(_floor(binary, opts.parallel) for _ in range(3))
    finally:
        for ns in spaces:
            _del_netns(ns)
    _report(opts, base, alone, served, par_add, par_del, floor)


def _report(opts, base, alone, served, par_add, par_del, floor) -> None:
    med = statistics.median
    b = med(base)
    print(f"CNI plugin latency, medians of {opts.rounds} (s); baseline = iproute2 commands, "
          f"measured between the plugin calls:")
    print(f"  raw kernel baseline (iproute2, v4)   {b:.3f}")
    print(f"  {'':34s} {'alone':>8s} {'calico-node':>12s} {'ratio to baseline':>18s}")
    for command in ("VERSION", "ADD", "DEL"):
        a, s = med(alone[command]), med(served[command])
        print(f"  {command:34s} {a:8.3f} {s:12.3f}   {a / b:5.1f}x -> {s / b:4.1f}x")
    print(f"{opts.parallel} ADDs at once (calico-node): {par_add:.2f} s wall, "
          f"{opts.parallel / par_add:.1f} ADD/s; their DELs {par_del:.2f} s, "
          f"{opts.parallel / par_del:.1f} DEL/s")
    print(f"  (floor: {opts.parallel} bare starts of the client's interpreter at once "
          f"{floor:.2f} s, i.e. at most {opts.parallel / floor:.1f}/s on this machine now)")
    print(f"targets: ADD <= 3x ({med(served['ADD']) / b:.1f}x), DEL <= 3x "
          f"({med(served['DEL']) / b:.1f}x), >= 20 ADD/s ({opts.parallel / par_add:.1f})")


if __name__ == "__main__":
    main()
