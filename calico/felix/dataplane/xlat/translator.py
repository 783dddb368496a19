"""The loader of the address-space translator: tc filters and the BPF endpoint map.

A workload in address space S (translation prefix P, an IPv6 /96) with IPv4 address A is,
outside its own interface, the IPv6 address P::A. `bpf/xlat.c` does the translation at the
host side of the workload's veth: its program `xlat_ingress` (tc clsact ingress, workload ->
host) turns every IPv4 packet into IPv6 P::src -> P::dst, `xlat_egress` (tc egress, host ->
workload) turns IPv6 P::x -> P::A back into IPv4 and drops everything else IPv6 (nothing
crosses spaces). Both read the endpoint's (P, A) from the hash map `xlat_endpoints`, keyed by
the interface's ifindex. docs/xlat-datapath.md has the translation rules.

`Translator` (one per host) owns the kernel side and nothing else:

- Programs and map are pinned under `pin_dir` on a BPF filesystem (/sys/fs/bpf is mounted
  when it is not): `maps/xlat_endpoints`, and `progs-<digest>/xlat_{ingress,egress}` where
  the digest is the object file's SHA-256 (12 hex digits). The first `attach()` loads the
  object when its programs are not pinned; a restarted Felix finds the pins and adopts them.
  A new object (an upgrade) is loaded next to the old programs, reusing the pinned map, and
  each `attach()` then swaps the endpoint's filters atomically; the older `progs-*`
  directories are unpinned (programs still attached stay alive until replaced). The map's
  layout is part of the contract with already-pinned maps: changing it needs a new map name.
- One `pin_dir` per network namespace: the map is keyed by ifindex.
- `attach(ifname, prefix, ipv4)` is idempotent: it writes the map entry first, then makes sure
  clsact is there and both filters run the pinned programs (`tc filter replace`, atomic, only
  when the attached program is not the pinned one), so re-attaching what a previous Felix
  attached changes nothing and loses no packet.
- `detach(ifname)` removes the filters (when the interface still exists) and then the map
  entry. The map value carries the interface name, so the entry of a vanished interface is
  still found and removed.
- `attached()` is what the kernel has now, as this Translator would attach it: the map
  entries whose ifindex still belongs to an interface of the recorded name and whose tc
  filters (both) run the programs of the object at `obj_path` (any xlat programs when that
  file is missing). After an upgrade it is empty until the new object's programs are
  swapped in, so a Felix reconciling against it re-attaches every endpoint.

Everything reaching the outside goes through `run` (subprocess.run's signature): `ip`, `tc`,
`bpftool`, `mount`, `mkdir`. Errors raise `TranslatorError` naming the interface and command.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import struct
import subprocess
from collections.abc import Callable, Sequence

DEFAULT_PIN_DIR = "/sys/fs/bpf/calico/xlat"
BPF_FS_ROOT = "/sys/fs/bpf"
OBJ_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf", "xlat.o")
MAP_NAME = "xlat_endpoints"
PROGRAMS = {"ingress": "xlat_ingress", "egress": "xlat_egress"}
FILTER_PREF = "1"
FILTER_HANDLE = "1"
IFNAME_LEN = 16
VALUE = struct.Struct("=12s4s16s")  # prefix (network order), IPv4 (network order), ifname
KEY = struct.Struct("=I")  # ifindex, host order

Run = Callable[..., subprocess.CompletedProcess]
Endpoint = tuple[ipaddress.IPv6Network, ipaddress.IPv4Address]


class TranslatorError(RuntimeError):
    """A kernel operation of the translator failed (the message names what and where)."""


def encode_value(ifname: str, prefix: ipaddress.IPv6Network,
                 ipv4: ipaddress.IPv4Address) -> bytes:
    return VALUE.pack(prefix.network_address.packed[:12], ipv4.packed,
                      ifname.encode()[:IFNAME_LEN - 1])


def decode_value(raw: bytes) -> tuple[str, ipaddress.IPv6Network, ipaddress.IPv4Address]:
    prefix, ipv4, name = VALUE.unpack(raw)
    network = ipaddress.IPv6Network((prefix + bytes(4), 96))
    return name.rstrip(b"\0").decode(), network, ipaddress.IPv4Address(ipv4)


def hex_args(raw: bytes) -> list[str]:
    return ["hex", *(f"{b:02x}" for b in raw)]


def check_endpoint(ifname: str, prefix: ipaddress.IPv6Network,
                   ipv4: ipaddress.IPv4Address) -> None:
    if not ifname or len(ifname) >= IFNAME_LEN:
        raise ValueError(f"xlat endpoint: interface name {ifname!r} is not a Linux name")
    if not isinstance(prefix, ipaddress.IPv6Network) or prefix.prefixlen != 96:
        raise ValueError(f"xlat endpoint {ifname}: translationPrefix {prefix} is not an "
                         "IPv6 /96")
    if not isinstance(ipv4, ipaddress.IPv4Address):
        raise ValueError(f"xlat endpoint {ifname}: address {ipv4} is not IPv4")


class Translator:
    """The translator's kernel state on one host (see the module docstring)."""

    def __init__(self, pin_dir: str = DEFAULT_PIN_DIR, obj_path: str | None = None,
                 run: Run = subprocess.run) -> None:
        self.pin_dir = pin_dir.rstrip("/")
        self.obj_path = obj_path or OBJ_PATH
        self._runner = run
        self.map_path = f"{self.pin_dir}/maps/{MAP_NAME}"

    # ---- public API ---------------------------------------------------------------------

    def attach(self, ifname: str, prefix: ipaddress.IPv6Network,
               ipv4: ipaddress.IPv4Address) -> None:
        check_endpoint(ifname, prefix, ipv4)
        progs = self._ensure_loaded()
        ifindex = self._ifindex(ifname)
        if ifindex is None:
            raise TranslatorError(f"xlat attach {ifname}: no such interface")
        self._map_update(ifindex, encode_value(ifname, prefix, ipv4))
        self._cmd(["tc", "qdisc", "replace", "dev", ifname, "clsact"], ifname)
        for direction, path in progs["paths"].items():
            if self._filter_prog_id(ifname, direction) != progs["ids"][direction]:
                self._cmd(["tc", "filter", "replace", "dev", ifname, direction,
                           "protocol", "all", "pref", FILTER_PREF, "handle", FILTER_HANDLE,
                           "bpf", "direct-action", "object-pinned", path], ifname)

    def detach(self, ifname: str) -> None:
        ifindex = self._ifindex(ifname)
        if ifindex is not None:
            for direction in PROGRAMS:
                if self._filter_prog_id(ifname, direction) is not None:
                    self._cmd(["tc", "filter", "del", "dev", ifname, direction, "protocol",
                               "all", "pref", FILTER_PREF, "handle", FILTER_HANDLE, "bpf"],
                              ifname)
        if not self._loaded():
            return
        for key, (name, _, _) in self._map_entries().items():
            if name == ifname or key == ifindex:
                self._cmd(["bpftool", "map", "delete", "pinned", self.map_path, "key",
                           *hex_args(KEY.pack(key))], ifname)

    def attached(self) -> dict[str, Endpoint]:
        if not self._loaded():
            return {}
        links, running = self._links(), self._tc_programs()
        current = self._current_prog_ids()
        attached = {}
        for ifindex, (name, prefix, ipv4) in self._map_entries().items():
            ids = {d: running.get((ifindex, d)) for d in PROGRAMS}
            if links.get(ifindex) != name or None in ids.values():
                continue
            if current is None or ids == current:
                attached[name] = (prefix, ipv4)
        return attached

    def _current_prog_ids(self) -> dict[str, int | None] | None:
        """The pinned programs of the object at obj_path by direction (None for a direction
        not loaded yet); None when there is no object to compare with."""
        if not os.path.exists(self.obj_path):
            return None
        return {d: self._prog_id(p) for d, p in self._prog_paths().items()}

    def _tc_programs(self) -> dict[tuple[int, str], int]:
        """(ifindex, "ingress"/"egress") -> id of the xlat program tc runs there."""
        out = self._cmd(["bpftool", "-j", "net", "show"], "tc programs")
        found = {}
        for section in json.loads(out or "[]"):
            for item in section.get("tc", []):
                direction = item.get("kind", "").rpartition("/")[2]
                if item.get("name", "").startswith(PROGRAMS.get(direction, "-")):
                    found[(item["ifindex"], direction)] = item["id"]
        return found

    # ---- BPF objects --------------------------------------------------------------------

    def _loaded(self) -> bool:
        return self._map_pinned()

    def _prog_id(self, path: str) -> int | None:
        proc = self._run(["bpftool", "-j", "prog", "show", "pinned", path],
                         capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)["id"]

    def _ensure_loaded(self) -> dict[str, dict]:
        """Direction -> pinned program path, loading the object when its programs are not
        pinned yet; also returns their ids under `ids`."""
        if not os.path.exists(self.obj_path):
            raise TranslatorError(f"xlat: BPF object {self.obj_path} is missing: run "
                                  "`make setup` to build it (clang -O2 -g -target bpf, see "
                                  "scripts/setup.sh)")
        paths = self._prog_paths()
        progs = os.path.dirname(paths["ingress"])
        digest = progs.rpartition("progs-")[2]
        ids = {d: self._prog_id(p) for d, p in paths.items()}
        if all(i is not None for i in ids.values()) and self._map_pinned():
            return {"paths": paths, "ids": ids}
        self._mount_bpffs()
        self._cmd(["mkdir", "-p", f"{self.pin_dir}/maps"], "load")
        self._cmd(["rm", "-rf", progs], "load")  # a half-done earlier load
        maps = (["map", "name", MAP_NAME, "pinned", self.map_path] if self._map_pinned()
                else ["pinmaps", f"{self.pin_dir}/maps"])  # reuse the map, or pin a new one
        self._cmd(["bpftool", "prog", "loadall", self.obj_path, progs, "type", "classifier",
                   *maps], "load")
        ids = {d: self._prog_id(p) for d, p in paths.items()}
        missing = [d for d, i in ids.items() if i is None]
        if missing:
            raise TranslatorError(f"xlat load: programs {missing} not pinned after loading "
                                  f"{self.obj_path}")
        for name in self._cmd(["ls", self.pin_dir], "load").split():
            if name.startswith("progs-") and name != f"progs-{digest}":
                self._cmd(["rm", "-rf", f"{self.pin_dir}/{name}"], "load")
        return {"paths": paths, "ids": ids}

    def _prog_paths(self) -> dict[str, str]:
        """Where the programs of the object at obj_path are pinned, by direction."""
        with open(self.obj_path, "rb") as obj:
            digest = hashlib.sha256(obj.read()).hexdigest()[:12]
        return {d: f"{self.pin_dir}/progs-{digest}/{p}" for d, p in PROGRAMS.items()}

    def _map_pinned(self) -> bool:
        return self._run(["bpftool", "map", "show", "pinned", self.map_path],
                         capture_output=True, text=True).returncode == 0

    def _mount_bpffs(self) -> None:
        if not (self.pin_dir + "/").startswith(BPF_FS_ROOT + "/"):
            return  # a caller-chosen BPF filesystem (tests mount their own)
        if self._run(["findmnt", "-n", "-t", "bpf", BPF_FS_ROOT], capture_output=True,
                     text=True).returncode != 0:
            self._cmd(["mount", "-t", "bpf", "bpf", BPF_FS_ROOT], "load")

    def _map_update(self, ifindex: int, value: bytes) -> None:
        self._cmd(["bpftool", "map", "update", "pinned", self.map_path,
                   "key", *hex_args(KEY.pack(ifindex)), "value", *hex_args(value)],
                  f"ifindex {ifindex}")

    def _map_entries(self) -> dict[int, tuple[str, ipaddress.IPv6Network,
                                              ipaddress.IPv4Address]]:
        out = self._cmd(["bpftool", "-j", "map", "dump", "pinned", self.map_path], "dump")
        entries = {}
        for item in json.loads(out or "[]"):
            key = bytes(int(b, 16) for b in item["key"])
            value = bytes(int(b, 16) for b in item["value"])
            entries[KEY.unpack(key)[0]] = decode_value(value)
        return entries

    # ---- links and filters --------------------------------------------------------------

    def _ifindex(self, ifname: str) -> int | None:
        proc = self._run(["ip", "-j", "link", "show", "dev", ifname], capture_output=True,
                         text=True)
        if proc.returncode != 0:
            return None
        return json.loads(proc.stdout)[0]["ifindex"]

    def _links(self) -> dict[int, str]:
        out = self._cmd(["ip", "-j", "link", "show"], "links")
        return {link["ifindex"]: link["ifname"] for link in json.loads(out or "[]")}

    def _filter_prog_id(self, ifname: str, direction: str) -> int | None:
        """The id of the program our filter (pref 1, handle 1) runs, None without one."""
        proc = self._run(["tc", "-j", "filter", "show", "dev", ifname, direction],
                         capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            return None
        for item in json.loads(proc.stdout):
            options = item.get("options", {})
            if item.get("pref") == int(FILTER_PREF) and \
                    options.get("handle") == f"0x{FILTER_HANDLE}" and "prog" in options:
                return options["prog"]["id"]
        return None

    def _run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        try:
            return self._runner(args, **kwargs)
        except FileNotFoundError as exc:
            raise TranslatorError(f"xlat: program {args[0]!r} not found ({exc}): run "
                                  "`make setup` to install it") from exc

    def _cmd(self, args: Sequence[str], what: str) -> str:
        proc = self._run(list(args), capture_output=True, text=True)
        if proc.returncode != 0:
            raise TranslatorError(f"xlat {what}: `{' '.join(args)}` failed "
                                  f"({proc.returncode}): {(proc.stderr or '').strip()}")
        return proc.stdout
