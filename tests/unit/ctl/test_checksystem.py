"""node checksystem's logic with a fake runner: what is required fails the check, what is
optional warns, and the report keeps Calico's layout."""

from calico.ctl.checksystem import FEATURES, check, kernel_version


def _proc_sys(tmp_path, v4="1", v6="1"):
    for path, value in (("net/ipv4/ip_forward", v4), ("net/ipv6/conf/all/forwarding", v6)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(value + "\n")
    return str(tmp_path)


def _runner(failing: set[str]):
    calls = []

    def run(argv, stdin):
        calls.append((tuple(argv), stdin))
        assert argv[:2] == ["unshare", "--net"]  # every probe in a throwaway namespace
        text = " ".join(argv) + stdin
        for word in failing:
            if word in text:
                return 1, "junk\nError: Unknown device type.\nmore junk"
        return 0, ""
    return run, calls


def test_everything_present(tmp_path):
    run, calls = _runner(set())
    out = []
    assert check(run, "6.1.0-13-amd64", out.append, _proc_sys(tmp_path)) is True
    assert out[0] == "Checking kernel version..."
    assert out[1] == "\t\t6.1.0-13-amd64      \t\t\t\t\tOK"
    assert out[-1] == "System meets minimum system requirements to run Calico!"
    assert sum(1 for line in out if line.endswith("\tOK")) == 1 + len(FEATURES)
    assert len(calls) == sum(1 for f in FEATURES if f.argv)


def test_optional_missing_warns_required_missing_fails(tmp_path):
    run, _ = _runner({"ipip"})
    out = []
    assert check(run, "6.1.0", out.append, _proc_sys(tmp_path, v6="0")) is True
    assert "\t\tipip                \t\t\t\t\tWARNING" in out
    assert "WARNING: ipip, needed for IP-in-IP encapsulation, is not available (Error: " \
           "Unknown device type.)" in out
    assert any(line.startswith("WARNING: ipv6-forwarding") for line in out)
    run, _ = _runner({"veth", "ct state"})
    out = []
    assert check(run, "6.1.0", out.append, _proc_sys(tmp_path, v4="0")) is False
    for name in ("veth", "conntrack", "ipv4-forwarding"):
        assert f"\t\t{name:<20}\t\t\t\t\tFAIL" in out
        assert any(line.startswith(f"MISSING: {name}, needed for") for line in out)
    assert "\t\tnftables            \t\t\t\t\tOK" in out
    assert not any("System meets" in line for line in out)


def test_old_kernel_fails(tmp_path):
    run, _ = _runner(set())
    out = []
    assert check(run, "4.19.0-25-amd64", out.append, _proc_sys(tmp_path)) is False
    assert out[1].endswith("FAIL")
    assert out[2].startswith("Minimum kernel version to run Calico is 5.2.")
    assert kernel_version("6.18.44-fc-v1272") == (6, 18, 44)
