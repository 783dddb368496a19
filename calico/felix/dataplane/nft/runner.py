"""Running `nft`: the only module here that touches the kernel.

The managers take a runner as a constructor argument; unit tests pass a fake that records
scripts, dataplane tests pass `NftRunner(netns=...)` to work inside a test namespace.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Protocol


class NftError(RuntimeError):
    """`nft` rejected a script or a listing failed; the transaction did not happen."""


class Runner(Protocol):
    def run(self, script: str) -> None: ...

    def list_table(self, family: str, name: str) -> dict | None:
        """`nft -j list table` parsed, or None when the table does not exist."""


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

    def list_table(self, family: str, name: str) -> dict | None:
        proc = self._exec(["-j", "list", "table", family, name])
        if proc.returncode != 0:
            if "No such file or directory" in proc.stderr and "namespace" not in proc.stderr:
                return None
            raise NftError(f"nft list table {family} {name} failed: {proc.stderr.strip()}")
        return json.loads(proc.stdout)
