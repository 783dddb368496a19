"""Translator's command logic against a fake kernel (the `run` shim); real packets are in
tests/dataplane/test_xlat.py."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from pathlib import Path

import pytest

from calico.felix.dataplane.xlat.translator import (
    Translator,
    TranslatorError,
    decode_value,
    encode_value,
)

BLUE = ipaddress.IPv6Network("fd00:b1::/96")
A = ipaddress.IPv4Address("10.200.0.5")
PIN = "/sys/fs/bpf/calico/xlat"


class FakeKernel:
    """Just enough of ip, tc, bpftool and mount: links, pinned objects, filters, map."""

    def __init__(self, links: dict[str, int], pinned: bool = False, mounted: bool = True):
        self.links = dict(links)
        self.progs = {"xlat_ingress": 11, "xlat_egress": 12} if pinned else {}
        self.map_pinned = pinned
        self.mounted = mounted
        self.filters: dict[tuple[str, str], int] = {}
        self.entries: dict[int, bytes] = {}
        self.calls: list[list[str]] = []
        self.progs_dirs: list[str] = []

    def __call__(self, args, **kwargs) -> subprocess.CompletedProcess:
        self.calls.append(list(args))
        rc, out = self.answer(list(args))
        return subprocess.CompletedProcess(args, rc, out, "" if rc == 0 else "fake error")

    def answer(self, a: list[str]) -> tuple[int, str]:
        if a[:3] == ["ip", "-j", "link"]:
            if len(a) > 4:
                idx = self.links.get(a[5])
                return (0, json.dumps([{"ifindex": idx}])) if idx else (1, "")
            return 0, json.dumps([{"ifindex": i, "ifname": n} for n, i in self.links.items()])
        if a[:4] == ["bpftool", "-j", "prog", "show"]:
            pid = self.progs.get(a[-1].rsplit("/", 1)[1])
            return (0, json.dumps({"id": pid})) if pid else (255, "")
        if a[:3] == ["bpftool", "map", "show"]:
            return (0, "") if self.map_pinned else (255, "")
        if a[:3] == ["bpftool", "prog", "loadall"]:
            self.progs_dirs.append(a[4].rsplit("/", 1)[1])
            self.progs = {"xlat_ingress": 21, "xlat_egress": 22}
            self.map_pinned = True
            return 0, ""
        if a[:3] == ["bpftool", "map", "update"]:
            self.entries[int.from_bytes(unhex(a[6:11]), "little")] = unhex(a[12:])
            return 0, ""
        if a[:3] == ["bpftool", "map", "delete"]:
            del self.entries[int.from_bytes(unhex(a[6:11]), "little")]
            return 0, ""
        if a[:4] == ["bpftool", "-j", "map", "dump"]:
            return 0, json.dumps([{"key": [hex(b) for b in k.to_bytes(4, "little")],
                                   "value": [hex(b) for b in v]}
                                  for k, v in self.entries.items()])
        if a[:4] == ["bpftool", "-j", "net", "show"]:
            return 0, json.dumps([{"xdp": [], "tc": [
                {"devname": dev, "ifindex": self.links[dev], "kind": f"clsact/{direction}",
                 "name": f"xlat_{direction}:[*fsobj]", "id": pid}
                for (dev, direction), pid in self.filters.items()]}])
        if a[:2] == ["tc", "-j"]:
            pid = self.filters.get((a[5], a[6]))
            return 0, json.dumps([] if pid is None else [
                {"pref": 1, "kind": "bpf"},
                {"pref": 1, "kind": "bpf", "options": {"handle": "0x1", "prog": {"id": pid}}}])
        if a[:3] == ["tc", "filter", "replace"]:
            self.filters[(a[4], a[5])] = self.progs[a[-1].rsplit("/", 1)[1]]
            return 0, ""
        if a[:3] == ["tc", "filter", "del"]:
            del self.filters[(a[4], a[5])]
            return 0, ""
        if a[0] == "ls":
            return 0, "maps\nprogs-000000000000\n" + "".join(
                f"{d}\n" for d in self.progs_dirs)
        if a[0] == "findmnt":
            return (0, "") if self.mounted else (1, "")
        return 0, ""  # tc qdisc replace, mkdir, rm, mount

    def ran(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls if c[:len(prefix)] == list(prefix)]


def unhex(args: list[str]) -> bytes:
    assert args[0] == "hex"
    return bytes(int(b, 16) for b in args[1:])


@pytest.fixture
def obj(tmp_path):
    path = tmp_path / "xlat.o"
    path.write_bytes(b"\x7fELF")
    return str(path)


def test_first_attach_loads_pins_and_attaches(obj):
    kernel = FakeKernel({"calia1": 7}, mounted=False)
    Translator(PIN, obj, run=kernel).attach("calia1", BLUE, A)
    assert kernel.ran("mount", "-t", "bpf", "bpf", "/sys/fs/bpf")
    (load,) = kernel.ran("bpftool", "prog", "loadall")
    digest = hashlib.sha256(Path(obj).read_bytes()).hexdigest()[:12]
    assert load == ["bpftool", "prog", "loadall", obj, f"{PIN}/progs-{digest}", "type",
                    "classifier", "pinmaps", f"{PIN}/maps"]
    # Programs of an older object are unpinned once the new ones are.
    assert kernel.ran("rm", "-rf", f"{PIN}/progs-000000000000")
    assert not kernel.ran("rm", "-rf", f"{PIN}/progs-{digest}")[1:]
    assert decode_value(kernel.entries[7]) == ("calia1", BLUE, A)
    assert kernel.filters == {("calia1", "ingress"): 21, ("calia1", "egress"): 22}
    assert kernel.ran("tc", "qdisc", "replace", "dev", "calia1", "clsact")
    # The map entry is written before the filters that read it.
    order = [c[:3] for c in kernel.calls]
    assert order.index(["bpftool", "map", "update"]) < order.index(["tc", "filter", "replace"])


def test_reattach_adopts_without_touching_filters(obj):
    kernel = FakeKernel({"calia1": 7}, pinned=True)
    kernel.filters = {("calia1", "ingress"): 11, ("calia1", "egress"): 12}
    Translator(PIN, obj, run=kernel).attach("calia1", BLUE, A)
    assert not kernel.ran("bpftool", "prog", "loadall")
    assert not kernel.ran("tc", "filter", "replace")
    assert decode_value(kernel.entries[7]) == ("calia1", BLUE, A)


def test_filter_running_another_program_is_replaced(obj):
    kernel = FakeKernel({"calia1": 7}, pinned=True)
    kernel.filters = {("calia1", "ingress"): 99, ("calia1", "egress"): 12}
    Translator(PIN, obj, run=kernel).attach("calia1", BLUE, A)
    assert [c[5] for c in kernel.ran("tc", "filter", "replace")] == ["ingress"]
    assert kernel.filters[("calia1", "ingress")] == 11


def test_reload_keeps_the_pinned_map(obj):
    kernel = FakeKernel({"calia1": 7})
    kernel.map_pinned = True  # programs lost, map still pinned
    Translator(PIN, obj, run=kernel).attach("calia1", BLUE, A)
    (load,) = kernel.ran("bpftool", "prog", "loadall")
    assert ["map", "name", "xlat_endpoints", "pinned", f"{PIN}/maps/xlat_endpoints"] == \
        load[7:]


def test_detach_removes_filters_then_entry_also_of_a_vanished_interface(obj):
    kernel = FakeKernel({"calia1": 7, "calib1": 8})
    tr = Translator(PIN, obj, run=kernel)
    tr.attach("calia1", BLUE, A)
    tr.attach("calib1", BLUE, ipaddress.IPv4Address("10.200.0.7"))
    tr.detach("calia1")
    assert set(kernel.entries) == {8}
    assert set(kernel.filters) == {("calib1", "ingress"), ("calib1", "egress")}
    del kernel.links["calib1"]  # the kernel removed its filters with it
    kernel.filters.clear()
    tr.detach("calib1")
    assert kernel.entries == {}
    tr.detach("calib1")  # idempotent


def test_attached_reports_entries_whose_interface_is_still_there(obj):
    kernel = FakeKernel({"calia1": 7, "calib1": 8})
    tr = Translator(PIN, obj, run=kernel)
    tr.attach("calia1", BLUE, A)
    tr.attach("calib1", BLUE, ipaddress.IPv4Address("10.200.0.7"))
    kernel.links = {"calia1": 7, "caliother": 8}  # index 8 now belongs to another link
    kernel.filters = {k: v for k, v in kernel.filters.items() if k[0] == "calia1"}
    assert Translator(PIN, obj, run=kernel).attached() == {"calia1": (BLUE, A)}


def test_attached_needs_both_filters_running_the_current_programs(obj, tmp_path):
    kernel = FakeKernel({"calia1": 7, "calib1": 8})
    tr = Translator(PIN, obj, run=kernel)
    tr.attach("calia1", BLUE, A)
    tr.attach("calib1", BLUE, ipaddress.IPv4Address("10.200.0.7"))
    del kernel.filters[("calib1", "egress")]  # half attached: Felix must attach it again
    assert set(tr.attached()) == {"calia1"}
    kernel.filters[("calia1", "ingress")] = 5  # an older program
    assert tr.attached() == {}
    # Without an object to compare with, any xlat programs count.
    assert set(Translator(PIN, str(tmp_path / "none.o"), run=kernel).attached()) == {"calia1"}


def test_nothing_loaded_means_nothing_attached(obj):
    kernel = FakeKernel({"calia1": 7})
    assert Translator(PIN, obj, run=kernel).attached() == {}
    assert not kernel.ran("bpftool", "prog", "loadall")


@pytest.mark.parametrize(("ifname", "prefix", "ipv4", "message"), [
    ("calia1", ipaddress.IPv6Network("fd00:b1::/64"), A, "fd00:b1::/64 is not an IPv6 /96"),
    ("calia1", BLUE, ipaddress.IPv6Address("::1"), "::1 is not IPv4"),
    ("x" * 16, BLUE, A, "is not a Linux name"),
])
def test_bad_endpoint_is_refused_before_any_command(obj, ifname, prefix, ipv4, message):
    kernel = FakeKernel({"calia1": 7})
    with pytest.raises(ValueError, match=message):
        Translator(PIN, obj, run=kernel).attach(ifname, prefix, ipv4)
    assert kernel.calls == []


def test_missing_object_and_missing_interface_fail_loudly(tmp_path, obj):
    with pytest.raises(TranslatorError, match="run `make setup`"):
        Translator(PIN, str(tmp_path / "none.o"), run=FakeKernel({})).attach("calia1", BLUE, A)
    with pytest.raises(TranslatorError, match="calia1: no such interface"):
        Translator(PIN, obj, run=FakeKernel({})).attach("calia1", BLUE, A)


def test_a_missing_program_is_named(obj):
    def run(args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", args[0])
    with pytest.raises(TranslatorError, match="program 'bpftool' not found"):
        Translator(PIN, obj, run=run).attach("calia1", BLUE, A)


def test_value_encoding_round_trips():
    raw = encode_value("calia1", BLUE, A)
    assert len(raw) == 32
    assert raw[:16] == ipaddress.IPv6Address("fd00:b1::a c8:5".replace(" ", "")).packed
    assert decode_value(raw) == ("calia1", BLUE, A)
