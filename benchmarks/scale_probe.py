"""The two observers `scale_lab.py` measures with; both are context managers that close
everything they opened.

- `PingProber({host: workload netns})`: one raw ICMP socket opened inside each given
  workload's namespace (a socket belongs to the namespace its thread was in when it was
  created), so the echo requests are real packets leaving that workload through its host.
  `reach(hosts, address, timeout)` sends from each named host's socket a request every 20 ms
  until a reply from `address` arrives, all hosts at once, and returns {host: monotonic time of
  the first reply}; hosts that got none within `timeout` are missing from it.
- `RuleMonitor({host: host netns})`: `nft monitor rules` in each host's namespace, its lines
  read by one thread per host. `wait(port, timeout)` returns {host: monotonic time at which a
  rule with `dport <port>` was first reported}, waiting until every host has one or `timeout`
  passes. nft reports a rule when the kernel commits the transaction that adds it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.scale_figures import echo_request, is_echo_reply
from calico.lab.proxy import in_netns

_DPORT = re.compile(r"\bdport (\d+)\b")
_IDENT = itertools.count((os.getpid() * 7) & 0x7FFF)


class PingProber:
    def __init__(self, namespaces: dict[str, str]) -> None:
        self.sockets: dict[str, socket.socket] = {}
        try:
            for host, ns in namespaces.items():
                with in_netns(ns):
                    self.sockets[host] = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                                       socket.IPPROTO_ICMP)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> PingProber:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        for s in self.sockets.values():
            s.close()
        self.sockets = {}

    def reach(self, hosts: list[str], address: str, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        ident = next(_IDENT) & 0xFFFF
        with ThreadPoolExecutor(max(1, len(hosts))) as pool:
            got = pool.map(lambda h: (h, self._first_reply(self.sockets[h], address, ident,
                                                           deadline)), hosts)
            return {h: t for h, t in got if t is not None}

    @staticmethod
    def _first_reply(sock: socket.socket, address: str, ident: int, deadline: float
                     ) -> float | None:
        for seq in itertools.count():
            now = time.monotonic()
            if now > deadline:
                return None
            with contextlib.suppress(OSError):
                sock.sendto(echo_request(ident, seq), (address, 0))
            until = min(now + 0.02, deadline)
            while (left := until - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, (src, _) = sock.recvfrom(2048)
                except (TimeoutError, OSError):
                    break
                if src == address and is_echo_reply(data, ident):
                    return time.monotonic()
        return None


class RuleMonitor:
    def __init__(self, namespaces: dict[str, str]) -> None:
        self.seen: dict[int, dict[str, float]] = {}
        self.lock = threading.Condition()
        self.procs: list[subprocess.Popen] = []
        self.threads = []
        for host, ns in namespaces.items():
            proc = subprocess.Popen(["ip", "netns", "exec", ns, "stdbuf", "-oL", "nft",
                                     "monitor", "rules"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            self.procs.append(proc)
            t = threading.Thread(target=self._read, args=(host, proc), daemon=True)
            t.start()
            self.threads.append(t)
        self.hosts = list(namespaces)
        time.sleep(0.5)  # let every monitor subscribe before the first change

    def __enter__(self) -> RuleMonitor:
        return self

    def __exit__(self, *_) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()

    def _read(self, host: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            now = time.monotonic()
            ports = {int(p) for p in _DPORT.findall(line)}
            if not ports:
                continue
            with self.lock:
                for port in ports:
                    self.seen.setdefault(port, {}).setdefault(host, now)
                self.lock.notify_all()

    def wait(self, port: int, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.seen.get(port, {})) < len(self.hosts):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.lock.wait(left)
            return dict(self.seen.get(port, {}))
