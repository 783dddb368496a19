"""Acceptance for BGPFilter (issue #17 item 2): a GoBGP ToR announces routes to two hosts
whose ToR BGPPeer names a BGPFilter. A prefix the import rules reject never reaches BIRD's
table or a host's kernel while an accepted one, announced after it, does; an export rule keeps
the hosts' blocks from the ToR, and removing the filter from the peer brings them back."""

from __future__ import annotations

import json

import pytest

from calico.datastore.client import ResourceClient
from calico.lab.proc import netns_exec, sh
from calico.lab.tor import GOBGP_API_PORT

from .conftest import bird_routes, blocks_of, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

REJECTED = "203.0.113.0/24"
ACCEPTED = "198.51.100.0/24"
LONG = "198.51.100.128/25"  # inside the accepted range but longer than the rule allows


@pytest.fixture(scope="module")
def lab(make_lab):
    lab = make_lab("f", hosts=2, tor="gobgp")
    lab.add_workload("host1", "w1")
    lab.add_workload("host2", "w2")
    return lab


def gobgp(lab, *args: str) -> str:
    return netns_exec(lab.state["tor"]["netns"], "gobgp", "-u", "127.0.0.1", "-p",
                      str(GOBGP_API_PORT), *args).stdout


def tor_rib(lab) -> set[str]:
    return set(json.loads(gobgp(lab, "global", "rib", "-a", "ipv4", "-j") or "{}"))


def apply(lab, *docs):
    backend = lab.backend()
    try:
        for doc in docs:
            ResourceClient(backend).apply(doc)
    finally:
        backend.close()


def tor_peer(lab, filters):
    spec = {"peerIP": lab.state["tor"]["address"], "asNumber": str(lab.state["tor"]["asn"])}
    if filters:
        spec["filters"] = filters
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": "tor-v4"}, "spec": spec}


def bird_table(lab, host) -> str:
    """`birdc show route`: every route in BIRD's table."""
    return sh("birdc", "-s", f"{lab.host(host)['run_dir']}/bird.ctl", "show", "route").stdout


def test_import_rules_keep_a_rejected_prefix_out_of_every_kernel(lab):
    apply(lab, {"apiVersion": "projectcalico.org/v3", "kind": "BGPFilter",
                "metadata": {"name": "from-tor"}, "spec": {"importV4": [
                    {"cidr": REJECTED, "matchOperator": "Equal", "action": "Reject"},
                    {"cidr": "198.51.100.0/24", "matchOperator": "In",
                     "prefixLength": {"max": 24}, "action": "Accept"},
                    {"cidr": "198.51.100.0/24", "matchOperator": "In", "action": "Reject"}]}},
          tor_peer(lab, ["from-tor"]))
    hosts = ("host1", "host2")
    wait_until(lambda: all("from-tor" in open(f"{lab.host(h)['run_dir']}/bird.conf").read()
                           for h in hosts), 10, "bird.conf names the filter on both hosts")
    gobgp(lab, "global", "rib", "add", REJECTED, "-a", "ipv4")
    gobgp(lab, "global", "rib", "add", LONG, "-a", "ipv4")
    gobgp(lab, "global", "rib", "add", ACCEPTED, "-a", "ipv4")
    try:
        wait_until(lambda: all(bird_routes(lab, h).get(ACCEPTED) == "198.18.0.1"
                               for h in hosts), 10, f"{ACCEPTED} in both kernels")
        for h in hosts:
            routes = bird_routes(lab, h)
            assert REJECTED not in routes and LONG not in routes, routes
            # Not merely kept out of the kernel: BIRD never imported them.
            table = bird_table(lab, h)
            assert ACCEPTED in table and REJECTED not in table and LONG not in table, table
    finally:
        for prefix in (REJECTED, LONG, ACCEPTED):
            gobgp(lab, "global", "rib", "del", prefix, "-a", "ipv4")


def test_export_rules_keep_blocks_from_the_tor(lab):
    blocks = blocks_of(lab, "host1") | blocks_of(lab, "host2")
    wait_until(lambda: blocks <= tor_rib(lab), 10, "the ToR has both hosts' blocks")
    apply(lab, {"apiVersion": "projectcalico.org/v3", "kind": "BGPFilter",
                "metadata": {"name": "to-tor"}, "spec": {"exportV4": [
                    {"cidr": "10.65.0.0/16", "matchOperator": "In", "action": "Reject"}]}},
          tor_peer(lab, ["from-tor", "to-tor"]))
    wait_until(lambda: not (blocks & tor_rib(lab)), 10, "the blocks withdrawn from the ToR")
    apply(lab, tor_peer(lab, []))
    wait_until(lambda: blocks <= tor_rib(lab), 10, "the blocks back at the ToR")
