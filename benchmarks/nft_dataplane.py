"""Benchmark: the nftables dataplane at Calico scale, against raw `nft -f` of the same script.

Load: 1,000 local workload endpoints, 1,000 policies × 10 rules, 1,000 selector IP sets
holding 10,000 remote addresses. Prints: cold apply (render + one transaction) vs raw
`nft -f` of the identical script; then one policy change and one set-member change
(p50/p99 over N runs) vs raw `nft -f` of the identical incremental scripts replayed in a
second namespace holding the same state. Runs in throwaway namespaces (root needed).

    .venv/bin/python benchmarks/nft_dataplane.py [--endpoints 1000] [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from calico.felix import messages as m
from calico.felix.dataplane.nft import NftDataplane, NftRunner, make_runner
from calico.felix.dataplane.nft.readback import parse_table
from tests.fixtures.netns import netns_set

R, A = m.Rule, m.Action


def policy(i: int, port_shift: int = 0) -> m.ActivePolicyUpdate:
    rules = []
    for j in range(10):
        if j % 3 == 0:
            rules.append(R(A.ALLOW, protocol=6, src_ip_set_ids=(f"sel-{(i + j) % 1000}",),
                           dst_ports=((8000 + j + port_shift, 8000 + j + port_shift),)))
        elif j % 3 == 1:
            rules.append(R(A.ALLOW, protocol=17, src_nets=(f"10.{j}.{i % 250}.0/24",),
                           dst_ports=((5000, 5100),)))
        else:
            rules.append(R(A.DENY, protocol=6, not_dst_ip_set_ids=(f"sel-{i}",)))
    return m.ActivePolicyUpdate(m.PolicyID(f"pol-{i}", "ns"), inbound_rules=tuple(rules),
                                outbound_rules=(R(A.ALLOW),))


def messages(n_ep: int) -> list[m.Message]:
    out: list[m.Message] = []
    for s in range(1000):
        members = frozenset(f"172.{16 + s // 250}.{s % 250}.{k}/32" for k in range(10))
        out.append(m.IPSetUpdate(f"sel-{s}", m.IPSetType.NET, members))
    out += [policy(i) for i in range(1000)]
    out.append(m.ActiveProfileUpdate(m.ProfileID("kns.ns"), inbound_rules=(R(A.ALLOW),),
                                     outbound_rules=(R(A.ALLOW),)))
    for e in range(n_ep):
        pols = tuple(m.PolicyID(f"pol-{(e + k) % 1000}", "ns") for k in range(3))
        out.append(m.WorkloadEndpointUpdate(
            m.WorkloadEndpointID("ns", f"w{e}"), f"cali{e:011d}",
            ipv4_nets=(f"10.65.{e // 250}.{e % 250}/32",),
            profile_ids=(m.ProfileID("kns.ns"),),
            tiers=(m.TierInfo("default", pols, pols[:1]),)))
    return out


def raw_nft(ns: str, script: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, text=True,
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt(xs: list[float]) -> str:
    return f"p50 {statistics.median(xs) * 1000:7.1f} ms  p99 {pct(xs, 99) * 1000:7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    with netns_set() as nets:
        ours, raw = nets.add("bench"), nets.add("benchraw")
        dp = NftDataplane(make_runner(netns=ours.name))
        msgs = messages(args.endpoints)
        t0 = time.perf_counter()
        for msg in msgs:
            dp.on_message(msg)
        dp.resync()
        script = dp.table.transaction()
        t_render = time.perf_counter() - t0
        t0 = time.perf_counter()
        dp.runner.run(script)
        dp.table.commit()
        t_apply = time.perf_counter() - t0
        t_raw = raw_nft(raw.name, script)
        lines = script.count("\n")
        print(f"cold: {lines} script lines, {script.count('add rule')} rules, "
              f"{len(dp.table.chains)} chains, {len(dp.table.sets)} sets/maps")
        print(f"  render (messages → script) {t_render:6.2f} s")
        print(f"  our nft -f                 {t_apply:6.2f} s   raw nft -f {t_raw:6.2f} s "
              f"  (ratio {t_apply / t_raw:4.2f})")
        print(f"  total cold (render+apply)  {t_render + t_apply:6.2f} s")
        t0 = time.perf_counter()
        dp.refresh()
        print(f"  read-back + diff (no-op refresh, {type(dp.runner).__name__}) "
              f"{time.perf_counter() - t0:6.2f} s")
        binary = NftRunner(netns=ours.name)
        for label, read in (("nft -j list table + json.loads",
                             lambda: parse_table(binary.list_table("inet", "calico"))),
                            ("nft -y -p list table (text)",
                             lambda: binary.read_kernel("inet", "calico"))):
            t0 = time.perf_counter()
            read()
            print(f"  read-back via {label:32s} {time.perf_counter() - t0:6.2f} s")

        ours_t, raw_t, scripts = [], [], []
        for k in range(args.runs):
            dp.on_message(policy(k % 1000, port_shift=1 + k))
            t0 = time.perf_counter()
            s = dp.apply()
            ours_t.append(time.perf_counter() - t0)
            scripts.append(s)
        raw_t = [raw_nft(raw.name, s) for s in scripts]
        print(f"policy change ({scripts[0].count(chr(10))} lines): ours {fmt(ours_t)} | "
              f"raw {fmt(raw_t)}")

        ours_t, scripts = [], []
        for k in range(args.runs):
            addr = frozenset({f"172.31.{k // 250}.{k % 250}/32"})
            dp.on_message(m.IPSetDeltaUpdate(f"sel-{k}", added=addr))
            t0 = time.perf_counter()
            scripts.append(dp.apply())
            ours_t.append(time.perf_counter() - t0)
        raw_t = [raw_nft(raw.name, s) for s in scripts]
        print(f"set-member change ({scripts[0].count(chr(10))} line): ours {fmt(ours_t)} | "
              f"raw {fmt(raw_t)}")


if __name__ == "__main__":
    main()
