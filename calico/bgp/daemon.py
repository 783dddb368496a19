"""The BGP daemon: keeps this node's bird.conf equal to `render()` of the datastore, and BIRD
reloaded on it.

In:  a syncer over Nodes, BGPPeers, BGPConfigurations, IPPools, BGPFilters and this node's block
     affinities (`/calico/ipam/v2/host/<node>/`), plus BGP passwords from a secrets directory.
Out: the configuration file, written atomically (temporary file + rename) and only when its
     text changes; after each change `birdc -s <socket> configure`, which re-reads the file
     without dropping established sessions. If BIRD is not running yet (no socket), the file
     is just written: BIRD reads it when it starts.

`BGPState` is the pure part (syncer updates in, `BGPInputs` out); `BGPDaemon` is the loop:
updates mark the state dirty, the loop waits a short settle time so that a burst of updates
(a resync, a policy of 50 peers) gives one render, renders, writes and reloads. Secrets are
re-read every `secret_refresh` seconds, since nothing watches the directory.

Passwords. Calico's BGPPeer `password.secretKeyRef` and BGPConfiguration `nodeMeshPassword`
name a Kubernetes secret and key; there are no Kubernetes secrets here, so a secret is a
file `<secrets dir>/<secret name>/<key>` (the layout of a Kubernetes secret mounted as a
volume), the directory given by `CALICO_BGP_SECRETS_DIR` (default /etc/calico/bgp-secrets).
Trailing newlines are stripped. A peer whose secret is missing is peered without a password,
as Calico's confd does, with a warning naming the secret (nothing is logged when the
reference says `optional: true`).

Address spaces (our extension): a space's pools and this node's blocks of the space
(affinities under `/calico/ipam/v2/spaces/<space>/host/<node>/`) are rendered in their
translated IPv6 form P::N/(96+len) — a blackhole per block and its export, as for any IPv6
block — since outside its hosts' interfaces a space is IPv6 (calico/api/addressspace.py). A
space pool or block whose space is unknown is left out.

`CALICO_ROUTER_ID` (an IPv4 address, or `hash` for one derived from the node name, Calico's
setting) is read from the environment and passed to the renderer.

Log level, as Calico's confd: `BGP_LOGSEVERITYSCREEN` from the environment, else
BGPConfiguration `logSeverityScreen` of `node.<name>`, else of `default`, else the level the
daemon started with (`CALICO_LOG_LEVEL`, Info); applied at every render.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from calico import logsetup
from calico.api.addressspace import translated_net
from calico.bgp.render import DEFAULT_ROUTE_PROTOCOL, BGPInputs, RenderError, render
from calico.bgp.render.model import node_setting
from calico.datastore.client import parse_key
from calico.datastore.ipamkeys import SPACES_PREFIX, SpaceKeys
from calico.datastore.kv import Backend
from calico.datastore.syncer import Syncer, SyncStatus, SyncUpdate
from calico.ipam.model import affinities_prefix, parse_affinity_key

log = logging.getLogger(__name__)

DEFAULT_SECRETS_DIR = "/etc/calico/bgp-secrets"
MESH_PASSWORD = "__mesh__"  # the renderer's key for the node-to-node mesh password
# Calico's severities (logSeverityScreen) as logging levels; Trace is Debug here.
LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL}
KINDS = ("Node", "BGPPeer", "BGPConfiguration", "IPPool", "BGPFilter", "WorkloadEndpoint",
         "AddressSpace")


class SecretStore:
    """Secrets as files `<root>/<name>/<key>` (a Kubernetes secret volume's layout)."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root or os.environ.get("CALICO_BGP_SECRETS_DIR") or DEFAULT_SECRETS_DIR

    def get(self, name: str, key: str) -> str | None:
        if not name or "/" in name or "/" in key or name.startswith(".") or key.startswith("."):
            return None
        try:
            with open(os.path.join(self.root, name, key)) as f:
                return f.read().rstrip("\r\n")
        except OSError:
            return None


@dataclass
class BGPState:
    """What the renderer needs, kept current from syncer updates. Pure."""

    hostname: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # this node's only
    blocks: dict[str, str] = field(default_factory=dict)  # affinity key -> block CIDR
    spaces: dict[str, str] = field(default_factory=dict)  # address space -> prefix
    space_blocks: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (S, CIDR)

    def apply(self, updates: list[SyncUpdate]) -> None:
        for up in updates:
            if up.key.startswith(SPACES_PREFIX):
                self._apply_space_affinity(up.key, up.value)
                continue
            # Affinity keys first: the client's parse_key also names them (BlockAffinity).
            affinity = parse_affinity_key(up.key)
            if affinity is not None:
                if affinity[0] == self.hostname:
                    self._apply_affinity(up.key, str(affinity[1]), up.value)
                continue
            target = parse_key(up.key)
            if target and target[0] == "AddressSpace":
                self._apply_space(target[2], up.value)
                continue
            table = {"Node": self.nodes, "BGPPeer": self.peers, "BGPConfiguration":
                     self.configs, "IPPool": self.pools, "BGPFilter": self.filters,
                     }.get(target[0]) if target else None
            if target and target[0] == "WorkloadEndpoint":
                self._apply_workload(up.key, up.value)
                continue
            if table is None:
                continue
            if up.value is None:
                table.pop(target[2], None)
            else:
                table[target[2]] = up.value.to_dict()

    def _apply_space(self, name: str, value: Any) -> None:
        prefix = None if value is None else value.spec.translationPrefix
        if prefix:
            self.spaces[name] = prefix
        else:
            self.spaces.pop(name, None)

    def _apply_space_affinity(self, key: str, value: Any) -> None:
        space = key[len(SPACES_PREFIX):].partition("/")[0]
        affinity = SpaceKeys(space).parse_affinity_key(key)
        if affinity is None or affinity[0] != self.hostname:
            return  # a block or a handle of the space, or another node's affinity
        self._apply_affinity(key, str(affinity[1]), value)
        if key in self.blocks:
            self.space_blocks[key] = (space, self.blocks.pop(key))
        else:
            self.space_blocks.pop(key, None)

    def _translated(self) -> tuple[list[dict[str, Any]], list[str]]:
        """(the pools, space pools in their translated form; this node's blocks, likewise)."""
        pools = []
        for pool in self.pools.values():
            spec = pool.get("spec") or {}
            space = spec.get("addressSpace")
            if space is None:
                pools.append(pool)
            elif space in self.spaces:
                net = translated_net(ipaddress.IPv6Network(self.spaces[space]), spec["cidr"])
                pools.append({**pool, "spec": {**spec, "cidr": str(net)}})
        blocks = set(self.blocks.values())
        blocks |= {str(translated_net(ipaddress.IPv6Network(self.spaces[s]), cidr))
                   for s, cidr in self.space_blocks.values() if s in self.spaces}
        return pools, sorted(blocks)

    def _apply_workload(self, key: str, value: Any) -> None:
        """Only this node's endpoints are kept (for local workload peering)."""
        doc = value.to_dict() if value is not None else None
        if doc is None or (doc.get("spec") or {}).get("node") != self.hostname:
            self.workloads.pop(key, None)
        else:
            self.workloads[key] = doc

    def _apply_affinity(self, key: str, cidr: str, value: Any) -> None:
        """Only confirmed affinities count (Calico's confd skips pending ones). The value is
        IPAM's JSON, or a BlockAffinity resource if the syncer is given the kind."""
        if value is not None and not isinstance(value, dict):
            spec = getattr(value, "spec", None)
            value = {"state": getattr(spec, "state", None),
                     "deleted": getattr(spec, "deleted", None) in (True, "true")}
        if (value is None or value.get("deleted")
                or value.get("state") not in (None, "", "confirmed")):
            self.blocks.pop(key, None)
        else:
            self.blocks[key] = cidr

    def inputs(self, secrets: SecretStore, route_protocol: int = DEFAULT_ROUTE_PROTOCOL,
               ) -> tuple[BGPInputs, list[str]]:
        """The renderer's inputs, and sentences about peers left out for want of a secret."""
        problems: list[str] = []
        passwords: dict[str, str] = {}
        peers = []
        for name, peer in sorted(self.peers.items()):
            ref = (((peer.get("spec") or {}).get("password") or {}).get("secretKeyRef"))
            if ref:
                value = secrets.get(ref.get("name") or "", ref.get("key") or "")
                if value is None and not ref.get("optional"):
                    problems.append(f'BGPPeer "{name}" peered without a password: its '
                                    f'password secret {ref.get("name")}/{ref.get("key")} '
                                    f"is not in {secrets.root}")
                if value is not None:
                    passwords[name] = value
            peers.append(peer)
        mesh_ref = (((self.configs.get("default") or {}).get("spec") or {})
                    .get("nodeMeshPassword") or {}).get("secretKeyRef")
        if mesh_ref:
            value = secrets.get(mesh_ref.get("name") or "", mesh_ref.get("key") or "")
            if value is None:
                problems.append(f"nodeMeshPassword secret {mesh_ref.get('name')}/"
                                f"{mesh_ref.get('key')} is not in {secrets.root}: "
                                "the mesh runs without a password")
            else:
                passwords[MESH_PASSWORD] = value
        pools, blocks = self._translated()
        inp = BGPInputs(hostname=self.hostname, nodes=dict(self.nodes), peers=peers,
                        configs=dict(self.configs), pools=pools, blocks=blocks,
                        route_protocol=route_protocol, passwords=passwords,
                        router_id=os.environ.get("CALICO_ROUTER_ID") or None,
                        filters=dict(self.filters),
                        workloads=[self.workloads[k] for k in sorted(self.workloads)])
        return inp, problems


def birdc_configure(socket_path: str) -> tuple[bool, str]:
    """Ask BIRD to re-read its configuration: (ok, what BIRD said)."""
    try:
        proc = subprocess.run(["birdc", "-s", socket_path, "configure"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, str(err)
    out = (proc.stdout + proc.stderr).strip()
    ok = proc.returncode == 0 and ("Reconfigured" in out or "Reconfiguration" in out)
    return ok, out.splitlines()[-1] if out else f"birdc exited {proc.returncode}"


def write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bird.conf.", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o640)  # it may hold BGP passwords
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class BGPDaemon:
    """Keeps `config_path` equal to `render()` of the datastore: after the first in-sync, every
    change (batched by `settle`) re-renders, writes only a changed text, and reloads BIRD."""

    def __init__(self, backend: Backend, hostname: str, config_path: str, socket_path: str, *,
                 secrets: SecretStore | None = None,
                 reload: Callable[[str], tuple[bool, str]] = birdc_configure,
                 route_protocol: int = DEFAULT_ROUTE_PROTOCOL, settle: float = 0.02,
                 secret_refresh: float = 10.0) -> None:
        self.backend = backend
        self.state = BGPState(hostname)
        self.config_path = config_path
        self.socket_path = socket_path
        self.secrets = secrets or SecretStore()
        self.reload = reload
        self.route_protocol = route_protocol
        self.settle = settle
        self.secret_refresh = secret_refresh
        self.in_sync = threading.Event()
        self.renders = 0  # how many times a changed file was written
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._last_text: str | None = self._read_existing()
        self._last_problems: tuple[str, ...] = ()
        self._start_level = logging.getLogger().level
        self._syncer = Syncer(backend, [*KINDS, affinities_prefix(hostname), SPACES_PREFIX],
                              self)

    def apply_log_level(self, inp: BGPInputs) -> None:
        """The root logger's level from BGP_LOGSEVERITYSCREEN or logSeverityScreen."""
        name = os.environ.get("BGP_LOGSEVERITYSCREEN") or node_setting(inp, "logSeverityScreen")
        wanted = LEVELS.get(str(name).lower(), self._start_level) if name else self._start_level
        root = logging.getLogger()
        if root.level != wanted:
            log.info("BGP daemon: log level %s", logging.getLevelName(wanted))
            root.setLevel(wanted)

    def _read_existing(self) -> str | None:
        try:
            with open(self.config_path) as f:
                return f.read()
        except OSError:
            return None

    # ---- syncer callbacks (syncer thread) ----

    def on_status(self, status: SyncStatus) -> None:
        if status is SyncStatus.IN_SYNC:
            log.info("BGP daemon: datastore in sync")
            self.in_sync.set()
            self._dirty.set()

    def on_updates(self, updates: list[SyncUpdate]) -> None:
        with self._lock:
            self.state.apply(updates)
        self._dirty.set()

    # ---- loop ----

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()

    def run(self) -> None:
        """Until stop(): render on every change (after the first in-sync)."""
        self._syncer.start()
        try:
            next_refresh = time.monotonic()
            while not self._stop.is_set():
                timeout = max(0.0, next_refresh - time.monotonic())
                self._dirty.wait(timeout)
                if self._stop.is_set():
                    break
                if not self.in_sync.is_set():
                    self._dirty.clear()
                    continue
                time.sleep(self.settle)
                self._dirty.clear()
                self.render_once()
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.secret_refresh
        finally:
            self._syncer.stop()

    def render_once(self) -> bool:
        """Render; write and reload if the text changed. Returns whether it changed."""
        with self._lock:
            inp, problems = self.state.inputs(self.secrets, self.route_protocol)
        self.apply_log_level(inp)
        try:
            text = render(inp)
        except RenderError as err:
            problems.append(f"cannot render BIRD configuration yet: {err}")
            text = None
        problems.extend(inp.skipped)
        if tuple(problems) != self._last_problems:
            for p in problems:
                log.warning("BGP daemon: %s", p)
            self._last_problems = tuple(problems)
        if text is None or text == self._last_text:
            return False
        write_atomic(self.config_path, text)
        self._last_text = text
        self.renders += 1
        peers = sum(1 for line in text.splitlines() if line.startswith("protocol bgp "))
        if not os.path.exists(self.socket_path):
            log.info("BGP daemon: wrote %s (%d peers, %d blocks); BIRD not running yet",
                     self.config_path, peers, len(inp.blocks))
            return True
        ok, said = self.reload(self.socket_path)
        if ok:
            log.info("BGP daemon: wrote %s (%d peers, %d blocks); BIRD reloaded: %s",
                     self.config_path, peers, len(inp.blocks), said)
        else:
            log.error("BGP daemon: wrote %s but BIRD did not reload it: %s",
                      self.config_path, said)
        return True


def main(argv: list[str] | None = None) -> int:
    """`python -m calico.bgp.daemon --hostname H --config FILE --socket SOCK` (calico-node
    runs it as a child)."""
    import argparse
    import signal

    from calico.datastore import DatastoreConfig, connect

    parser = argparse.ArgumentParser(prog="calico-bgp-daemon", description=main.__doc__)
    parser.add_argument("--hostname", default=os.environ.get("NODENAME"), required=False)
    parser.add_argument("--config", default="/etc/calico/bird.conf")
    parser.add_argument("--socket", default="/var/run/calico/bird.ctl")
    parser.add_argument("--route-protocol", type=int, default=DEFAULT_ROUTE_PROTOCOL)
    args = parser.parse_args(argv)
    try:
        logsetup.configure("bgp-daemon", logsetup.calico_node_config(os.environ))
    except ValueError as err:
        parser.error(str(err))
    if not args.hostname:
        parser.error("--hostname (or NODENAME) is required")
    backend = connect(DatastoreConfig.from_env())
    daemon = BGPDaemon(backend, args.hostname, args.config, args.socket,
                       route_protocol=args.route_protocol)
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    log.info("BGP daemon for node %s: config %s, BIRD socket %s", args.hostname, args.config,
             args.socket)
    try:
        daemon.run()
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
