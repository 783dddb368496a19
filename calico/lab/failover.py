"""Traffic through the L3 fabric (fabric.py) when a spine link fails.

`spine_failover` runs a fast ping (`ping -D`, 10 ms) between two workloads in different racks,
finds which of the source ToR's uplinks carries the flow (the one whose packet counter grows),
takes that link down, and reports the link that carries the flow afterwards and the longest
gap between two replies after the failure beside the same figure before it (the baseline:
ping's own jitter on this machine). It measures; it asserts nothing and leaves the link down.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

from .fabric import set_link
from .proc import sh


def _tx_packets(router: dict[str, Any]) -> dict[str, int]:
    """{uplink interface: packets sent} of a router."""
    out = sh("ip", "-n", router["netns"], "-s", "-j", "link", "show").stdout
    wanted = {link["ifname"] for link in router["links"]}
    return {i["ifname"]: i["stats64"]["tx"]["packets"] for i in json.loads(out)
            if i["ifname"] in wanted}


def busiest_uplink(lab, router_name: str, sample: float = 0.3) -> str:
    """The uplink of a router that sent the most packets over `sample` seconds."""
    router = next(r for r in lab.state["l3"]["routers"] if r["name"] == router_name)
    before = _tx_packets(router)
    time.sleep(sample)
    after = _tx_packets(router)
    return max(after, key=lambda i: after[i] - before.get(i, 0))


def ping_replies(ping_output: str) -> tuple[list[float], int]:
    """(the replies' arrival times, requests sent) from `ping -D` output."""
    stamps = [float(m.group(1)) for m in
              re.finditer(r"^\[(\d+\.\d+)\].*icmp_seq=\d+", ping_output, re.M)]
    summary = re.search(r"(\d+) packets transmitted, (\d+) received", ping_output)
    return stamps, int(summary.group(1)) if summary else len(stamps)


def longest_gap(stamps: list[float], start: float = 0.0, end: float = float("inf")) -> float:
    """The longest time between two consecutive replies, counting gaps that end in
    [start, end)."""
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False) if start <= b < end]
    return max(gaps, default=0.0)


def spine_failover(lab, src: str, dst_addr: str, interval: float = 0.01,
                   before: float = 1.0, after: float = 2.0) -> dict[str, Any]:
    """Fast ping from workload `src` to `dst_addr`; after `before` s, take down the spine
    link of src's ToR that carries the flow; ping on for `after` s more. Returns what
    happened: the link taken down, the link that carried traffic then, the longest gap
    between replies after the link went down and, as the baseline, before it (ping's own
    jitter on this machine), replies lost. The link stays down (`set_link` brings it
    back)."""
    wl = lab.workload(src)
    tor = f"tor{lab.host(wl['host'])['rack']}"
    deadline = int(before + after + 1)
    ping = subprocess.Popen(["ip", "netns", "exec", wl["netns"], "ping", "-D", "-n", "-i",
                             str(interval), "-w", str(deadline), dst_addr],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(before)
        down = busiest_uplink(lab, tor)
        down_at = time.time()
        set_link(lab, tor, down, False)
        time.sleep(min(after / 2, 1.0))
        rerouted = busiest_uplink(lab, tor)
        out, _ = ping.communicate(timeout=deadline + 10)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait()
    stamps, sent = ping_replies(out)
    return {"tor": tor, "link_down": down, "rerouted_via": rerouted,
            "gap_s": longest_gap(stamps, down_at), "baseline_gap_s": longest_gap(
                stamps, 0.0, down_at), "replies": len(stamps), "sent": sent,
            "lost": max(0, sent - len(stamps)), "interval_s": interval}
