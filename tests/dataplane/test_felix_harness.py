"""A host running the real `calico-felix` process, for the test_felix_* dataplane tests
(no tests here: the harness lives beside its users).

Topology: a "host" namespace with an uplink to a "fabric" namespace (10.0.0.1 ↔ 10.0.0.2, the
host's default route: proxy ARP answers only for addresses the host routes elsewhere), and
one namespace per workload joined by a veth whose host end is `cali<N>` (MAC
ee:ee:ee:ee:ee:ee) and whose workload end is set up as Calico's CNI plugin does it
(10.65.0.N/32, fd00::N/128, default via 169.254.1.1 / the host veth's link-local).

Felix runs inside the host namespace (`ip netns exec`), on the local datastore in a temp
dir; the test writes WorkloadEndpoints, Profiles and policies through `ResourceClient` on
the same file, exactly as calicoctl or the CNI plugin would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calico.datastore.client import ResourceClient
from calico.datastore.local import LocalBackend
from tests.fixtures.netns import Netns, NetnsSet, sh

HOST_MAC = "ee:ee:ee:ee:ee:ee"
HOST_LL = "fe80::ecee:eeff:feee:eeee"  # EUI-64 link-local of HOST_MAC
HOSTNAME = "host1"
FELIX = str(Path(sys.executable).with_name("calico-felix"))


def wl_ip(n: int, version: int = 4) -> str:
    return f"10.65.0.{n}" if version == 4 else f"fd00::{n}"


def resource(kind: str, name: str, spec: dict, namespace: str | None = None) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}


ALLOW_ALL = resource("Profile", "allow-all", {"ingress": [{"action": "Allow"}],
                                              "egress": [{"action": "Allow"}]})


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


class FelixHost:
    def __init__(self, nets: NetnsSet, tmp: Path, **felix_env: str) -> None:
        self.nets, self.tmp = nets, tmp
        self.host, self.fabric = nets.add("fhost"), nets.add("fabric")
        for ns in (self.host, self.fabric):
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0")
        nets.veth(self.host, "eth0", self.fabric, "eth0")
        self.host.ip("addr", "add", "10.0.0.1/24", "dev", "eth0")
        self.fabric.ip("addr", "add", "10.0.0.2/24", "dev", "eth0")
        self.host.ip("route", "add", "default", "via", "10.0.0.2")
        self.host.ip("-6", "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad")
        self.fabric.ip("-6", "addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad")
        self.host.ip("-6", "route", "add", "default", "via", "2001:db8::2")
        self.db = str(tmp / "calico.db")
        self.backend = LocalBackend(self.db)
        self.client = ResourceClient(self.backend)
        self.env = {**os.environ, "DATASTORE_TYPE": "local", "CALICO_DATASTORE_PATH": self.db,
                    "FELIX_HEALTHENABLED": "true", "FELIX_ROUTEREFRESHINTERVAL": "2",
                    "FELIX_NFTABLESREFRESHINTERVAL": "2", "FELIX_LOGSEVERITYSCREEN": "Info",
                    # stdout is the test's log; no /var/log/calico/felix.log, no syslog
                    "FELIX_LOGFILEPATH": "none", "FELIX_LOGSEVERITYSYS": "none",
                    **felix_env}
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.workloads: dict[int, Netns] = {}

    # ---- felix ----

    @property
    def log_path(self) -> Path:
        return self.tmp / f"felix-{self.starts}.log"

    def start_felix(self) -> None:
        self.starts += 1
        log = open(self.log_path, "w")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.host.name, FELIX,
                                      "--hostname", HOSTNAME], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def http(self, path: str) -> int:
        out = self.host.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "--max-time", "2", f"http://localhost:9099{path}", check=False)
        return int(out.stdout or 0)

    def wait_ready(self, timeout: float = 30.0) -> float:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"calico-felix exited {self.proc.returncode}:\n"
                                     f"{self.log()}")
            return self.http("/readiness") == 200
        return wait_for(ready, timeout, "felix readiness")

    @contextmanager
    def running(self) -> Iterator[FelixHost]:
        """Felix started and ready for the block; afterwards it must stop cleanly."""
        self.start_felix()
        try:
            self.wait_ready()
            yield self
        finally:
            code = self.close()
            assert code in (None, 0), self.log()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)  # `ip netns exec` execs felix: same pid
        self.proc.wait(timeout=10)

    def stop_felix(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def close(self) -> int | None:
        """Stop Felix (SIGTERM); returns its exit code (None if it was never started)."""
        try:
            return self.stop_felix()
        finally:
            self.backend.close()

    # ---- workloads ----

    def add_workload(self, n: int, profiles: tuple[str, ...] = ("allow-all",),
                     labels: dict | None = None) -> Netns:
        wl = self.nets.add(f"wl{n}")
        sh("ip", "link", "add", f"cali{n}", "netns", self.host.name, "address", HOST_MAC,
           "type", "veth", "peer", "name", "eth0", "netns", wl.name)
        self.host.ip("link", "set", f"cali{n}", "up")
        wl.ip("link", "set", "eth0", "up")
        wl.sysctl("net.ipv6.conf.eth0.accept_dad", "0")
        wl.ip("addr", "add", f"{wl_ip(n)}/32", "dev", "eth0")
        wl.ip("-6", "addr", "add", f"{wl_ip(n, 6)}/128", "dev", "eth0", "nodad")
        wl.ip("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        wl.ip("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        wl.ip("-6", "route", "add", "default", "via", HOST_LL, "dev", "eth0")
        mac = json.loads(wl.ip("-j", "link", "show", "eth0").stdout)[0]["address"]
        endpoint = resource("WorkloadEndpoint", f"{HOSTNAME}-k8s-pod{n}-eth0", {
            "orchestrator": "k8s", "node": HOSTNAME, "pod": f"pod{n}", "endpoint": "eth0",
            "interfaceName": f"cali{n}", "mac": mac,
            "ipNetworks": [f"{wl_ip(n)}/32", f"{wl_ip(n, 6)}/128"],
            "profiles": list(profiles)}, namespace="default")
        endpoint["metadata"]["labels"] = labels or {}
        self.client.apply(endpoint)
        self.workloads[n] = wl
        return wl

    def wait_programmed(self, n: int, timeout: float = 10.0) -> float:
        """Until cali<n> has its routes (v4 and v6) and its nftables chains."""
        def done() -> bool:
            routes = self.host.ip("route", "show", f"{wl_ip(n)}/32").stdout
            routes6 = self.host.ip("-6", "route", "show", f"{wl_ip(n, 6)}/128").stdout
            chains = self.host.run("nft", "list", "chain", "inet", "calico", f"tw-cali{n}",
                                   check=False).returncode == 0
            return f"cali{n}" in routes and f"cali{n}" in routes6 and chains
        return wait_for(done, timeout, f"cali{n} programmed")

    # ---- the kernel's view ----

    def ruleset(self) -> str:
        """`nft list table inet calico`, normalised: set elements sorted (the kernel lists
        them in its own hash order)."""
        text = self.host.run("nft", "list", "table", "inet", "calico").stdout

        def sort_elements(match: re.Match) -> str:
            items = sorted(i.strip() for i in match.group(1).replace("\n", " ").split(","))
            return "elements = { " + ", ".join(items) + " }"
        return re.sub(r"elements = \{([^}]*)\}", sort_elements, text)

    def felix_routes(self) -> set[str]:
        out = json.loads(self.host.ip("-j", "route", "show", "proto", "80").stdout)
        out += json.loads(self.host.ip("-6", "-j", "route", "show", "proto", "80").stdout)
        return {f'{r["dst"]}@{r.get("dev")}' for r in out}


def ping(src: Netns, dst: str, count: int = 1, timeout: float = 1.0) -> bool:
    flag = "-6" if ":" in dst else "-4"
    return src.run("ping", flag, "-c", str(count), "-W", str(int(max(timeout, 1))), "-i",
                   "0.2", dst, check=False, timeout=count + timeout + 5).returncode == 0
