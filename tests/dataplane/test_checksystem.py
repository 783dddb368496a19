"""`calicoctl node checksystem` on this machine's real kernel, inside a namespace of ours whose
forwarding sysctls the test sets: the probes really create (and drop) nftables tables, veths
and VXLAN devices in throwaway namespaces, and a missing required feature exits 1."""

import sys

CHECK = [sys.executable, "-m", "calico.ctl.main", "node", "checksystem"]


def test_checksystem_on_the_real_kernel(netns):
    ns = netns.add("cs")
    ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    ns.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    res = ns.run(*CHECK, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    for name in ("nftables", "conntrack", "veth", "ipv4-forwarding", "ipv6-forwarding",
                 "vxlan", "tc-clsact"):  # this machine kind has them (DESIGN.md)
        assert f"\t\t{name:<20}\t\t\t\t\tOK" in lines, name
    assert "\t\tipip                \t\t\t\t\tWARNING" in lines  # no ipip on this kernel
    assert lines[-1] == "System meets minimum system requirements to run Calico!"
    assert ns.run("nft", "list", "tables").stdout.strip() == ""  # probes left nothing here
    assert "calprobe" not in ns.run("ip", "link").stdout

    ns.run("sysctl", "-qw", "net.ipv4.ip_forward=0")
    res = ns.run(*CHECK, check=False)
    assert res.returncode == 1
    assert "MISSING: ipv4-forwarding, needed for routing workload traffic" in res.stdout
    assert "net.ipv4.ip_forward is 0" in res.stdout
    assert "system doesn't meet one or more minimum systems requirements" in res.stderr
