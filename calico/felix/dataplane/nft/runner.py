"""Running nft: the only module here that touches the kernel.

The managers take a runner as a constructor argument; unit tests pass a fake that records
scripts, dataplane tests pass a runner bound to a test namespace. Two real runners speak the
same interface:

- `LibNftRunner`: libnftables in-process (libnft.py). No fork/exec per transaction, one
  context kept across calls; about half the cost of `nft -f` for a small transaction.
- `NftRunner`: pipes scripts to the `nft` binary (`ip netns exec` for a namespace). The
  fallback when libnftables.so.1 is missing, and what tests use to compare against.

`make_runner()` picks the library when it is there. Read-back (`read_kernel`) lists the
table as text with numeric priorities and protocols and parses it (readback.py);
`list_table` gives the JSON form for callers that want it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Protocol

from calico.felix.dataplane.nft.libnft import (
    OUTPUT_JSON,
    OUTPUT_NUMERIC_PRIO,
    OUTPUT_NUMERIC_PROTO,
    LibNft,
)
from calico.felix.dataplane.nft.readback import parse_table, parse_text
from calico.felix.dataplane.nft.table import KernelState

_LIST_FLAGS = OUTPUT_NUMERIC_PRIO | OUTPUT_NUMERIC_PROTO


class NftError(RuntimeError):
    """nft rejected a script or a listing failed; the transaction did not happen."""


class Runner(Protocol):
    def run(self, script: str) -> None: ...

    def list_table(self, family: str, name: str) -> dict | None:
        """`nft -j list table` parsed, or None when the table does not exist."""


def read_kernel(runner: Runner, family: str, name: str, *,
                believed: KernelState | None = None) -> KernelState:
    """The runner's cheapest read-back of a table (text when it can, else JSON); with
    `believed`, objects that match it are shared with it (see readback.parse_text)."""
    read = getattr(runner, "read_kernel", None)
    if read is not None:
        return read(family, name, believed=believed)
    return parse_table(runner.list_table(family, name))


def _missing(err: str) -> bool:
    return "No such file or directory" in err and "namespace" not in err


class NftRunner:
    """Pipes scripts to `nft -f -` (one atomic transaction per call)."""

    def __init__(self, netns: str | None = None, nft: str = "nft") -> None:
        self._prefix: Sequence[str] = ("ip", "netns", "exec", netns) if netns else ()
        self._nft = nft

    def _exec(self, args: Sequence[str], stdin: str | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*self._prefix, self._nft, *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def run(self, script: str) -> None:
        proc = self._exec(["-f", "-"], stdin=script)
        if proc.returncode != 0:
            raise NftError(f"nft -f failed ({proc.returncode}): {proc.stderr.strip()[:4000]}")

    def _list(self, flags: Sequence[str], family: str, name: str) -> str | None:
        proc = self._exec([*flags, "list", "table", family, name])
        if proc.returncode != 0:
            if _missing(proc.stderr):
                return None
            raise NftError(f"nft list table {family} {name} failed: {proc.stderr.strip()}")
        return proc.stdout

    def list_table(self, family: str, name: str) -> dict | None:
        out = self._list(["-j"], family, name)
        return None if out is None else json.loads(out)

    def read_kernel(self, family: str, name: str, *,
                    believed: KernelState | None = None) -> KernelState:
        return parse_text(self._list(["-y", "-p"], family, name), believed)


class LibNftRunner:
    """libnftables in-process; `netns` runs it on a thread inside that namespace.

    A script over `BINARY_BYTES` (a cold start, a full repair) goes to the `nft` binary
    instead when there is one: fork+exec is noise next to a multi-second transaction, and the
    parse tree's peak (hundreds of MB at Calico scale) then lives and dies in the child."""

    BINARY_BYTES = 4 << 20

    def __init__(self, lib: LibNft, binary: NftRunner | None = None) -> None:
        self._lib = lib
        self._binary = binary

    @classmethod
    def load(cls, netns: str | None = None) -> LibNftRunner | None:
        lib = LibNft.load(netns)
        if lib is None:
            return None
        return cls(lib, NftRunner(netns) if shutil.which("nft") else None)

    def run(self, script: str) -> None:
        if self._binary is not None and len(script) > self.BINARY_BYTES:
            self._binary.run(script)
            return
        ok, _, err = self._lib.run(script)
        if not ok:
            raise NftError(f"nft transaction failed: {err.strip()[:4000]}")

    def _list(self, flags: int, family: str, name: str) -> str | None:
        ok, out, err = self._lib.run(f"list table {family} {name}", flags)
        if not ok:
            if _missing(err):
                return None
            raise NftError(f"nft list table {family} {name} failed: {err.strip()}")
        return out

    def list_table(self, family: str, name: str) -> dict | None:
        out = self._list(OUTPUT_JSON, family, name)
        return None if out is None else json.loads(out)

    def read_kernel(self, family: str, name: str, *,
                    believed: KernelState | None = None) -> KernelState:
        return parse_text(self._list(_LIST_FLAGS, family, name), believed)

    def close(self) -> None:
        self._lib.close()


def make_runner(netns: str | None = None) -> LibNftRunner | NftRunner:
    """libnftables in-process when installed, else the `nft` binary."""
    return LibNftRunner.load(netns) or NftRunner(netns)
