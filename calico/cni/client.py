"""The plugin executables' start: hand the request to calico-node, or do the work here.

A CNI plugin is a new process per call, and most of a Python plugin's time is its imports
(the datastore client with pydantic, IPAM: about 0.4 s on 2 cores). calico-node already runs on
every host with all of that loaded and a warm datastore connection, so the executable only
forwards the request — the whole environment and stdin, unchanged — over a unix socket and
copies the answer (stdout, stderr, exit status) back. calico-node runs the same plugin code on
it (calico.node.cniserver), so the result is the one this process would have produced.

When nobody answers on the socket (calico-node not running, a stale socket file, the feature
disabled, or calico-node declining because it runs in another network namespace or root), the
request is run here, the slow way, by calico.cni.main: the same code, the same answer.

Which socket: `$CALICO_CNI_SOCKET` if set, else the network configuration's
`calico_node_socket` field, else /var/run/calico/cni.sock; an empty value disables the hand-off.

This module must stay import-light: it imports only built-in modules (`_socket`, `_json`,
both compiled into or beside the interpreter), never `socket` or `json` (enum, selectors, re:
20-35 ms more on a loaded machine). The installed wrappers run it under `python -S`
(installer.py), so not even `site` is loaded unless the request is run here.

Wire format (both ways, lengths are 4-byte big-endian):
    request:  MAGIC, plugin name, env block ("K=V" entries joined by NUL), stdin, CNI_NETNS identity
    answer:   b"R", exit status, stdout, stderr      the request was run
              b"F", reason                           declined: run it yourself
"""


import _socket
import os
import sys

MAGIC = b"CALICO-CNI/1\n"
DEFAULT_SOCKET = "/var/run/calico/cni.sock"
SOCKET_ENV = "CALICO_CNI_SOCKET"
CONF_FIELD = "calico_node_socket"


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class _Context:
    """What `_json.make_scanner` reads from json.JSONDecoder, without importing json."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name.lower().replace("infinity", "inf"))


def socket_path(stdin: bytes, environ: dict[bytes, bytes]) -> str:
    """Where calico-node listens ("" disables the hand-off); see the module docstring."""
    if SOCKET_ENV.encode() in environ:
        return os.fsdecode(environ[SOCKET_ENV.encode()])
    try:
        import _json

        doc, _ = _json.make_scanner(_Context)(stdin.decode(), 0)
        value = doc.get(CONF_FIELD) if isinstance(doc, dict) else None
    except (ValueError, StopIteration, UnicodeDecodeError):
        value = None  # the plugin itself reports a bad configuration
    return value if isinstance(value, str) else DEFAULT_SOCKET


def netns_identity(environ: dict[bytes, bytes]) -> bytes:
    """The device and inode of CNI_NETNS as this process sees it (b"" if it has none)."""
    try:
        st = os.stat(environ.get(b"CNI_NETNS", b""))
    except (OSError, ValueError):
        return b""
    return f"{st.st_dev}:{st.st_ino}".encode()


def read_exact(sock, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            raise ConnectionError("calico-node closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(sock) -> bytes:
    return read_exact(sock, int.from_bytes(read_exact(sock, 4), "big"))


def request(path: str, plugin: str, environ: dict[bytes, bytes], stdin: bytes
            ) -> tuple[int, bytes, bytes] | None:
    """(exit status, stdout, stderr) from calico-node at `path`; None when it did not run the
    request (no socket, nobody listening, declined, or gone before answering)."""
    if not path:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        env = b"\0".join(k + b"=" + v for k, v in environ.items())
        sock.sendall(MAGIC + frame(plugin.encode()) + frame(env) + frame(stdin)
                     + frame(netns_identity(environ)))
        sock.shutdown(_socket.SHUT_WR)
        if read_exact(sock, 1) != b"R":
            return None
        status = int.from_bytes(read_exact(sock, 4), "big")
        return status, read_frame(sock), read_frame(sock)
    except OSError:
        return None
    finally:
        sock.close()


def read_stdin(environ: dict[bytes, bytes]) -> bytes:
    if environ.get(b"CNI_COMMAND") == b"VERSION" and sys.stdin.isatty():
        return b""
    return sys.stdin.buffer.read()


def run_here(plugin: str, stdin: bytes) -> int:
    """The slow way: load the plugin (and `site`, if the interpreter started without it)."""
    if "site" not in sys.modules:
        import site

        site.main()
    from .main import ABOUT, PLUGINS
    from .spec import run_plugin

    class Handlers(dict):  # loaded on first use: VERSION needs none
        def __missing__(self, command: str):
            self.update(PLUGINS[plugin]())
            return self[command]

    return run_plugin(Handlers(), about=ABOUT[plugin], stdin=stdin)


def run_in(python: str, plugin: str, stdin: bytes) -> None:
    """The slow way in another interpreter (the one calico is installed for): stdin is
    handed on in a memory file, and this process becomes that interpreter."""
    fd = os.memfd_create("cni-stdin")
    os.write(fd, stdin)
    os.lseek(fd, 0, os.SEEK_SET)
    os.dup2(fd, 0)
    os.execv(python, [python, "-m", "calico.cni", plugin])


def main(plugin: str, python: str = "") -> int:
    """Run one plugin call; `python`: the interpreter calico is installed for, when this
    one is not it (installer.py may start the client with a faster-starting interpreter)."""
    environ = dict(os.environb)
    stdin = read_stdin(environ)
    answer = request(socket_path(stdin, environ), plugin, environ, stdin)
    if answer is None:
        if python and python != sys.executable:
            run_in(python, plugin, stdin)
        return run_here(plugin, stdin)
    status, out, err = answer
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    sys.stderr.buffer.write(err)
    sys.stderr.flush()
    return status


def calico_main() -> None:
    sys.exit(main("calico"))


def calico_ipam_main() -> None:
    sys.exit(main("calico-ipam"))
