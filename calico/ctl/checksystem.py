"""`calicoctl node checksystem`: does this host's kernel have what Calico here needs?

Calico's command looks for kernel modules by name (modules.dep, modules.builtin, lsmod, the
kernel config). We ask the kernel instead: each feature is tried for real in a throwaway
network namespace (`unshare --net`, gone when the probe exits, so nothing on the host is
touched) — an nftables table with a conntrack rule, a veth pair, a VXLAN or IP-in-IP device, a
tc clsact qdisc with a cls_bpf filter — and the forwarding sysctls are read in the namespace
the command runs in. A module that is present but cannot load, or a feature compiled out, is
found the same way the dataplane would find it.

Output keeps Calico's layout (`Checking kernel version...`, one `\\t\\t<name>\\t...\\tOK|FAIL`
line per check, `System meets minimum system requirements to run Calico!`), then says what is
missing and what needs it. A required feature missing makes the exit code 1; an optional one
(VXLAN, IP-in-IP, BPF translation, IPv6 forwarding, TUN for VMs) is a WARNING.

`Runner` (a function running an argv with some stdin, returning (exit code, output)) is passed in, so unit
tests can use a fake; the command uses the real one.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Runner = Callable[[Sequence[str], str], tuple[int, str]]
MIN_KERNEL = (5, 2)  # nftables NAT in the inet family, which Felix's table uses

_NFT_PROBE = """add table inet calico_probe
add chain inet calico_probe probe { type filter hook forward priority 0; }
"""
_CT_PROBE = _NFT_PROBE + "add rule inet calico_probe probe ct state established,related accept\n"
_NAT_PROBE = """add table inet calico_probe
add chain inet calico_probe post { type nat hook postrouting priority 100; }
add rule inet calico_probe post masquerade
"""


def run_real(argv: Sequence[str], stdin: str = "") -> tuple[int, str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=20,
                              input=stdin)
    except (OSError, subprocess.TimeoutExpired) as err:
        return 127, str(err)
    return proc.returncode, (proc.stderr or proc.stdout).strip()


@dataclass(frozen=True)
class Feature:
    name: str
    required: bool
    needed_for: str
    argv: tuple[str, ...] = ()           # a probe run in a throwaway namespace
    sysctl: str = ""                     # or a sysctl that must read 1
    path: str = ""                       # or a file that must exist
    stdin: str = ""


FEATURES = (
    Feature("nftables", True, "Felix's dataplane (one nftables table)",
            ("nft", "-f", "-"), stdin=_NFT_PROBE),
    Feature("conntrack", True, "policy (established flows are allowed back)",
            ("nft", "-f", "-"), stdin=_CT_PROBE),
    Feature("veth", True, "container workloads (the CNI plugin's interface pair)",
            ("ip", "link", "add", "calprobe0", "type", "veth", "peer", "name", "calprobe1")),
    Feature("ipv4-forwarding", True, "routing workload traffic (net.ipv4.ip_forward=1)",
            sysctl="net/ipv4/ip_forward"),
    Feature("nat", False, "natOutgoing pools (nftables masquerade)",
            ("nft", "-f", "-"), stdin=_NAT_PROBE),
    Feature("ipv6-forwarding", False, "IPv6 workloads (net.ipv6.conf.all.forwarding=1)",
            sysctl="net/ipv6/conf/all/forwarding"),
    Feature("vxlan", False, "VXLAN encapsulation",
            ("ip", "link", "add", "calprobe0", "type", "vxlan", "id", "42", "dstport", "4789")),
    Feature("ipip", False, "IP-in-IP encapsulation",
            ("ip", "link", "add", "calprobe0", "type", "ipip", "local", "192.0.2.1", "remote",
             "192.0.2.2")),
    Feature("tc-clsact", False, "BPF address translation at an interface",
            ("tc", "qdisc", "add", "dev", "lo", "clsact")),
    Feature("cls_bpf", False, "BPF address translation at an interface",
            ("sh", "-c", "tc qdisc add dev lo clsact && "
                         "tc filter add dev lo ingress bpf bytecode '1,6 0 0 4294967295,'")),
    Feature("tun", False, "VM workloads (tap devices)", path="/dev/net/tun"),
)


def kernel_version(release: str) -> tuple[int, ...]:
    numbers = []
    for part in release.split("-")[0].split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def probe(feature: Feature, run: Runner, proc_sys: str = "/proc/sys") -> tuple[bool, str]:
    """(available, why not)."""
    if feature.sysctl:
        try:
            with open(os.path.join(proc_sys, feature.sysctl)) as f:
                value = f.read().strip()
        except OSError as err:
            return False, f"{feature.sysctl.replace('/', '.')}: {err.strerror}"
        return value == "1", f"{feature.sysctl.replace('/', '.')} is {value}"
    if feature.path:
        return os.path.exists(feature.path), f"{feature.path} does not exist"
    code, out = run(["unshare", "--net", *feature.argv], feature.stdin)
    lines = out.splitlines()
    errors = [line.strip() for line in lines if "rror" in line]
    return code == 0, (errors or lines or [f"exit code {code}"])[0]


def _line(name: str, result: str) -> str:
    return f"\t\t{name:<20}\t\t\t\t\t{result}"


def check(run: Runner, release: str, emit: Callable[[str], None],
          proc_sys: str = "/proc/sys") -> bool:
    """Print Calico's report; True if nothing required is missing."""
    ok = True
    emit("Checking kernel version...")
    if kernel_version(release) >= MIN_KERNEL:
        emit(_line(release, "OK"))
    else:
        ok = False
        emit(_line(release, "FAIL"))
        emit(f"Minimum kernel version to run Calico is {'.'.join(map(str, MIN_KERNEL))}. "
             f"Detected kernel version: {release}")
    emit("Checking kernel features...")
    missing: list[tuple[Feature, str]] = []
    for feature in FEATURES:
        available, why = probe(feature, run, proc_sys)
        if available:
            emit(_line(feature.name, "OK"))
            continue
        missing.append((feature, why))
        emit(_line(feature.name, "FAIL" if feature.required else "WARNING"))
    for feature, why in missing:
        level = "MISSING" if feature.required else "WARNING"
        emit(f"{level}: {feature.name}, needed for {feature.needed_for}, is not available "
             f"({why})")
    ok = ok and not any(f.required for f, _ in missing)
    if ok:
        emit("System meets minimum system requirements to run Calico!")
    return ok


def checksystem(emit: Callable[[str], None]) -> bool:
    return check(run_real, platform.release(), emit)
