"""A TCP forwarder from loopback ports inside the lab's host namespaces to the datastore.

A lab's etcd listens on the machine's loopback (root namespace), which the hosts'
namespaces cannot reach: each has its own loopback. This process opens one listening socket
per (namespace, port) *inside* that namespace — a socket belongs to the namespace its thread
was in when it was created — and forwards every connection to the target address in the
namespace it started in. So calico-node, Felix and the CNI plugin of a lab host use
`http://127.0.0.1:<port>` exactly as on a real host with a local etcd proxy, and no address is
added to the machine's own namespace.

    python -m calico.lab.proxy --target 127.0.0.1:23791 --listen NS1:2379 --listen NS2:2379
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def in_netns(name: str):
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns to {name} failed")
        try:
            yield
        finally:
            _libc.setns(home, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)


def listen_in(netns: str, port: int) -> socket.socket:
    with in_netns(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    return s


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        conn, _ = listener.accept()
        try:
            upstream = socket.create_connection(target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            conn.close()
            continue
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calico-lab-proxy")
    parser.add_argument("--target", required=True, help="HOST:PORT in this namespace")
    parser.add_argument("--listen", action="append", default=[], help="NETNS:PORT")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    target = (host, int(port))
    for item in args.listen:
        ns, _, lport = item.rpartition(":")
        threading.Thread(target=_serve, args=(listen_in(ns, int(lport)), target),
                         daemon=True).start()
    print(f"forwarding {', '.join(args.listen)} to {args.target}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
