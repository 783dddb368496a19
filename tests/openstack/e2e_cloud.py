"""A small OpenStack cloud on one machine for the end-to-end test: a calico-lab, a real
Neutron server on the lab's datastore, calico-dhcp-agent per host, and "VMs".

    with started(neutron_venv, workdir, vms) as cloud:  # all of the below in one: root and
        ...                    # programs checked, stale runs cleaned, topology, VMs plugged
    cleanup_stale()            # leftovers of runs killed before their teardown
    cloud = Cloud(neutron_venv, workdir)   # neutron_extra=: more ml2_conf.ini sections
    cloud.up(hosts=2)          # lab (calico-node: Felix + BIRD, each reporting), Neutron,
                               # DHCP agents; ipv6=True: the lab's IPv6 fabric and pool
    ids = cloud.sdk("topology", json.dumps(vms))      # openstacksdk, in Neutron's venv
                               # (script="cloud_sdk.py" for its commands)
    vm = cloud.plug(name, host, port)   # port: {"id", "mac"}; what Nova + libvirt do
    vm.dhcp(); vm.serve(22, 8080); vm.connects(ip, 22); vm.pings(ip)
    vm.dhcp6()                 # isc-dhcp-client's dhclient -6; vm.global_v6(): SLAAC
    wait(lambda: vm.pings(ip), 30, "what", cloud)   # fails with the cloud's diagnostics
    cloud.down()               # always: agents, VMs, Neutron, lab (idempotent)

Datastore: the lab's `local` one (a SQLite file every namespace sees); Neutron's `[calico]`
section points at the same file. Neutron runs from neutron_launcher.py (SQLite: the
driver's own Neutron DB writes are serialised with API requests). A VM is a namespace `cpt-<pid>-<name>-...` whose eth0 (the
port's MAC) is the peer of the tap `tap<port-id[:11]>` in the host's namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from calico.datastore.client import ResourceClient
from calico.datastore.errors import ResourceNotFound
from calico.lab.lab import Lab
from calico.openstack import names
from tests.conftest import require_programs, require_root
from tests.e2e.conftest import _cleanup_stale as cleanup_stale_labs
from tests.fixtures.netns import Netns, NetnsSet, ping
from tests.fixtures.netns import cleanup_stale as cleanup_stale_netns
from tests.openstack.harness import NeutronServer, run_sdk

DHCP_DIR_PREFIX = "calico-e2e-dhcp-"
PROGRAMS = ("bird", "birdc", "dnsmasq", "busybox", "ip", "nft", "ping")


def cleanup_stale() -> None:
    """What runs killed before their teardown left: labs, VM namespaces, DHCP state dirs."""
    cleanup_stale_labs()
    cleanup_stale_netns()
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob(DHCP_DIR_PREFIX + "*"):
        pid = d.name[len(DHCP_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(d, ignore_errors=True)

UDHCPC_SCRIPT = """#!/bin/sh
# busybox udhcpc: apply the lease (address, MTU, default route, classless routes) and record
# the variables the tests read, one `name=value` a line.
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
ip addr add "$ip/$mask" dev "$interface"
[ -z "$mtu" ] || ip link set dev "$interface" mtu "$mtu"
if [ -n "$staticroutes" ]; then
  set -- $staticroutes
  while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
elif [ -n "$router" ]; then
  ip route replace default via "${{router%% *}}" dev "$interface"
fi
for v in ip mask router dns domain mtu staticroutes msstaticroutes; do
  eval "echo $v=\\$$v"
done > {out}
"""

DHCLIENT6_SCRIPT = """#!/bin/sh
# isc-dhcp-client's dhclient -6: apply the address (a /128: the host routes everything) and
# record what the server gave, one `name=value` a line.
case "$reason" in BOUND6|RENEW6|INFORM6) ;; *) exit 0 ;; esac
[ -z "$new_ip6_address" ] || ip -6 addr replace "$new_ip6_address/128" dev "$interface"
env | grep -E '^new_(ip6_address|ip6_prefixlen|dhcp6_name_servers|dhcp6_domain_search)=' \\
  > {out}
"""

SERVER = """
import socket, sys, threading
def serve(port):
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 and IPv6
    s.bind(("::", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(b"ok\\n"); c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""

CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        sys.exit(0 if c.recv(3) == b"ok\\n" else 1)
except OSError:
    sys.exit(1)
"""


class VM:
    def __init__(self, cloud: Cloud, name: str, host: str, ns: Netns, port: dict) -> None:
        self.cloud, self.name, self.host, self.ns, self.port = cloud, name, host, ns, port
        self.tap = names.tap_name(port["id"])
        self.server: subprocess.Popen | None = None
        self.lease: dict[str, str] = {}

    def dhcp(self, timeout: float = 30.0) -> dict[str, str]:
        """busybox udhcpc on eth0 until it gets a lease; returns the variables its script
        received (ip, mask, router, dns, domain, mtu, staticroutes, msstaticroutes)."""
        out = self.cloud.dir / f"{self.name}.lease"
        script = self.cloud.dir / f"{self.name}-udhcpc.sh"
        script.write_text(UDHCPC_SCRIPT.format(out=out))
        script.chmod(0o755)
        deadline = time.monotonic() + timeout
        while not out.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no DHCP lease within {timeout:g}s\n"
                                     + self.cloud.diagnostics())
            # Asking for classless routes (121, and Microsoft's 249) as cloud images'
            # clients do; busybox's does not by default.
            self.ns.run("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "3",
                        "-T", "1", "-O", "staticroutes", "-O", "msstaticroutes",
                        "-s", str(script), check=False, timeout=20)
        self.lease = dict(f.split("=", 1) for f in out.read_text().splitlines())
        return self.lease

    def dhcp6(self, timeout: float = 30.0, stateless: bool = False) -> dict[str, str]:
        """dhclient -6 on eth0 until it is bound (`stateless`: -S, an information request
        only); returns what its script received (`new_ip6_address`,
        `new_dhcp6_name_servers`, ...). dhclient stays running in the VM's namespace
        (killed with it), as a VM's would."""
        out = self.cloud.dir / f"{self.name}.lease6"
        script = self.cloud.dir / f"{self.name}-dhclient6.sh"
        script.write_text(DHCLIENT6_SCRIPT.format(out=out))
        script.chmod(0o755)
        deadline = time.monotonic() + timeout
        while not out.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no DHCPv6 lease within {timeout:g}s\n"
                                     + self.cloud.diagnostics())
            self.ns.run("dhclient", "-6", *(["-S"] if stateless else []), "-1", "-lf", str(self.cloud.dir / f"{self.name}.l6"),
                        "-pf", str(self.cloud.dir / f"{self.name}.pid6"), "-sf", str(script),
                        "eth0", check=False, timeout=90)
            if not out.exists():
                time.sleep(0.5)
        return dict(line.split("=", 1) for line in out.read_text().splitlines())

    def global_v6(self) -> list[str]:
        """eth0's global IPv6 addresses (SLAAC's or DHCPv6's), without prefix length."""
        text = self.ns.ip("-6", "-o", "addr", "show", "dev", "eth0", "scope", "global").stdout
        return [f.split()[3].split("/")[0] for f in text.splitlines()
                if "tentative" not in f]

    def serve(self, *ports: int) -> None:
        self.server = self.ns.popen(sys.executable, "-c", SERVER, *map(str, ports),
                                    stdout=subprocess.PIPE, text=True)
        assert self.server.stdout is not None and self.server.stdout.readline()

    def connects(self, ip: str, port: int, timeout: float = 1.0) -> bool:
        return self.ns.run(sys.executable, "-c", CLIENT, ip, str(port), str(timeout),
                           check=False, timeout=timeout + 10).returncode == 0

    def pings(self, ip: str, timeout: float = 1.0) -> bool:
        return ping(self.ns, ip, timeout=timeout)


class Cloud:
    def __init__(self, neutron_venv: Path, workdir: Path, neutron_extra: str = "",
                 region: str | None = None,
                 neutron_extension_drivers: str = "port_security",
                 neutron_service_plugins: str = "",
                 calico_options: dict[str, str] | None = None) -> None:
        self.venv, self.dir = neutron_venv, workdir
        self.calico_options = calico_options or {}  # more `[calico]` options
        self.neutron_extra = neutron_extra  # further ml2_conf.ini sections
        self.extension_drivers = neutron_extension_drivers
        self.service_plugins = neutron_service_plugins
        self.region = names.Region(region)  # openstack_region / OpenstackRegion everywhere
        self.lab = Lab(f"e{os.getpid()}os"[:12])
        self.nets = NetnsSet()
        self.neutron: NeutronServer | None = None
        self.agents: dict[str, subprocess.Popen] = {}
        # dnsmasq drops to user nobody: its state dir must be reachable (pytest's are 0700).
        self.dhcp_dir = tempfile.mkdtemp(prefix=f"{DHCP_DIR_PREFIX}{os.getpid()}-")
        os.chmod(self.dhcp_dir, 0o755)
        self.vms: dict[str, VM] = {}

    # ---- up / down ---------------------------------------------------------------------

    def up(self, hosts: int = 2, ipv6: bool = False) -> dict[str, float]:
        """Returns the seconds each stage took."""
        times, t0 = {}, time.monotonic()
        self.lab.up(hosts=hosts, datastore="local", ipv6=ipv6)
        times["lab up (BGP Established)"] = time.monotonic() - t0
        t0 = time.monotonic()
        if self.region.name:
            self._set_felix_region()
        self.wait_felix_reports()  # the driver binds ports only where a Felix reports
        times["every Felix reporting"] = time.monotonic() - t0
        t0 = time.monotonic()
        path = self.lab.state["datastore"]["path"]
        calico = {"datastore_type": "local", "datastore_path": path, **self.calico_options}
        if self.region.name:
            calico["openstack_region"] = self.region.name
        self.neutron = NeutronServer(self.venv, self.dir / "neutron", path, calico=calico,
                                     extra=self.neutron_extra,
                                     extension_drivers=self.extension_drivers,
                                     service_plugins=self.service_plugins)
        self.neutron.start()
        times["Neutron up"] = time.monotonic() - t0
        env = {**os.environ, **self.lab.datastore_env(inside=True)}
        for h in self.lab.state["hosts"]:
            state = os.path.join(self.dhcp_dir, h["name"])
            os.makedirs(state, mode=0o755)
            self.agents[h["name"]] = Netns(h["netns"]).popen(
                os.path.join(os.path.dirname(sys.executable), "calico-dhcp-agent"),
                "--host", h["name"], *(["--region", self.region.name] if self.region.name
                                        else []),
                "--state-dir", state, env=env, stdout=subprocess.DEVNULL,
                stderr=open(self.dir / f"dhcp-agent-{h['name']}.log", "w"),
                start_new_session=True)
        return times

    def _set_felix_region(self) -> None:
        """FelixConfiguration default `openstackRegion` (each Felix restarts to take it)."""
        backend = self.lab.backend()
        try:
            client = ResourceClient(backend)
            try:
                doc = client.get("FelixConfiguration", "default").to_dict()
            except ResourceNotFound:
                doc = {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration",
                       "metadata": {"name": "default"}, "spec": {}}
            doc.setdefault("spec", {})["openstackRegion"] = self.region.name
            client.apply(doc)
        finally:
            backend.close()

    def wait_felix_reports(self, timeout: float = 60.0) -> None:
        backend = self.lab.backend()
        try:
            deadline = time.monotonic() + timeout
            for h in self.lab.state["hosts"]:
                while backend.get(self.region.felix_status_key(h["name"])) is None:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"Felix on {h['name']} never reported status\n"
                                             + self.diagnostics())
                    time.sleep(0.2)
        finally:
            backend.close()

    def down(self) -> None:
        """Every step runs even if an earlier one fails; the first error is raised at the end."""
        errors: list[BaseException] = []
        for step in (self._stop_agents, self._stop_servers, self.nets.close,
                     lambda: self.neutron and self.neutron.stop(), self.lab.down,
                     lambda: shutil.rmtree(self.dhcp_dir, ignore_errors=True)):
            try:
                step()
            except BaseException as err:  # noqa: BLE001 - keep tearing down
                errors.append(err)
        if errors:
            raise errors[0]

    def _stop_agents(self) -> None:
        for agent in self.agents.values():
            if agent.poll() is None:
                agent.terminate()
                try:
                    agent.wait(10)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait(5)
        self.agents.clear()

    def _stop_servers(self) -> None:
        for vm in self.vms.values():
            if vm.server is not None and vm.server.poll() is None:
                vm.server.kill()
                vm.server.wait(5)

    # ---- OpenStack ---------------------------------------------------------------------

    def sdk(self, *args: str, script: str = "e2e_sdk.py") -> dict:
        assert self.neutron is not None
        return run_sdk(self.venv, script, self.neutron.url, *args)

    def plug(self, name: str, host: str, port: dict) -> VM:
        """Nova's part: the VM's namespace, its eth0 with the port's MAC, the tap on the host."""
        vm_ns = self.nets.add(name)
        host_ns = Netns(self.lab.host(host)["netns"])
        tap = names.tap_name(port["id"])
        self.nets.veth(host_ns, tap, vm_ns, "eth0")
        vm_ns.ip("link", "set", "eth0", "down")
        vm_ns.ip("link", "set", "eth0", "address", port["mac"])
        vm_ns.ip("link", "set", "eth0", "up")
        vm = VM(self, name, host, vm_ns, port)
        self.vms[name] = vm
        return vm

    def host_ns(self, host: str) -> Netns:
        return Netns(self.lab.host(host)["netns"])

    # ---- failure reports ----------------------------------------------------------------

    def diagnostics(self) -> str:
        out = []
        for h in self.lab.state.get("hosts", []):
            log = Path(h["run_dir"]) / "calico-node.log"
            if log.exists():
                out.append(f"--- {h['name']} calico-node.log\n"
                           + log.read_text(errors="replace")[-4000:])
        for p in sorted(self.dir.glob("dhcp-agent-*.log")):
            out.append(f"--- {p.name}\n" + p.read_text(errors="replace")[-2000:])
        if self.neutron is not None:
            out.append(self.neutron.logs()[-4000:])
        return "\n".join(out)


@contextmanager
def started(neutron_venv: Path, workdir: Path, vms: list[dict],
            times: dict[str, float] | None = None, **cloud_args) -> Iterator[Cloud]:
    """A two-host Cloud (root and its programs required, stale runs cleaned first) with
    e2e_sdk.py's topology for `vms` and each VM plugged; torn down on leaving, also when
    the set-up fails. `times` gets each stage's seconds; `cloud_args` go to Cloud."""
    require_root()
    require_programs(*PROGRAMS)
    cleanup_stale()
    cloud = Cloud(neutron_venv, workdir, **cloud_args)
    try:
        stages = cloud.up(hosts=2)
        t0 = time.monotonic()
        cloud.topo = cloud.sdk("topology", json.dumps(vms))
        stages[f"openstacksdk: network, subnet, 2 groups, {len(vms)} ports"] = \
            time.monotonic() - t0
        if times is not None:
            times.update(stages)
        for vm in vms:
            cloud.plug(vm["name"], vm["host"], cloud.topo["ports"][vm["name"]])
        yield cloud
    finally:
        cloud.down()


def wait(cond, timeout: float, what: str, cloud: Cloud | None = None,
         interval: float = 0.1) -> float:
    """Polls `cond` until true; returns the seconds it took, or fails the test naming `what`
    (with the cloud's logs)."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout:g}s"
                        + (f"\n{cloud.diagnostics()}" if cloud else ""))
        time.sleep(interval)
    return time.monotonic() - start
