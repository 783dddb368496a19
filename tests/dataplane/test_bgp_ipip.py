"""IP-in-IP routes as BIRD programs them from our rendered configuration (issue #17 item 3).

This kernel has no `ipip` module, so there is no real `tunl0`: a veth end named `tunl0` stands
in for it. That cannot carry encapsulated packets, but it shows the route BIRD writes into the
kernel from the rendered bird.conf: to an `ipipMode: Always` pool `via <node> dev tunl0
onlink` (Calico's IP-in-IP route), to a `CrossSubnet` pool on the same subnet the plain route
via the fabric, to a pool without IP-in-IP the plain route."""

from __future__ import annotations

import subprocess
import time

from calico.bgp.render import BGPInputs, render
from tests.conftest import require_programs

NODES = {name: {"metadata": {"name": name}, "spec": {"bgp": {"ipv4Address": addr}}}
         for name, addr in (("a", "10.201.0.1/24"), ("b", "10.201.0.2/24"))}
POOLS = [{"metadata": {"name": n}, "spec": {"cidr": c, **({"ipipMode": m} if m else {})}}
         for n, c, m in (("always", "10.65.0.0/16", "Always"),
                         ("cross", "10.66.0.0/16", "CrossSubnet"), ("plain", "10.67.0.0/16", None))]
B_BLOCKS = ["10.65.1.0/26", "10.66.1.0/26", "10.67.1.0/26"]


def test_bird_programs_ipip_routes_through_tunl0(netns, tmp_path):
    require_programs("bird", "birdc")
    a, b = netns.add("ipipa"), netns.add("ipipb")
    netns.veth(a, "eth0", b, "eth0")
    a.ip("addr", "add", "10.201.0.1/24", "dev", "eth0")
    b.ip("addr", "add", "10.201.0.2/24", "dev", "eth0")
    a.ip("link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0-peer")
    a.ip("link", "set", "tunl0", "up")
    a.ip("link", "set", "tunl0-peer", "up")
    procs = []
    try:
        for ns, host, blocks in ((a, "a", []), (b, "b", B_BLOCKS)):
            conf = tmp_path / f"{host}.conf"
            conf.write_text(render(BGPInputs(hostname=host, nodes=NODES, pools=POOLS,
                                             blocks=blocks)))
            procs.append(ns.popen("bird", "-f", "-c", str(conf), "-s",
                                  str(tmp_path / f"{host}.ctl"), "-P",
                                  str(tmp_path / f"{host}.pid"), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
        want = {"10.65.1.0/26": "via 10.201.0.2 dev tunl0 metric 32 onlink",
                "10.66.1.0/26": "via 10.201.0.2 dev eth0 metric 32",
                "10.67.1.0/26": "via 10.201.0.2 dev eth0 metric 32"}
        deadline = time.monotonic() + 20
        while True:
            got = {}
            for line in a.ip("route", "show", "proto", "bird").stdout.splitlines():
                prefix, _, rest = line.strip().partition(" ")
                got[prefix] = rest
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == want
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
