"""The lab's optional top-of-rack BGP peer: GoBGP or BIRD in its own namespace on the fabric.

It peers (eBGP, AS `TOR_ASN`) with every lab host; the hosts peer with it through global
BGPPeer resources (`tor-v4`, `tor-v6`) the lab writes. It learns the hosts' block routes and
can announce routes of its own (`gobgp global rib add ...` inside its namespace, or a static
route in the BIRD ToR's config). The BIRD ToR also programs what it learns into its kernel.
"""

from __future__ import annotations

import os

TOR_ASN = 64513
GOBGP_API_PORT = 50051


def gobgp_config(router_id: str, address: str, address6: str | None,
                 hosts: list[dict]) -> str:
    lines = ["[global.config]", f"  as = {TOR_ASN}", f'  router-id = "{router_id}"',
             "  port = 179",
             "  local-address-list = [" + ", ".join(
                 f'"{a}"' for a in (address, address6) if a) + "]"]
    for host in hosts:
        for peer, local, family in ((host["address"], address, "ipv4-unicast"),
                                    (host.get("address6"), address6, "ipv6-unicast")):
            if not peer or not local:
                continue
            lines += ["[[neighbors]]", "  [neighbors.config]",
                      f'    neighbor-address = "{peer.split("/")[0]}"',
                      "    peer-as = 64512",
                      "  [neighbors.transport.config]", f'    local-address = "{local}"',
                      "  [neighbors.timers.config]", "    connect-retry = 1",
                      # A peer that went away may come back at once (a restarted calico-node):
                      # GoBGP's default waits 5 s before it listens to it again.
                      "    idle-hold-time-after-reset = 1",
                      "    hold-time = 30", "    keepalive-interval = 10",
                      "  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                      f'      afi-safi-name = "{family}"']
    return "\n".join(lines) + "\n"


def bird_config(router_id: str, address: str, address6: str | None, hosts: list[dict]) -> str:
    lines = [f"router id {router_id};", "protocol device { scan time 10; }",
             "protocol kernel { ipv4 { import none; export all; }; merge paths on; }"]
    if address6:
        lines.append("protocol kernel { ipv6 { import none; export all; }; merge paths on; }")
    for i, host in enumerate(hosts):
        for peer, local, v in ((host["address"], address, "4"),
                               (host.get("address6"), address6, "6")):
            if not peer or not local:
                continue
            lines += [f"protocol bgp {host['name'].replace('-', '_')}_v{v}_{i} {{",
                      f"  local {local} as {TOR_ASN};",
                      f"  neighbor {peer.split('/')[0]} as 64512;",
                      "  direct; connect delay time 1; connect retry time 1;",
                      f"  ipv{v} {{ import all; export all; }};", "}"]
    return "\n".join(lines) + "\n"


def tor_command(kind: str, conf_dir: str, router_id: str, address: str,
                address6: str | None, hosts: list[dict]) -> list[str]:
    """Write the ToR's configuration and return its command line."""
    if kind == "gobgp":
        path = os.path.join(conf_dir, "gobgpd.toml")
        with open(path, "w") as f:
            f.write(gobgp_config(router_id, address, address6, hosts))
        return ["gobgpd", "-f", path, "-t", "toml", "-p", "--api-hosts",
                f"127.0.0.1:{GOBGP_API_PORT}", "--pprof-disable", "--log-level", "info"]
    path = os.path.join(conf_dir, "tor-bird.conf")
    with open(path, "w") as f:
        f.write(bird_config(router_id, address, address6, hosts))
    return ["bird", "-f", "-c", path, "-s", os.path.join(conf_dir, "tor-bird.ctl"),
            "-P", os.path.join(conf_dir, "tor-bird.pid")]
