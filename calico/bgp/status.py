"""BGP session status read from BIRD: `birdc show protocols`, parsed into `PeerStatus` rows.

The renderer names every BGP protocol after its peer (`Mesh_10_0_0_2`, `Node_fd00__3`,
`Global_10_0_0_4`, `Global_10_0_0_4_port_1790` for a second port, as Calico does), so the peer
address and type come back out of the name: `_` stands for `.` in IPv4 names and `:` in IPv6
names. Used by `calicoctl node status` and
`calico-lab status`; `run_birdc` is the only impure function.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from dataclasses import asdict, dataclass

PEER_TYPES = {"Mesh": "node-to-node mesh", "Node": "node specific", "Global": "global",
              "Local_Workload": "local workload"}
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{2}:\d{2}(:\d{2}(\.\d+)?)?)$")


class BirdUnavailable(Exception):
    """BIRD did not answer on its control socket."""


@dataclass(frozen=True)
class PeerStatus:
    """One BGP session as BIRD reports it, with the peer address and type read back from the
    protocol name; `established` only when BIRD says up and Established."""

    name: str  # the BIRD protocol
    address: str
    type: str  # node-to-node mesh | node specific | global
    state: str  # BIRD's protocol state: up, start, down...
    since: str
    info: str  # Established, Active, Connect... plus BIRD's last error

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version

    @property
    def established(self) -> bool:
        return self.state == "up" and self.info.startswith("Established")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def peer_address(suffix: str) -> str | None:
    """`10_0_0_2` -> 10.0.0.2, `fd00__2` -> fd00::2; None if it is neither."""
    for candidate in (suffix.replace("_", "."), suffix.replace("_", ":")):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def parse_protocols(text: str) -> list[PeerStatus]:
    """The BGP peers in `birdc show protocols` output (other protocols are skipped)."""
    peers = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[1] != "BGP" or "_" not in parts[0]:
            continue
        prefix, _, suffix = parts[0].partition("_")
        if parts[0].startswith("Local_Workload_"):
            prefix, suffix = "Local_Workload", parts[0][len("Local_Workload_"):]
        if prefix not in PEER_TYPES:
            continue
        address = peer_address(re.sub(r"_port_\d+$", "", suffix))
        if address is None:
            continue
        state, rest = parts[3], parts[4:]
        since = []
        while rest and _TIME.match(rest[0]):
            since.append(rest.pop(0))
        peers.append(PeerStatus(parts[0], address, PEER_TYPES[prefix], state, " ".join(since),
                                " ".join(rest)))
    return peers


def run_birdc(socket_path: str, *args: str, timeout: float = 5.0) -> str:
    """`birdc -s SOCK ARGS...` output; raises BirdUnavailable if BIRD does not answer."""
    try:
        proc = subprocess.run(["birdc", "-s", socket_path, *args], capture_output=True,
                              text=True, timeout=timeout)
    except FileNotFoundError:
        raise BirdUnavailable("birdc is not installed") from None
    except subprocess.TimeoutExpired:
        raise BirdUnavailable(f"BIRD did not answer on {socket_path} within {timeout:g}s")\
            from None
    if proc.returncode != 0 or "Unable to connect" in proc.stdout + proc.stderr:
        raise BirdUnavailable((proc.stderr or proc.stdout).strip()
                              or f"birdc exited {proc.returncode}")
    return proc.stdout


def bird_peers(socket_path: str) -> list[PeerStatus]:
    return parse_protocols(run_birdc(socket_path, "show", "protocols"))


def bird_version(socket_path: str) -> str:
    """BIRD's greeting line, e.g. "BIRD 2.0.12 ready."."""
    out = run_birdc(socket_path, "show", "status")
    for line in out.splitlines():
        if line.startswith("BIRD "):
            return line.strip()
    return "BIRD"
