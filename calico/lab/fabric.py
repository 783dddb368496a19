"""An L3 leaf-spine fabric for the lab: Calico's "AS per rack" and "AS per compute server"
models of its IP-fabric design (`calico-lab up --racks R --hosts-per-rack H`).

Topology (names under the lab's prefix `calab-<lab>-`):

    <prefix>torN     rack N's top-of-rack router: bridge br0 holding 198.18.N.1/24, the rack's
                     subnet and its hosts' gateway; a BIRD 2 in AS 65000+N
    <prefix>spineS   a spine router (BIRD 2, AS 65000 for every spine, so a ToR never carries
                     one spine's routes to another); one point-to-point link per ToR
    <prefix>rNhM     host M of rack N: eth0 on its ToR's br0 at 198.18.N.(10+M)/24, default
                     route via the ToR, calico-node with the Node label `rack=rN`

ToR N <-> spine S: a veth pair, 198.19.S.(4N)/30 (spine .4N+1, ToR .4N+2), eBGP. Every ToR has
a route to a remote rack through each spine, and its kernel gets them as one ECMP route
(`merge paths`); when a link goes down (`check link`) its sessions drop at once and the other
spine carries the traffic (failover.py measures it).

Hosts peer only with their ToR: BGPConfiguration `default` turns the node-to-node mesh off and
one BGPPeer per rack (`rack-rN`, `nodeSelector: rack == 'rN'`, the ToR's address and AS) gives
the rack's hosts their session. The lab writes the Nodes with that label before calico-node
starts (calico-node keeps a Node's labels). Per model:

- AS per rack (default): every host has its ToR's AS (Node `spec.bgp.asNumber`, through
  calico-node's `AS`); the ToR is a route reflector for its hosts (iBGP) and sets itself as the
  next hop of routes it learned over eBGP.
- AS per compute server (`--as-per-host`): host M of rack N has AS 65000+100N+M and an eBGP
  session with its ToR.

The ToR and spine configurations stand for the operator's routers: they are the lab's own,
not rendered by calico.bgp. BGP timers are short (connect delay 1 s, hold 9 s) so a lab comes
up in seconds. IPv4, and IPv6 beside it with `--ipv6` (rack N also fd00:198:18:N::/64, the
ToR ::1, hosts ::1M; links /126s of fd00:198:19:S::/64; a BGPPeer `rack-rN-v6` per rack).
"""

from __future__ import annotations

import os
import time
from typing import Any

from .proc import LabError, netns_add, sh, spawn, sysctls

SPINE_ASN = 65000
MAX_RACKS, MAX_HOSTS_PER_RACK, MAX_SPINES = 9, 9, 4


def rack_asn(rack: int) -> int:
    return SPINE_ASN + rack


def host_asn(rack: int, index: int, as_per_host: bool) -> int:
    return SPINE_ASN + 100 * rack + index if as_per_host else rack_asn(rack)


def link_addresses(rack: int, spine: int) -> tuple[str, str]:
    """(spine side, ToR side) of the /30 between spine `spine` and rack `rack`'s ToR."""
    return f"198.19.{spine}.{4 * rack + 1}", f"198.19.{spine}.{4 * rack + 2}"


def link_addresses6(rack: int, spine: int) -> tuple[str, str]:
    """The same for IPv6: a /126 of fd00:198:19:<spine>::/64."""
    return f"fd00:198:19:{spine}::{4 * rack + 1:x}", f"fd00:198:19:{spine}::{4 * rack + 2:x}"


def _link(ifname: str, address: str, peer: str, peer_asn: int, peer_name: str,
          address6: str | None, peer6: str | None) -> dict[str, Any]:
    return {"ifname": ifname, "address": f"{address}/30", "peer": peer, "peer_asn": peer_asn,
            "peer_name": peer_name, "address6": f"{address6}/126" if address6 else None,
            "peer6": peer6}


def plan(racks: int, hosts_per_rack: int, spines: int, as_per_host: bool,
         ipv6: bool = False) -> dict[str, Any]:
    """The whole topology as data: routers (ToRs, spines, their links) and hosts. With
    `ipv6`, rack N is also fd00:198:18:N::/64 and every link a /126 too."""
    for value, top, flag in ((racks, MAX_RACKS, "--racks"),
                             (hosts_per_rack, MAX_HOSTS_PER_RACK, "--hosts-per-rack"),
                             (spines, MAX_SPINES, "--spines")):
        if not 1 <= value <= top:
            raise LabError(f"{flag} must be between 1 and {top}")
    routers: list[dict[str, Any]] = []
    hosts: list[dict[str, Any]] = []
    for r in range(1, racks + 1):
        links = []
        for s in range(1, spines + 1):
            spine_addr, tor_addr = link_addresses(r, s)
            spine6, tor6 = link_addresses6(r, s) if ipv6 else (None, None)
            links.append(_link(f"spine{s}", tor_addr, spine_addr, SPINE_ASN, f"spine{s}",
                               tor6, spine6))
        routers.append({"name": f"tor{r}", "role": "tor", "rack": r, "asn": rack_asn(r),
                        "router_id": f"198.18.{r}.1", "address": f"198.18.{r}.1/24",
                        "address6": f"fd00:198:18:{r}::1/64" if ipv6 else None,
                        "links": links, "daemon": None})
        for m in range(1, hosts_per_rack + 1):
            hosts.append({"name": f"r{r}h{m}", "rack": r, "address": f"198.18.{r}.{10 + m}/24",
                          "address6": f"fd00:198:18:{r}::{10 + m}/64" if ipv6 else None,
                          "gateway": f"198.18.{r}.1",
                          "asn": host_asn(r, m, as_per_host)})
    for s in range(1, spines + 1):
        links = []
        for r in range(1, racks + 1):
            spine_addr, tor_addr = link_addresses(r, s)
            spine6, tor6 = link_addresses6(r, s) if ipv6 else (None, None)
            links.append(_link(f"tor{r}", spine_addr, tor_addr, rack_asn(r), f"tor{r}",
                               spine6, tor6))
        routers.append({"name": f"spine{s}", "role": "spine", "asn": SPINE_ASN,
                        "router_id": f"198.19.{s}.1", "links": links, "daemon": None})
    return {"racks": racks, "hosts_per_rack": hosts_per_rack, "spines": spines,
            "as_per_host": as_per_host, "ipv6": ipv6, "routers": routers, "hosts": hosts}


_HEADER = """\
# {name}: the lab's {role} (AS {asn}). Written by calico.lab.fabric; it stands for the
# operator's router, Calico renders nothing here.
router id {router_id};
protocol device {{ scan time 10; }}
protocol kernel {{ ipv4 {{ import none; export where source = RTS_BGP; }}; merge paths on; }}
{kernel6}template bgp fabric {{
  direct; check link on;
  hold time 9; keepalive time 3;
  connect delay time 1; connect retry time 1; error wait time 1, 5;
}}
"""


def _bgp(name: str, local: str | None, asn: int, peer: str | None, peer_asn: int,
         options: str, channel: str, version: int) -> list[str]:
    """One session (IPv4: protocol `name`, IPv6: `name_v6`); none if a side has no address
    of that family."""
    if not local or not peer:
        return []
    return [f"protocol bgp {name}{'_v6' if version == 6 else ''} from fabric {{",
            f"  local {local.split('/')[0]} as {asn};",
            f"  neighbor {peer.split('/')[0]} as {peer_asn};{options}",
            f"  ipv{version} {{ {channel} }};", "}"]


def router_config(router: dict[str, Any], hosts: list[dict[str, Any]]) -> str:
    """BIRD 2 configuration of one ToR or spine. A ToR also announces its rack's subnet
    (to the spines, not back to its own hosts)."""
    v6 = any(link.get("address6") for link in router["links"])
    kernel6 = ("protocol kernel { ipv6 { import none; export where source = RTS_BGP; }; "
               "merge paths on; }\n" if v6 else "")
    lines = [_HEADER.format(**router, kernel6=kernel6)]
    if router["role"] == "tor":
        lines.append(f'protocol direct {{ ipv4;{" ipv6;" if v6 else ""} interface "br0"; }}')
        for h in (h for h in hosts if h["rack"] == router["rack"]):
            ibgp = h["asn"] == router["asn"]
            options = " rr client;" if ibgp else ""
            channel = "import all; export where source != RTS_DEVICE;"
            if ibgp:
                channel += " next hop self ebgp;"
            for version, local, peer in ((4, router["address"], h["address"]),
                                         (6, router.get("address6"), h.get("address6"))):
                lines += _bgp(h["name"], local, router["asn"], peer, h["asn"], options,
                              channel, version)
    for link in router["links"]:
        for version, local, peer in ((4, link["address"], link["peer"]),
                                     (6, link.get("address6"), link.get("peer6"))):
            lines += _bgp(link["peer_name"], local, router["asn"], peer, link["peer_asn"], "",
                          "import all; export all;", version)
    return "\n".join(lines) + "\n"


def bgp_resources(topology: dict[str, Any]) -> list[dict[str, Any]]:
    """What the lab writes before calico-node starts: the mesh off, one BGPPeer per rack
    (by node label), and each host's Node with its `rack` label."""
    v3 = "projectcalico.org/v3"
    out: list[dict[str, Any]] = [
        {"apiVersion": v3, "kind": "BGPConfiguration", "metadata": {"name": "default"},
         "spec": {"nodeToNodeMeshEnabled": False}}]
    for r in (t for t in topology["routers"] if t["role"] == "tor"):
        for suffix, addr in (("", r["address"]), ("-v6", r.get("address6"))):
            if addr:
                out.append({"apiVersion": v3, "kind": "BGPPeer",
                            "metadata": {"name": f"rack-r{r['rack']}{suffix}"},
                            "spec": {"peerIP": addr.split("/")[0], "asNumber": str(r["asn"]),
                                     "nodeSelector": f"rack == 'r{r['rack']}'"}})
    for h in topology["hosts"]:
        out.append({"apiVersion": v3, "kind": "Node",
                    "metadata": {"name": h["name"], "labels": {"rack": f"r{h['rack']}"}},
                    "spec": {}})
    return out


# ---- building it ------------------------------------------------------------------------

def up(lab, racks: int, hosts_per_rack: int, spines: int = 2, as_per_host: bool = False,
       workloads_per_host: int = 0, datastore: str = "local",
       etcd_endpoints: str | None = None, wait: float = 30.0, ipv6: bool = False) -> None:
    """`Lab.up` for a fabric: routers and racks instead of one L2 segment. On any failure the
    lab is torn down again."""
    topology = plan(racks, hosts_per_rack, spines, as_per_host, ipv6)
    lab.check_can_start(datastore, etcd_endpoints)
    os.makedirs(lab.dir, exist_ok=True)
    lab.state = {"name": lab.name, "prefix": lab.prefix, "ipv6": ipv6, "hosts": [],
                 "workloads": [], "tor": None, "fabric": None, "created": time.time(),
                 "l3": {k: topology[k] for k in ("racks", "hosts_per_rack", "spines",
                                                 "as_per_host")} | {"routers": []}}
    lab.save()
    try:
        lab._start_datastore(datastore, etcd_endpoints)
        _build(lab, topology)
        lab._start_proxy()
        _write_resources(lab, topology)
        lab.save()  # from here on, changes are read-modify-writes of the file (Lab._update)
        for router in lab.state["l3"]["routers"]:
            _start_router(lab, router)
        for h in lab.state["hosts"]:
            lab.start_node(h["name"])
        lab.wait_established(wait)
        wait_routers(lab, wait)
        for i in range(workloads_per_host):
            for h in lab.state["hosts"]:
                lab.add_workload(h["name"], f"{h['name']}-w{i + 1}")
    except BaseException:
        lab.down()
        raise


# Forwarding on; IPv6 on without duplicate address detection (addresses usable at once),
# keeping its addresses while a link is down (Linux drops them by default), as a router's
# configuration survives a link flap.
_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1",
            "net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.accept_dad": "0",
            "net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.all.keep_addr_on_down": "1",
            "net.ipv6.conf.default.keep_addr_on_down": "1"}


def _addresses(ns: str, ifname: str, *addrs: str | None) -> None:
    for addr in (a for a in addrs if a):
        sh("ip", "-n", ns, "addr", "add", addr, "dev", ifname, *(("nodad",) if ":" in addr
                                                                 else ()))
    sh("ip", "-n", ns, "link", "set", ifname, "up")


def _build(lab, topology: dict[str, Any]) -> None:
    for router in topology["routers"]:
        router = dict(router, netns=f"{lab.prefix}{router['name']}")
        netns_add(router["netns"])
        sysctls(router["netns"], _SYSCTLS)
        if router["role"] == "tor":
            sh("ip", "-n", router["netns"], "link", "add", "br0", "type", "bridge")
            _addresses(router["netns"], "br0", router["address"], router.get("address6"))
        lab.state["l3"]["routers"].append(router)
        lab.save()
    by_name = {r["name"]: r for r in lab.state["l3"]["routers"]}
    for tor in (r for r in lab.state["l3"]["routers"] if r["role"] == "tor"):
        for link in tor["links"]:
            spine = by_name[link["peer_name"]]
            back = next(x for x in spine["links"] if x["peer_name"] == tor["name"])
            sh("ip", "link", "add", link["ifname"], "netns", tor["netns"], "type", "veth",
               "peer", "name", back["ifname"], "netns", spine["netns"])
            for ns, end in ((tor["netns"], link), (spine["netns"], back)):
                _addresses(ns, end["ifname"], end["address"], end.get("address6"))
    for host in topology["hosts"]:
        _add_host(lab, host, by_name[f"tor{host['rack']}"])


def _add_host(lab, host: dict[str, Any], tor: dict[str, Any]) -> None:
    """A host namespace whose eth0 is a port of its ToR's bridge."""
    h = dict(host, netns=f"{lab.prefix}{host['name']}", node=None,
             run_dir=os.path.join(lab.dir, host["name"]))
    os.makedirs(h["run_dir"], exist_ok=True)
    netns_add(h["netns"])
    sysctls(h["netns"], _SYSCTLS)
    lab.state["hosts"].append(h)
    lab.save()
    sh("ip", "link", "add", "eth0", "netns", h["netns"], "type", "veth", "peer", "name",
       h["name"], "netns", tor["netns"])
    sh("ip", "-n", tor["netns"], "link", "set", h["name"], "master", "br0", "up")
    _addresses(h["netns"], "eth0", h["address"], h.get("address6"))
    sh("ip", "-n", h["netns"], "route", "add", "default", "via", h["gateway"])


def _write_resources(lab, topology: dict[str, Any]) -> None:
    from calico.datastore.client import ResourceClient

    backend = lab.backend()
    try:
        client = ResourceClient(backend)
        for res in bgp_resources(topology):
            client.apply(res)
    finally:
        backend.close()


def bird_socket(lab, router: dict[str, Any]) -> str:
    return os.path.join(lab.dir, f"{router['name']}-bird.ctl")


def _start_router(lab, router: dict[str, Any]) -> None:
    conf = os.path.join(lab.dir, f"{router['name']}-bird.conf")
    with open(conf, "w") as f:
        f.write(router_config(router, lab.state["hosts"]))
    daemon = spawn(["bird", "-f", "-c", conf, "-s", bird_socket(lab, router),
                    "-P", os.path.join(lab.dir, f"{router['name']}-bird.pid")],
                   os.path.join(lab.dir, f"{router['name']}.log"), netns=router["netns"])
    name = router["name"]
    lab._update(lambda state: next(r for r in state["l3"]["routers"]
                                   if r["name"] == name).__setitem__("daemon", daemon))


def router_sessions(lab, router: dict[str, Any]) -> dict[str, str]:
    """{BGP protocol name: state ("Established", "Active", ...)} of a ToR or spine."""
    proc = sh("birdc", "-s", bird_socket(lab, router), "show", "protocols", check=False,
              timeout=10)
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "BGP":
            out[parts[0]] = ("Established" if parts[3] == "up" and "Established" in parts
                             else " ".join(parts[3:]))
    return out


def wait_routers(lab, timeout: float) -> None:
    """Until every ToR and spine has all its sessions Established."""
    deadline = time.monotonic() + timeout
    families = 2 if lab.state["ipv6"] else 1
    for router in lab.state["l3"]["routers"]:
        want = families * (len(router["links"]) + (sum(1 for h in lab.state["hosts"]
                                                       if h["rack"] == router.get("rack"))
                                                   if router["role"] == "tor" else 0))
        while True:
            up_ = [n for n, s in router_sessions(lab, router).items() if s == "Established"]
            if len(up_) >= want:
                break
            if time.monotonic() > deadline:
                raise LabError(f"{router['name']}: {len(up_)} of {want} BGP sessions "
                               f"Established within {timeout:g}s (see {lab.dir})")
            time.sleep(0.1)


def stop_routers(lab) -> None:
    from .proc import stop_daemon

    for router in (lab.state.get("l3") or {}).get("routers", []):
        stop_daemon(router.get("daemon"))


def set_link(lab, router: str, ifname: str, up_: bool) -> None:
    """Take one fabric link down (or up again) at a router's end."""
    r = next((x for x in lab.state["l3"]["routers"] if x["name"] == router), None)
    if r is None:
        raise LabError(f"lab {lab.name!r} has no router {router!r}")
    sh("ip", "-n", r["netns"], "link", "set", ifname, "up" if up_ else "down")


def status(lab) -> dict[str, Any] | None:
    """The fabric part of `calico-lab status`: routers with their sessions, hosts' racks and
    ASes; None for a lab without racks."""
    from .proc import alive

    l3 = lab.state.get("l3")
    if not l3:
        return None
    routers = [{"name": r["name"], "role": r["role"], "asn": r["asn"], "netns": r["netns"],
                "address": (r.get("address") or "").split("/")[0] or None,
                "rack": r.get("rack"), "running": alive(r.get("daemon")),
                "sessions": router_sessions(lab, r) if alive(r.get("daemon")) else {}}
               for r in l3["routers"]]
    return {"racks": l3["racks"], "hosts_per_rack": l3["hosts_per_rack"],
            "spines": l3["spines"], "as_per_host": l3["as_per_host"], "routers": routers,
            "hosts": {h["name"]: {"rack": h["rack"], "asn": h["asn"]}
                      for h in lab.state["hosts"]}}

