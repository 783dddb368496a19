"""A multi-host Calico cluster on one machine: `Lab`, the engine behind `calico-lab`.

Topology (every name starts with the lab's prefix `calab-<lab>-`, so `down` finds all of it):

    <prefix>fabric   a namespace holding bridge br0 (the L2 fabric); no addresses
    <prefix>hostN    one per host: eth0 on the fabric (198.18.0.1N/24, and fd00:198:18::1N/64
                     with --ipv6), default route via 198.18.0.1 (the ToR's address, present
                     or not), forwarding on, running `calico-node` (BGP daemon, BIRD, Felix)
    <prefix>tor      optional ToR (GoBGP or BIRD, AS 64513) at 198.18.0.1 / fd00:198:18::1
    <prefix>router   with `subnets` > 1 (IPv4 only, no ToR): hosts are dealt round-robin into
                     subnets 198.18.S.0/24, one bridge brS each, and this namespace routes
                     between them (198.18.S.1 on each; it knows only the host subnets, so
                     workloads of different subnets reach each other only through an overlay)
    <prefix>w-NAME   one per workload, attached to its host by the CNI plugin

With `--racks` the hosts sit instead in racks of an L3 leaf-spine fabric (fabric.py): each
rack's subnet behind its ToR router, ToRs joined by spines, hosts peering only with their ToR.

198.18.0.0/15 is the range set aside for network test beds (RFC 2544); fd00::/8 is unique
local. Both exist only inside the lab's namespaces; nothing is added to the machine's own
namespace. Workload pools: 10.65.0.0/16 and fd00:65::/48, created by calico-node.

Datastore: `local` is a SQLite file in the state dir (every namespace sees the file system);
`etcdv3` starts an etcd on the machine's loopback (or uses `--etcd-endpoints`) and a
forwarder (proxy.py) gives every host namespace `http://127.0.0.1:2379`.

State lives in `<state root>/<lab>/state.json` (state root /run/calico-lab, or
$CALICO_LAB_STATE_DIR), with each host's BIRD files and every daemon's log beside it. Several
`calico-lab` commands may run at once (16 `add-workload` in parallel): every change to the
state is a read-modify-write of the file under an exclusive flock on `state.lock` beside it
(`_update`), so no command's change overwrites another's; the slow work (CNI ADD, starting a
daemon) runs outside the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from calico.bgp.status import BirdUnavailable, bird_peers

from . import fabric as fabric_mod
from . import segment
from . import tor as tor_mod
from . import workloads as wl_mod
from .proc import (
    LabError,
    alive,
    netns_delete,
    netns_exec,
    netns_list,
    sh,
    spawn,
    stop_daemon,
)

STATE_ROOT = "/run/calico-lab"
POOL_V4 = "10.65.0.0/16"
POOL_V6 = "fd00:65::/48"
PROXY_PORT = 2379


def state_root() -> str:
    return os.environ.get("CALICO_LAB_STATE_DIR") or STATE_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """One named lab: its state file under the state root (every change a locked
    read-modify-write) and the namespaces, daemons and workloads it records (module doc)."""

    def __init__(self, name: str = "lab") -> None:
        if not name.replace("-", "").isalnum() or len(name) > 12:
            raise LabError(f"lab name {name!r} must be letters, digits and '-', at most 12")
        self.name = name
        self.dir = os.path.join(state_root(), name)
        self.prefix = f"calab-{name}-"
        self.state: dict[str, Any] = {}

    # ---- state ---------------------------------------------------------------------------

    @property
    def state_file(self) -> str:
        return os.path.join(self.dir, "state.json")

    def exists(self) -> bool:
        return os.path.exists(self.state_file)

    def load(self) -> Lab:
        try:
            with open(self.state_file) as f:
                self.state = json.load(f)
        except FileNotFoundError:
            raise LabError(f"lab {self.name!r} is not up (no {self.state_file})") from None
        return self

    def save(self) -> None:
        with self._locked():
            self._write()

    def _write(self) -> None:
        tmp = f"{self.state_file}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=2)
        os.replace(tmp, self.state_file)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "state.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def _update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply `change` to the state as it is on disk now, under the lab's lock, and
        write it back: what other commands recorded meanwhile is kept."""
        with self._locked():
            self.load()
            result = change(self.state)
            self._write()
        return result

    def host(self, name: str) -> dict[str, Any]:
        for h in self.state["hosts"]:
            if h["name"] == name:
                return h
        raise LabError(f"lab {self.name!r} has no host {name!r} "
                       f"(hosts: {', '.join(h['name'] for h in self.state['hosts'])})")

    def workload(self, name: str) -> dict[str, Any]:
        for w in self.state["workloads"]:
            if w["name"] == name:
                return w
        raise LabError(f"lab {self.name!r} has no workload {name!r}")

    # ---- datastore -----------------------------------------------------------------------

    def datastore_env(self, inside: bool) -> dict[str, str]:
        """The datastore settings for a process in a host namespace (`inside`) or in the
        machine's own namespace."""
        ds = self.state["datastore"]
        if ds["type"] == "local":
            return {"DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": ds["path"]}
        if inside:
            eps = ",".join(f"http://127.0.0.1:{PROXY_PORT + i}"
                           for i in range(len(ds["endpoints"])))
        else:
            eps = ",".join(ds["endpoints"])
        return {"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": eps}

    def backend(self):
        from calico.datastore import DatastoreConfig, connect

        return connect(DatastoreConfig.from_env(self.datastore_env(inside=False)))

    def _start_datastore(self, kind: str, etcd_endpoints: str | None) -> None:
        if kind == "local":
            self.state["datastore"] = {"type": "local",
                                       "path": os.path.join(self.dir, "calico.db")}
            return
        if etcd_endpoints:
            eps = [e.strip() for e in etcd_endpoints.split(",") if e.strip()]
            self.state["datastore"] = {"type": "etcdv3", "endpoints": eps, "etcd": None}
        else:
            client, peer = _free_port(), _free_port()
            url, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
            rec = spawn(["etcd", "--name", "lab", "--data-dir", os.path.join(self.dir, "etcd"),
                         "--listen-client-urls", url, "--advertise-client-urls", url,
                         "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                         "--initial-cluster", f"lab={purl}", "--max-txn-ops", "1024",
                         "--log-level", "warn"], os.path.join(self.dir, "etcd.log"))
            self.state["datastore"] = {"type": "etcdv3", "endpoints": [url], "etcd": rec}
            self.save()
        _wait(lambda: self._datastore_answers(), 20, "etcd did not answer")

    def _datastore_answers(self) -> bool:
        try:
            backend = self.backend()
            try:
                backend.revision()
                return True
            finally:
                backend.close()
        except Exception:
            return False

    def _start_proxy(self) -> None:
        ds = self.state["datastore"]
        if ds["type"] != "etcdv3":
            return
        recs = []
        for i, ep in enumerate(ds["endpoints"]):
            target = ep.split("://", 1)[-1].rstrip("/")
            listens = [f"--listen={h['netns']}:{PROXY_PORT + i}" for h in self.state["hosts"]]
            recs.append(spawn([sys.executable, "-m", "calico.lab.proxy", "--target", target,
                               *listens], os.path.join(self.dir, f"proxy{i}.log")))
        ds["proxies"] = recs
        self.save()

    # ---- up ------------------------------------------------------------------------------

    def check_can_start(self, datastore: str, etcd_endpoints: str | None,
                        *programs: str) -> None:
        """What bringing a lab up needs before it touches anything (its `up` and the
        fabric's): this lab not up, the programs installed (`programs` beyond those every
        lab runs), no namespaces of an earlier run left. Raises LabError."""
        if self.exists():
            raise LabError(f"lab {self.name!r} is already up: `calico-lab down` first")
        for prog in ("ip", "bird", "birdc", *(("etcd",) if datastore == "etcdv3"
                                               and not etcd_endpoints else ()), *programs):
            if shutil.which(prog) is None:
                raise LabError(f"{prog} is not installed (run `make setup`)")
        leftovers = [n for n in netns_list() if n.startswith(self.prefix)]
        if leftovers:
            raise LabError(f"namespaces of an earlier lab {self.name!r} remain "
                           f"({', '.join(leftovers)}): run `calico-lab down`")

    def up(self, hosts: int = 3, workloads_per_host: int = 0, datastore: str = "local",
           ipv6: bool = False, tor: str = "none", etcd_endpoints: str | None = None,
           wait: float | None = 30.0, subnets: int = 1) -> None:
        """Build the lab and start calico-node on every host; then (unless `wait` is None,
        for a caller that waits for its own topology, e.g. route reflectors) wait `wait`
        seconds at most for every default-mesh session to be Established."""
        if not 1 <= hosts <= 50:
            raise LabError("--hosts must be between 1 and 50")
        if tor not in ("none", "gobgp", "bird"):
            raise LabError("--tor must be none, gobgp or bird")
        if subnets < 1 or subnets > 1 and (tor != "none" or ipv6 or subnets > 50):
            raise LabError("--subnets: 1 to 50, and more than 1 only without --tor or --ipv6")
        self.check_can_start(datastore, etcd_endpoints, *(("gobgpd",) if tor == "gobgp"
                                                          else ()))
        os.makedirs(self.dir, exist_ok=True)
        self.state = {"name": self.name, "prefix": self.prefix, "ipv6": ipv6, "hosts": [],
                      "workloads": [], "tor": None, "fabric": f"{self.prefix}fabric",
                      "subnets": subnets,
                      "created": time.time()}
        self.save()
        try:
            self._start_datastore(datastore, etcd_endpoints)
            segment.build(self, hosts, tor)
            self._start_proxy()
            self._write_tor_peers()
            self.save()  # from here on, changes are read-modify-writes of the file
            for h in self.state["hosts"]:
                self.start_node(h["name"])
            if tor != "none":
                self._start_tor()
            if wait is not None:
                self.wait_established(wait)
            for i in range(workloads_per_host):
                for h in self.state["hosts"]:
                    self.add_workload(h["name"], f"{h['name']}-w{i + 1}")
        except BaseException:
            self.down()
            raise

    def _write_tor_peers(self) -> None:
        t = self.state.get("tor")
        if not t:
            return
        from calico.datastore.client import ResourceClient

        backend = self.backend()
        try:
            client = ResourceClient(backend)
            for suffix, addr in (("v4", t["address"]), ("v6", t.get("address6"))):
                if addr:
                    client.apply({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                                  "metadata": {"name": f"tor-{suffix}"},
                                  "spec": {"peerIP": addr, "asNumber": str(t["asn"])}})
        finally:
            backend.close()

    def _start_tor(self) -> None:
        t = self.state["tor"]
        argv = tor_mod.tor_command(t["kind"], self.dir, t["address"], t["address"],
                                   t.get("address6"), self.state["hosts"])
        t["daemon"] = spawn(argv, os.path.join(self.dir, "tor.log"), netns=t["netns"])
        self.save()

    # ---- calico-node per host ----------------------------------------------------------

    def node_env(self, h: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATASTORE_", "ETCD_", "CALICO_", "FELIX_"))
               and k not in ("IP", "IP6", "IP_AUTODETECTION_METHOD", "IP6_AUTODETECTION_METHOD",
                             "AS", "NODENAME", "NO_DEFAULT_POOLS")}
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        env.update(self.datastore_env(inside=True))
        if h.get("asn"):
            env["AS"] = str(h["asn"])  # an L3 fabric: the rack's (or the host's own) AS
        env.update({"NODENAME": h["name"], "IP": h["address"], "IP6": h.get("address6")
                    or "none", "CALICO_IPV4POOL_CIDR": POOL_V4, "CALICO_IPV6POOL_CIDR": POOL_V6,
                    "CALICO_RUN_DIR": h["run_dir"], "CALICO_BIRD_SOCKET":
                    os.path.join(h["run_dir"], "bird.ctl"),
                    "CALICO_BGP_SECRETS_DIR": os.path.join(self.dir, "secrets"),
                    # the address-space translator's pins: a bpffs of the lab's, one
                    # directory per host (a netns), surviving Felix restarts
                    "CALICO_XLAT_PIN_DIR": os.path.join(self._bpffs(), h["name"]),
                    # Felix's own log beside the host's other files; no syslog in a lab.
                    "FELIX_LOGFILEPATH": os.path.join(h["run_dir"], "felix.log"),
                    "FELIX_LOGSEVERITYSYS": "none",
                    "PYTHONUNBUFFERED": "1"})
        return env

    def _bpffs(self) -> str:
        """The lab's BPF filesystem (mounted on first use, unmounted by `down`)."""
        path = os.path.join(self.dir, "bpf")
        os.makedirs(path, exist_ok=True)
        if not os.path.ismount(path):
            sh("mount", "-t", "bpf", "bpf", path)
        return path

    def start_node(self, host: str) -> None:
        h = self.host(host)
        if alive(h.get("node")):
            return
        bindir = os.path.dirname(sys.executable)
        node = spawn([os.path.join(bindir, "calico-node")],
                     os.path.join(h["run_dir"], "calico-node.log"),
                     env=self.node_env(h), netns=h["netns"])
        self._set_node(host, node)

    def _set_node(self, host: str, node: Any) -> None:
        self._update(lambda state: self.host(host).__setitem__("node", node))

    def stop_node(self, host: str) -> None:
        """SIGTERM calico-node alone, which stops BIRD and Felix its own way; their routes
        stay, as on a real host whose calico-node stops."""
        h = self.host(host)
        stop_daemon(h.get("node"), leader_only=True)
        self._set_node(host, None)

    def peers(self, host: str) -> list[dict[str, str]]:
        h = self.host(host)
        try:
            return [p.to_dict() | {"established": p.established}
                    for p in bird_peers(os.path.join(h["run_dir"], "bird.ctl"))]
        except BirdUnavailable:
            return []

    def expected_peers(self, host: str) -> int:
        """Sessions a host should have with the default mesh: other hosts, plus the ToR,
        per family. In an L3 fabric: only its ToR."""
        families = 2 if self.state["ipv6"] else 1
        if self.state.get("l3"):
            return families
        return families * (len(self.state["hosts"]) - 1 + (1 if self.state.get("tor") else 0))

    def wait_established(self, timeout: float = 30.0, hosts: list[str] | None = None,
                         expected: int | None = None) -> float:
        """Wait until every (given) host has its sessions Established; returns seconds."""
        start = time.monotonic()
        names = hosts or [h["name"] for h in self.state["hosts"]]

        def done() -> bool:
            for name in names:
                want = self.expected_peers(name) if expected is None else expected
                if sum(1 for p in self.peers(name) if p["established"]) < want:
                    return False
            return True

        _wait(done, timeout, "BGP sessions did not all reach Established "
              f"(see {self.dir}/host*/calico-node.log)")
        return time.monotonic() - start

    # ---- workloads -----------------------------------------------------------------------

    def add_workload(self, host: str, name: str, labels: dict[str, str] | None = None,
                     space: str | None = None, ip: str | None = None) -> dict[str, Any]:
        if any(w["name"] == name for w in self.state["workloads"]):
            raise LabError(f"workload {name!r} already exists")
        if not name.replace("-", "").isalnum() or name != name.lower() or len(name) > 30:
            raise LabError(f"workload name {name!r}: lower-case letters, digits and '-', "
                           "at most 30")
        h = self.host(host)
        rec = wl_mod.add(name, h, f"{self.prefix}w-{name}", self.datastore_env(inside=True),
                         self.state["ipv6"], os.path.join(h["run_dir"], "ipam.lock"),
                         labels or {}, space, ip)
        self._update(lambda state: state["workloads"].append(rec))
        return rec

    def remove_workload(self, name: str) -> None:
        rec = self.workload(name)
        h = self.host(rec["host"])
        try:
            wl_mod.remove(rec, h, self.datastore_env(inside=True), self.state["ipv6"],
                          os.path.join(h["run_dir"], "ipam.lock"))
        finally:
            self._update(lambda state: state.__setitem__(
                "workloads", [w for w in state["workloads"] if w["name"] != name]))

    # ---- inspection ----------------------------------------------------------------------

    def netns_of(self, name: str) -> str:
        if name in ("fabric", "tor"):
            target = self.state["fabric"] if name == "fabric" else (self.state.get("tor") or
                                                                     {}).get("netns")
            if target:
                return target
        for r in (self.state.get("l3") or {}).get("routers", []):
            if r["name"] == name:
                return r["netns"]
        for h in self.state["hosts"]:
            if h["name"] == name:
                return h["netns"]
        return self.workload(name)["netns"]

    def status(self) -> dict[str, Any]:
        ds = dict(self.state["datastore"])
        hosts = []
        for h in self.state["hosts"]:
            hosts.append({"name": h["name"], "address": h["address"].split("/")[0],
                          "address6": (h.get("address6") or "").split("/")[0] or None,
                          "netns": h["netns"], "running": alive(h.get("node")),
                          "bgp": self.peers(h["name"])})
        tor = self.state.get("tor")
        return {"name": self.name, "state_dir": self.dir,
                "datastore": {"type": ds["type"], **({"path": ds["path"]} if ds["type"] ==
                                                     "local" else {"endpoints":
                                                                   ds["endpoints"]})},
                "hosts": hosts,
                "workloads": [{**{k: w[k] for k in ("name", "host", "netns", "addresses",
                                                    "labels")},
                               "address_space": w.get("address_space")}
                              for w in self.state["workloads"]],
                "tor": None if not tor else {"kind": tor["kind"], "netns": tor["netns"],
                                             "address": tor["address"], "asn": tor["asn"],
                                             "running": alive(tor.get("daemon"))},
                "l3": fabric_mod.status(self)}

    def ping(self, src: str, addr: str, timeout: float = 1.0) -> bool:
        proc = netns_exec(self.netns_of(src), "ping", "-6" if ":" in addr else "-4", "-c",
                          "1", "-W", str(max(1, int(timeout))), addr, check=False,
                          timeout=timeout + 5)
        return proc.returncode == 0

    # ---- down ----------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop every daemon and delete every namespace of this lab and its state dir.
        Returns the namespaces deleted."""
        if not self.state and self.exists():
            self.load()
        st = self.state
        nodes = [h.get("node") for h in st.get("hosts", [])]
        # all at once: each calico-node takes seconds to stop its children, and one after
        # another that was minutes for a 50-host lab
        with ThreadPoolExecutor(max(1, min(64, len(nodes)))) as pool:
            list(pool.map(stop_daemon, nodes))
        if st.get("tor"):
            stop_daemon(st["tor"].get("daemon"))
        fabric_mod.stop_routers(self)
        ds = st.get("datastore") or {}
        for rec in ds.get("proxies") or []:
            stop_daemon(rec)
        stop_daemon(ds.get("etcd"))
        gone = [n for n in netns_list() if n.startswith(self.prefix)]
        for ns in gone:
            netns_delete(ns)
        if os.path.ismount(os.path.join(self.dir, "bpf")):
            sh("umount", "-l", os.path.join(self.dir, "bpf"), check=False)
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.state = {}
        return gone


def _wait(cond, timeout: float, message: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise LabError(f"{message} within {timeout:g}s")
        time.sleep(interval)
