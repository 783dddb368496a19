"""Traffic between lab workloads, and the faults to inject while it runs.

Shared by `tests/faults/test_lab_*.py` (short runs) and `benchmarks/faults/lab_report.py`
(full durations). Everything runs inside the lab's namespaces.

`Traffic` starts, from a client workload to a server workload on another host:
- `ping -i 0.01` over IPv4 and over IPv6 (a fixed count, so every probe gets its reply
  window: a lost packet is a lost packet, never one cut off by a deadline);
- a long TCP stream per family: 4 KiB echoed every 5 ms, any stall over 2 s or any reset
  fails it;
- N short TCP connections (connect, 16 bytes echoed, close), spread evenly over the run and
  alternating IPv4 / IPv6; each must complete within 3 s.
The server is one threaded echo server on `[::]` (dual stack). `result()` waits for the
run's end and returns the figures (`TrafficResult`).

Faults (`kill_felix`, `kill_node`, `kill_bird`) act on one host's calico-node and return
once the daemon they hit is back (Felix programmed again, or every session Established),
with the seconds that took.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from calico.lab.lab import Lab
from calico.lab.proc import alive, sh

PORT = 7001

SERVER = r"""
import socket, socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)
class S(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
S(("::", int(sys.argv[1])), H).serve_forever()
"""

CLIENT = r"""
import json, socket, sys, threading, time
v4, v6, port, duration, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    float(sys.argv[4]), int(sys.argv[5])
out = {"streams": {}, "short": {"tried": 0, "failed": 0, "errors": []}}

def stream(addr):
    rounds, err, worst = 0, None, 0.0
    try:
        sock = socket.create_connection((addr, port), timeout=5)
        sock.settimeout(2)
        end, chunk = time.monotonic() + duration, b"x" * 4096
        while time.monotonic() < end:
            t0 = time.monotonic()
            sock.sendall(chunk)
            got = 0
            while got < len(chunk):
                data = sock.recv(len(chunk) - got)
                if not data:
                    raise OSError("closed by the server")
                got += len(data)
            worst = max(worst, time.monotonic() - t0)
            rounds += 1
            time.sleep(0.005)
        sock.close()
    except OSError as e:
        err = f"{type(e).__name__}: {e} after {rounds} rounds"
    out["streams"][addr] = {"rounds": rounds, "error": err, "worst_rtt": worst}

threads = [threading.Thread(target=stream, args=(a,)) for a in (v4, v6)]
for t in threads:
    t.start()
start = time.monotonic()
for i in range(count):
    due = start + i * duration / count
    time.sleep(max(0.0, due - time.monotonic()))
    addr = v4 if i % 2 == 0 else v6
    out["short"]["tried"] += 1
    try:
        with socket.create_connection((addr, port), timeout=3) as s:
            s.settimeout(3)
            s.sendall(b"0123456789abcdef")
            got = b""
            while len(got) < 16:
                data = s.recv(16 - len(got))
                if not data:
                    raise OSError("closed early")
                got += data
    except OSError as e:
        out["short"]["failed"] += 1
        out["short"]["errors"].append(f"{time.monotonic() - start:.2f}s {addr}: {e}")
for t in threads:
    t.join()
print(json.dumps(out))
"""


@dataclass
class TrafficResult:
    ping_sent: dict[int, int] = field(default_factory=dict)  # family -> packets sent
    ping_lost: dict[int, int] = field(default_factory=dict)
    streams: dict[str, dict] = field(default_factory=dict)  # address -> rounds, error
    short_tried: int = 0
    short_failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def packets_lost(self) -> int:
        return sum(self.ping_lost.values())

    @property
    def failed_connections(self) -> int:
        return self.short_failed + sum(1 for s in self.streams.values() if s["error"])

    @property
    def clean(self) -> bool:
        return (self.packets_lost == 0 and self.failed_connections == 0
                and all(n > 0 for n in self.ping_sent.values()) and not self.errors)

    def summary(self) -> str:
        pings = ", ".join(f"IPv{v} {self.ping_lost[v]}/{self.ping_sent[v]}"
                          for v in sorted(self.ping_sent))
        streams = ", ".join(f"{s['rounds']} rounds (worst {s['worst_rtt'] * 1000:.0f} ms)"
                            + (f" FAILED: {s['error']}" if s["error"] else "")
                            for s in self.streams.values())
        return (f"pings lost {pings}; streams {streams}; short connections "
                f"{self.short_failed}/{self.short_tried} failed"
                + (f"; errors: {self.errors[:5]}" if self.errors else ""))


def _popen_in(ns: str, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _ping_counts(text: str) -> tuple[int, int]:
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    if not m:
        return 0, 0
    return int(m.group(1)), int(m.group(2))


class Traffic:
    """Flows from workload `client` to workload `server` for `duration` seconds."""

    def __init__(self, lab: Lab, client: str, server: str, duration: float = 10.0,
                 connections: int = 1000) -> None:
        self.lab, self.duration, self.connections = lab, duration, connections
        self.client_ns = lab.workload(client)["netns"]
        self.server_ns = lab.workload(server)["netns"]
        addrs = lab.workload(server)["addresses"]
        self.v4 = next(a for a in addrs if ":" not in a)
        self.v6 = next(a for a in addrs if ":" in a)
        self._procs: list[subprocess.Popen] = []
        self._server: subprocess.Popen | None = None

    def start(self) -> Traffic:
        self._server = _popen_in(self.server_ns, sys.executable, "-c", SERVER, str(PORT))
        deadline = time.monotonic() + 5
        while sh("ip", "netns", "exec", self.server_ns, "ss", "-Htln",
                 f"sport = :{PORT}").stdout.strip() == "":
            if time.monotonic() > deadline:
                raise RuntimeError("echo server did not listen")
            time.sleep(0.05)
        count = str(int(self.duration * 100))
        self._pings = {v: _popen_in(self.client_ns, "ping", f"-{v}", "-i", "0.01", "-c", count,
                                    "-W", "1", addr)
                       for v, addr in ((4, self.v4), (6, self.v6))}
        self._client = _popen_in(self.client_ns, sys.executable, "-c", CLIENT, self.v4,
                                 self.v6, str(PORT), str(self.duration),
                                 str(self.connections))
        self._procs = [*self._pings.values(), self._client]
        return self

    def result(self) -> TrafficResult:
        res = TrafficResult()
        try:
            for v, proc in self._pings.items():
                out = proc.communicate(timeout=self.duration * 2 + 30)[0]
                res.ping_sent[v], received = _ping_counts(out)
                res.ping_lost[v] = res.ping_sent[v] - received
                if res.ping_sent[v] == 0:
                    res.errors.append(f"ping -{v}: {out.strip()[-300:]}")
            out = self._client.communicate(timeout=self.duration * 2 + 60)[0]
            try:
                data = json.loads(out.strip().splitlines()[-1])
                res.streams = data["streams"]
                res.short_tried = data["short"]["tried"]
                res.short_failed = data["short"]["failed"]
                res.errors.extend(data["short"]["errors"][:20])
            except (ValueError, IndexError, KeyError):
                res.errors.append(f"client: {out.strip()[-500:]}")
        finally:
            self.stop()
        return res

    def stop(self) -> None:
        for proc in [*self._procs, *([self._server] if self._server else [])]:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


class RouteWatch:
    """Polls a host's kernel every `interval` for routes to `prefixes`; records the longest
    time any of them was missing (BGP retention during a peer's restart)."""

    def __init__(self, lab: Lab, host: str, prefixes: set[str], interval: float = 0.01):
        self.ns = lab.host(host)["netns"]
        self.prefixes, self.interval = set(prefixes), interval
        self.missing_since: float | None = None
        self.longest_gap = 0.0
        self.gaps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _present(self) -> bool:
        text = sh("ip", "-n", self.ns, "route", "show", "proto", "bird").stdout + \
            sh("ip", "-n", self.ns, "-6", "route", "show", "proto", "bird").stdout
        have = {line.split()[0] for line in text.splitlines() if line.strip()}
        return self.prefixes <= have

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if self._present():
                if self.missing_since is not None:
                    self.longest_gap = max(self.longest_gap, now - self.missing_since)
                    self.missing_since = None
            elif self.missing_since is None:
                self.missing_since = now
                self.gaps += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RouteWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.missing_since is not None:
            self.longest_gap = max(self.longest_gap, time.monotonic() - self.missing_since)


# ---- processes of a host's calico-node --------------------------------------------------


def _processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name) of every process:
    [0] is its state, [1] its parent, [3] its process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                yield int(entry), f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue


def _children(pid: int) -> list[tuple[int, list[str]]]:
    out = []
    for child, fields in _processes():
        if int(fields[1]) != pid:
            continue
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        out.append((child, argv))
    return out


def child_pid(lab: Lab, host: str, what: str) -> int | None:
    """The pid of calico-node's child `felix`, `bird` or `bgp-daemon` on `host`."""
    node = lab.host(host).get("node") or {}
    match = {"felix": lambda a: any(x.endswith("calico-felix") for x in a),
             "bird": lambda a: bool(a) and os.path.basename(a[0]) == "bird",
             "bgp-daemon": lambda a: "calico.bgp.daemon" in a}[what]
    for pid, argv in _children(node.get("pid", -1)):
        if match(argv):
            return pid
    return None


def node_log(lab: Lab, host: str) -> str:
    with open(os.path.join(lab.host(host)["run_dir"], "calico-node.log"), errors="replace") as f:
        return f.read()


PROGRAMMED = "Dataplane programmed from the in-sync snapshot"


def wait_for(cond, timeout: float, what: str, interval: float = 0.05) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(interval)
    return time.monotonic() - start


def wait_felix_programmed(lab: Lab, host: str, after: int, timeout: float = 30.0) -> float:
    """Seconds until the log of `host` shows more than `after` 'programmed' lines."""
    return wait_for(lambda: node_log(lab, host).count(PROGRAMMED) > after, timeout,
                    f"Felix on {host} programmed again")


def kill_felix(lab: Lab, host: str) -> float:
    """kill -9 Felix; calico-node restarts it. Returns seconds until it programmed again."""
    before = node_log(lab, host).count(PROGRAMMED)
    pid = child_pid(lab, host, "felix")
    if pid is None:
        raise RuntimeError(f"no Felix under calico-node on {host}")
    start = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_felix_programmed(lab, host, before)
    return time.monotonic() - start


def _group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid`, other than a zombie, is left."""
    return any(fields[0] != "Z" and int(fields[3]) == pgid for _, fields in _processes())


def kill9_node(lab: Lab, host: str) -> None:
    """kill -9 calico-node and all its children (its process group), and wait until every one
    of them has exited and calico-node is reaped. Until then the lab still counts calico-node
    as running, and `start_node` would do nothing: a SIGKILLed Python process with threads
    takes a moment to exit, and its children (zombies, without a command line) stop looking
    like BIRD or Felix before it has."""
    record = lab.host(host)["node"]
    os.killpg(record["pid"], signal.SIGKILL)
    wait_for(lambda: not _group_alive(record["pid"]) and not alive(record), 10,
             f"calico-node on {host} and its children gone")


def kill_node(lab: Lab, host: str, down_for: float = 0.5) -> float:
    """kill -9 calico-node and all its children (its process group), start it again after
    `down_for`. Returns seconds from the kill until Felix programmed and every host's
    sessions are Established again."""
    before = node_log(lab, host).count(PROGRAMMED)
    start = time.monotonic()
    kill9_node(lab, host)
    time.sleep(down_for)
    lab.start_node(host)
    wait_felix_programmed(lab, host, before)
    lab.wait_established(60)
    return time.monotonic() - start


def kill_bird(lab: Lab, host: str) -> float:
    """kill -9 BIRD; calico-node restarts it. Returns seconds until every host's sessions
    are Established again."""
    pid = child_pid(lab, host, "bird")
    if pid is None:
        raise RuntimeError(f"no BIRD under calico-node on {host}")
    start = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: child_pid(lab, host, "bird") not in (None, pid), 15, "BIRD restarted")
    lab.wait_established(60)
    return time.monotonic() - start


def felix_rss_kib(lab: Lab, host: str) -> int | None:
    pid = child_pid(lab, host, "felix")
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ---- labs for the faults tier and the report ---------------------------------------------


def _cleanup_stale(prefix: str) -> None:
    """Labs named `<prefix><pid><tag>` whose pid is dead (a killed run): take them down."""
    from calico.lab.lab import state_root
    from calico.lab.proc import netns_delete, netns_list

    pattern = re.compile(rf"^{prefix}(\d+)[a-z]*$")
    root = state_root()
    for name in os.listdir(root) if os.path.isdir(root) else []:
        m = pattern.match(name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            lab = Lab(name)
            if lab.exists():
                lab.load()
            lab.down()
    ns_pattern = re.compile(rf"^calab-{prefix}(\d+)[a-z]*-")
    for ns in netns_list():
        m = ns_pattern.match(ns)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            netns_delete(ns)


@contextmanager
def lab_session(tag: str, prefix: str = "f", **up_args) -> Iterator[Lab]:
    """`with lab_session("r", hosts=3, ipv6=True) as lab:` — a lab named
    `<prefix><pid><tag>`, always taken down on exit (also on failure or Ctrl-C); labs left by
    killed earlier runs of the same prefix are removed first."""
    _cleanup_stale(prefix)
    lab = Lab(f"{prefix}{os.getpid()}{tag}"[:12])
    try:
        lab.up(**up_args)
        yield lab
    finally:
        lab.down()
