"""Small network probes the dataplane tests run inside their namespaces (real sockets):

    python probe.py whoami NAME PORT         HTTP server on 0.0.0.0:PORT answering every GET
                                             with "<NAME> <client address>"
    python probe.py serve DIR ADDR PORT      HTTP server of the files under DIR
    python probe.py udp-whoami NAME PORT     UDP server answering every datagram with NAME
    python probe.py udp-stream ADDR PORT S   one UDP flow (fixed source port): a datagram
                                             every 0.1 s for S seconds, each answer printed
    python probe.py dns udp|tcp SERVER NAME  one DNS A query to SERVER:53; prints the first
                                             answer's address, exits 1 without one
"""

from __future__ import annotations

import functools
import socket
import socketserver
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    """No reverse lookup of the bound address (http.server's getfqdn): inside a test
    namespace whose resolver is unreachable that lookup would stall start-up for seconds."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def whoami(name: str, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = f"{name} {self.client_address[0]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    Server(("0.0.0.0", port), Handler).serve_forever()


def serve(root: str, addr: str, port: int) -> None:
    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    Server((addr, port), functools.partial(Handler, directory=root)).serve_forever()


def udp_whoami(name: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", port))
        while True:
            _, peer = s.recvfrom(512)
            s.sendto(name.encode(), peer)


def udp_stream(addr: str, port: int, seconds: float) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.1)
        for _ in range(int(seconds * 10)):
            s.sendto(b"?", (addr, port))
            try:
                print(s.recv(512).decode(), flush=True)
                time.sleep(0.1)
            except TimeoutError:
                pass


def dns_query(name: str) -> bytes:
    header = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)  # id, RD, one question
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)  # A, IN


def first_a(reply: bytes) -> str | None:
    _, _, qd, an, _, _ = struct.unpack("!HHHHHH", reply[:12])
    pos = 12
    for _ in range(qd):
        while reply[pos]:
            pos += reply[pos] + 1
        pos += 5
    for _ in range(an):
        pos += 2 if reply[pos] & 0xC0 == 0xC0 else len(reply[pos:].split(b"\0", 1)[0]) + 1
        rtype, _, _, length = struct.unpack("!HHIH", reply[pos:pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            return socket.inet_ntoa(reply[pos:pos + 4])
        pos += length
    return None


def dns(proto: str, server: str, name: str) -> str | None:
    query = dns_query(name)
    if proto == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(query, (server, 53))
            return first_a(s.recv(4096))
    with socket.create_connection((server, 53), timeout=2) as s:
        s.sendall(struct.pack("!H", len(query)) + query)
        length = struct.unpack("!H", s.recv(2))[0]
        data = b""
        while len(data) < length:
            data += s.recv(length - len(data))
        return first_a(data)


def main(argv: list[str]) -> int:
    if argv[0] == "whoami":
        whoami(argv[1], int(argv[2]))
        return 0
    if argv[0] == "serve":
        serve(argv[1], argv[2], int(argv[3]))
        return 0
    if argv[0] == "udp-whoami":
        udp_whoami(argv[1], int(argv[2]))
        return 0
    if argv[0] == "udp-stream":
        udp_stream(argv[1], int(argv[2]), float(argv[3]))
        return 0
    try:
        answer = dns(argv[1], argv[2], argv[3])
    except OSError as err:
        print(f"no answer: {err}", file=sys.stderr)
        return 1
    if answer is None:
        return 1
    print(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
