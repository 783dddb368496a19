"""Felix is stateless: `kill -9` during traffic and a restart lose nothing and change nothing;
state changed behind Felix's back comes back within the refresh interval (2 s here)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from tests.dataplane.test_felix_harness import (
    ALLOW_ALL,
    FelixHost,
    ping,
    resource,
    wait_for,
    wl_ip,
)

TCP_PORT = 7000
TCP_CLIENT = r"""
import socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
sock.settimeout(2)
end, chunk, rounds = time.monotonic() + float(sys.argv[3]), b"x" * 4096, 0
while time.monotonic() < end:
    sock.sendall(chunk)
    got = 0
    while got < len(chunk):
        data = sock.recv(len(chunk) - got)
        if not data:
            sys.exit(f"stream closed after {rounds} rounds")
        got += len(data)
    rounds += 1
    time.sleep(0.005)
print("rounds", rounds)
"""


@pytest.fixture
def felix(netns, tmp_path):
    host = FelixHost(netns, tmp_path)
    host.client.create(ALLOW_ALL)
    # A policy with a selector-driven IP set, so the ruleset has sets and policy chains too.
    host.client.create(resource("GlobalNetworkPolicy", "web-to-db", {
        "selector": "app == 'db'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "source": {"selector": "app == 'web'"}}]}))
    with host.running():
        host.add_workload(1, labels={"app": "web"})
        host.add_workload(2, labels={"app": "db"})
        host.wait_programmed(1)
        host.wait_programmed(2)
        yield host


def loss(ping_output: str) -> tuple[int, int]:
    match = re.search(r"(\d+) packets transmitted, (\d+) received", ping_output)
    assert match, ping_output
    return int(match.group(1)), int(match.group(2))


def test_kill_9_and_restart_lose_no_packet_and_change_nothing(felix):
    wl1, wl2 = felix.workloads[1], felix.workloads[2]
    assert ping(wl1, wl_ip(2)) and ping(wl1, wl_ip(2, 6))
    before, routes_before = felix.ruleset(), felix.felix_routes()
    server = wl2.popen("socat", f"TCP4-LISTEN:{TCP_PORT},reuseaddr", "PIPE",
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.3)
    duration = 10
    pings = [wl1.popen("ping", flag, "-i", "0.01", "-w", str(duration), "-W", "1", dst,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for flag, dst in (("-4", wl_ip(2)), ("-6", wl_ip(2, 6)))]
    stream = wl1.popen(sys.executable, "-c", TCP_CLIENT, wl_ip(2), str(TCP_PORT),
                       str(duration - 1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    try:
        time.sleep(1.5)
        felix.kill9()
        time.sleep(0.5)
        felix.start_felix()
        took = felix.wait_ready()
        outputs = [p.communicate(timeout=duration + 10)[0] for p in pings]
        stream_out = stream.communicate(timeout=duration + 10)[0]
    finally:
        for proc in (*pings, stream, server):
            if proc.poll() is None:
                proc.kill()
    for out in outputs:
        sent, received = loss(out)
        assert sent > 300 and received == sent, out
    assert stream.returncode == 0 and stream_out.startswith("rounds"), stream_out
    assert felix.ruleset() == before
    assert felix.felix_routes() == routes_before
    # The restarted Felix had nothing to change in nftables.
    assert re.search(r"Dataplane programmed .* nftables 0 lines", felix.log()), felix.log()
    print(f"restart: ready {took:.2f}s after start; {outputs[0].splitlines()[-2]}")


def test_out_of_band_changes_are_repaired_within_the_refresh_interval(felix):
    chain_before = felix.host.run("nft", "list", "chain", "inet", "calico", "tw-cali1").stdout
    routes_before = felix.felix_routes()
    felix.host.ip("route", "del", f"{wl_ip(1)}/32", "dev", "cali1")
    felix.host.run("nft", "flush", "chain", "inet", "calico", "tw-cali1")
    assert f"{wl_ip(1)}/32@cali1" not in felix.felix_routes()
    took = wait_for(lambda: felix.felix_routes() == routes_before
                    and felix.host.run("nft", "list", "chain", "inet", "calico",
                                       "tw-cali1").stdout == chain_before,
                    6.0, "route and chain restored")
    assert took <= 4.0  # refresh every 2 s, plus an apply
    assert ping(felix.workloads[1], wl_ip(2))
